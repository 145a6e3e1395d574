"""Label words for a user's classes: words the run's tokenizer can score, derived or checked.

Label i is scored by the FIRST token of its word (engine.label_token_ids), so the words must start with
different tokens. A user file's labels are often numbers ("0"/"1", star ratings "1".."10") or several words
("New York"/"New Jersey"), and a tokenizer that splits digits or a leading space gives them one shared first
token. The derivation, in order (the first rule whose words all start with different tokens wins):

  1. labels      the labels themselves with a leading space: " pos", " neg"
  2. numbers     whole-number labels 0..20 as number words: "1".."10" -> " one".." ten"
                 (only when each number word is a single token of this tokenizer)
  3. letters     " A", " B", " C", ... in the classes' order

The app, the CLI and the worker all call choose(), so the words shown before a run are the words it uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lopt_core.errors import LabelWordsError

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                "twenty")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class LabelWords:
    words: tuple[str, ...]         # one per class, in the classes' order
    first_tokens: tuple[str, ...]  # the token each word is scored by, as text
    rule: str                      # "labels", "numbers", "letters" or "given"

    def describe(self) -> str:
        """' one' → ' one', ' two' → ' two' (how each word's first token reads)."""
        return ", ".join(f"{w!r} → {t!r}" for w, t in zip(self.words, self.first_tokens))


@lru_cache(maxsize=8)
def tokenizer_for(model: str):
    """The model's tokenizer without its weights (AutoTokenizer from the resolved folder), cached per name."""
    from transformers import AutoTokenizer
    from lopt_core.lm.models import canonical, resolve
    path, kw = resolve(canonical(model))
    return AutoTokenizer.from_pretrained(path, **kw)


def first_tokens(words, tokenizer) -> list[int | None]:
    """The first token id of each word (None for a word with no tokens)."""
    out = []
    for w in words:
        ids = tokenizer(w, add_special_tokens=False)["input_ids"]
        out.append(ids[0] if ids else None)
    return out


def _usable(words, tokenizer) -> bool:
    ids = first_tokens(words, tokenizer)
    return None not in ids and len(set(ids)) == len(ids)


def _number_words(labels, tokenizer) -> tuple[str, ...] | None:
    """' one', ' two', ... for whole-number labels 0..20 when each word is one token of this tokenizer."""
    try:
        values = [int(str(l).strip()) for l in labels]
    except ValueError:
        return None
    if any(v < 0 or v >= len(NUMBER_WORDS) for v in values) or len(set(values)) != len(values):
        return None
    words = tuple(" " + NUMBER_WORDS[v] for v in values)
    if all(len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1 for w in words):
        return words
    return None


def derive(labels, tokenizer) -> tuple[tuple[str, ...], str]:
    """(words, rule) for the classes `labels` (in order): the first rule of the module's list that works."""
    labels = [str(l).strip() for l in labels]
    own = tuple(" " + l for l in labels)
    if _usable(own, tokenizer):
        return own, "labels"
    numbers = _number_words(labels, tokenizer)
    if numbers and _usable(numbers, tokenizer):
        return numbers, "numbers"
    letters = tuple(" " + c for c in LETTERS[:len(labels)])
    if len(labels) <= len(LETTERS) and _usable(letters, tokenizer):
        return letters, "letters"
    raise LabelWordsError(f"no label words could be derived for the classes {labels} with this tokenizer; "
                          f"give them yourself (one word per class, each starting with a different token)")


def check(words, tokenizer, labels) -> None:
    """LabelWordsError unless there is one word per class and every word starts with a different token."""
    words, labels = list(words), [str(l) for l in labels]
    if len(words) != len(labels):
        raise LabelWordsError(f"{len(words)} label words {words} for {len(labels)} classes {labels}; "
                              f"give one word per class, in that order")
    ids = first_tokens(words, tokenizer)
    empty = [w for w, i in zip(words, ids) if i is None]
    if empty:
        raise LabelWordsError(f"label word(s) {empty} have no tokens")
    seen: dict[int, str] = {}
    for w, i in zip(words, ids):
        if i in seen:
            try:
                hint = f" (e.g. {show(derive(labels, tokenizer)[0])})"
            except LabelWordsError:
                hint = ""
            raise LabelWordsError(f"label words {seen[i]!r} and {w!r} both start with the token "
                                  f"{tokenizer.decode([i])!r}, so the run cannot tell them apart; choose words "
                                  f"whose first tokens differ{hint}")
        seen[i] = w


def choose(labels, tokenizer, given=None) -> LabelWords:
    """The label words a run uses: the given ones after check(), else derive()d."""
    if given:
        words, rule = tuple(given), "given"
        check(words, tokenizer, labels)
    else:
        words, rule = derive(labels, tokenizer)
    return LabelWords(words, tuple(tokenizer.decode([i]) for i in first_tokens(words, tokenizer)), rule)


def parse(text: str | None) -> list[str] | None:
    """A comma-separated box or flag ('one, two' or ' bad, good') as words with one leading space each."""
    if text is None or not str(text).strip():
        return None
    return [" " + w.strip() for w in str(text).split(",")]


def show(words) -> str:
    """Words as the comma-separated box shows them (parse() reads it back)."""
    return ", ".join(w.strip() for w in words)
