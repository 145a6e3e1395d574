"""Scoring a written answer against the gold answers, SQuAD style: both are normalised (lower case, no
punctuation, no articles a/an/the, single spaces) and the best over the gold answers counts.

  exact_match  1 when the normalised answer equals a normalised gold answer
  f1           token overlap: harmonic mean of precision and recall over the normalised words
"""
from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, gold: list[str] | tuple[str, ...]) -> float:
    a = normalize(answer)
    return float(any(a == normalize(g) for g in gold))


def _f1(answer: str, gold: str) -> float:
    a, g = normalize(answer).split(), normalize(gold).split()
    if not a or not g:
        return float(a == g)
    same = sum((Counter(a) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(a), same / len(g)
    return 2 * precision * recall / (precision + recall)


def f1(answer: str, gold: list[str] | tuple[str, ...]) -> float:
    return max((_f1(answer, g) for g in gold), default=0.0)
