"""What a run optimises and how it is scored, one class per task kind (data/examples.py):

  Classification   cross-entropy over the label words at the answer position; accuracy
  Generation       teacher-forced cross-entropy over the target tokens (" answer" and the newline that ends
                   it); greedy decoding scored by exact match (the headline) and token F1, SQuAD style, the
                   best over the gold answers; the mean target-token loss beside them
  MultipleChoice   each choice scored by its length-normalised log-likelihood after its context; cross-entropy
                   over the choices; accuracy

Each gives the loop the same four things: encode(examples), batch(encoded, idx), loss(...) for one
configuration's own pass and group_losses(...) for K prompts in one pass (multi_prompt.py), and evaluate(...).
Every path goes through the engine's answer_hidden, so the fast paths stay exact for every kind.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lopt_core.data import metrics
from lopt_core.data.examples import CLASSIFICATION, GENERATION, MAX_TARGET_TOKENS, MULTIPLE_CHOICE, TaskData
from lopt_core.lm import decode, engine, multi_prompt
from lopt_core.lm.models import LoadedModel


@dataclass
class Batch:
    """Model rows (R of them) and what the loss needs; `size` examples (R = size except for multiple choice)."""
    ids: torch.Tensor                 # (R, L)
    mask: torch.Tensor                # (R, L)
    lengths: torch.Tensor             # (R,)
    labels: torch.Tensor | None       # (B,) class or right choice
    n_target: torch.Tensor | None     # (R,) target tokens at the end of each row
    slots: torch.Tensor | None = None  # (R,) multiple choice: index of the row in the (B, C) score grid
    choices: int = 0                  # multiple choice: C, the most choices of an example in the batch
    size: int = 0


@dataclass
class Scored:
    """An evaluation: the headline score under the task's metric, other metrics, and what was predicted."""
    metric: str
    score: float
    extra: dict = field(default_factory=dict)        # e.g. {"f1": ..., "target_loss": ...}
    predictions: list = field(default_factory=list)  # per example: the class, the choice or the answer text
    correct: list = field(default_factory=list)      # per example: 1.0 right, 0.0 wrong (F1 aside)


@dataclass
class Encoded:
    """Tokenized examples of one kind: `rows[i]` holds example i's model rows (one, or one per choice)."""
    rows: list[list[list[int]]]
    n_target: list[list[int]]         # per example, per row: target tokens at the row's end (0: none)
    labels: list[int]
    context: list[list[int]]          # generation: what the model continues at test time
    answers: list[tuple[str, ...]]    # generation: the gold answers

    def __len__(self):
        return len(self.rows)


class Objective:
    kind = ""
    metric = ""

    def __init__(self, data: TaskData, tokenizer, max_length: int):
        self.task, self.tok, self.max_length = data.task, tokenizer, max_length

    # ------------------------------------------------------------ shared
    def batch(self, enc: Encoded, idx: list[int], lm: LoadedModel) -> Batch:
        rows = [r for i in idx for r in enc.rows[i]]
        ids, mask, lengths = engine.collate(rows, lm.tokenizer.pad_token_id, lm.device)
        n_t = torch.tensor([t for i in idx for t in enc.n_target[i]], device=lm.device)
        labels = torch.tensor([enc.labels[i] for i in idx], device=lm.device)
        C = max(len(enc.rows[i]) for i in idx)
        slots = torch.tensor([b * C + c for b, i in enumerate(idx) for c in range(len(enc.rows[i]))],
                             device=lm.device)
        return Batch(ids, mask, lengths, labels, n_t, slots, C, len(idx))

    def _ids(self, text: str) -> list[int]:
        return engine.encode(self.tok, [text], 1 << 30)[0]

    def _row(self, context: str, target: str, cap: int | None = None) -> tuple[list[int], int]:
        """context ids (left-truncated) + target ids, and the number of target tokens."""
        t = self.tok(target, add_special_tokens=False)["input_ids"][: cap or MAX_TARGET_TOKENS]
        c = self._ids(context)
        keep = max(1, self.max_length - len(t))
        return (c[-keep:] if len(c) > keep else c) + t, len(t)

    def evaluate(self, lm, enc: Encoded, method=None, peft_model=None, batch_size: int = 32,
                 shared_prefix: bool = True, on_progress=None) -> Scored:
        raise NotImplementedError

    def _progress(self, on_progress):
        return on_progress or (lambda done, total: None)


@contextmanager
def eval_mode(method):
    """The method in eval mode for an evaluation, back to training mode after it if it was training."""
    was = method is not None and method.training
    if method is not None:
        method.eval()
    try:
        yield
    finally:
        if was:
            method.train()


class Classification(Objective):
    kind, metric = CLASSIFICATION, "accuracy"

    def __init__(self, data: TaskData, tokenizer, max_length: int):
        super().__init__(data, tokenizer, max_length)
        self.label_ids = engine.label_token_ids(tokenizer, data.task.label_words)

    def encode(self, examples) -> Encoded:
        ids = engine.encode(self.tok, [e.text for e in examples], self.max_length)
        return Encoded([[x] for x in ids], [[0]] * len(ids), [e.label for e in examples], [], [])

    def loss(self, lm, b: Batch, scoring: dict, shared_prefix: bool) -> torch.Tensor:
        return engine.loss_on_batch(lm, b.ids, b.mask, b.lengths, b.labels, self.label_ids, **scoring,
                                    shared_prefix=shared_prefix)

    def group_losses(self, lm, b: Batch, prompts: list[torch.Tensor]) -> list[torch.Tensor]:
        logits = multi_prompt.class_logits(lm, b.ids, b.mask, prompts, self.label_ids)   # (K, B, C)
        return [F.cross_entropy(logits[k], b.labels) for k in range(len(prompts))]

    def evaluate(self, lm, enc: Encoded, method=None, peft_model=None, batch_size: int = 32,
                 shared_prefix: bool = True, on_progress=None) -> Scored:
        data = engine.Encoded([r[0] for r in enc.rows], enc.labels)
        res = engine.evaluate(lm, data, self.label_ids, method, peft_model, batch_size, shared_prefix, on_progress)
        return Scored(self.metric, res.accuracy, predictions=res.preds,
                      correct=[float(p == y) for p, y in zip(res.preds, enc.labels)])


def _choice_scores(total: torch.Tensor, count: torch.Tensor, b: Batch) -> torch.Tensor:
    """Per-row summed log-probabilities (..., R) -> length-normalised choice scores (..., B, C), -inf where an
    example has fewer choices."""
    mean = total / count.clamp_min(1)                                                    # (..., R)
    grid = mean.new_full((*mean.shape[:-1], b.size * b.choices), float("-inf"))
    grid[..., b.slots] = mean
    return grid.view(*mean.shape[:-1], b.size, b.choices)                               # (..., B, C)


class MultipleChoice(Objective):
    kind, metric = MULTIPLE_CHOICE, "accuracy"

    def encode(self, examples) -> Encoded:
        rows, n_t = [], []
        for e in examples:
            made = [self._row(e.context_of(i), c) for i, c in enumerate(e.choices)]
            rows.append([r for r, _ in made])
            n_t.append([t for _, t in made])
        return Encoded(rows, n_t, [e.label for e in examples], [], [])

    def scores(self, lm, b: Batch, scoring: dict, shared_prefix: bool) -> torch.Tensor:
        total, count = engine.target_logprob(lm, b.ids, b.mask, b.lengths, b.n_target, **scoring,
                                             shared_prefix=shared_prefix)
        return _choice_scores(total, count, b)                                           # (B, C)

    def loss(self, lm, b: Batch, scoring: dict, shared_prefix: bool) -> torch.Tensor:
        return F.cross_entropy(self.scores(lm, b, scoring, shared_prefix), b.labels)

    def group_losses(self, lm, b: Batch, prompts: list[torch.Tensor]) -> list[torch.Tensor]:
        total, count = multi_prompt.target_logprob(lm, b.ids, b.mask, b.n_target, prompts)  # (K, R), (R,)
        grid = _choice_scores(total, count, b)                                           # (K, B, C)
        return [F.cross_entropy(grid[k], b.labels) for k in range(len(prompts))]

    @torch.inference_mode()
    def evaluate(self, lm, enc: Encoded, method=None, peft_model=None, batch_size: int = 32,
                 shared_prefix: bool = True, on_progress=None) -> Scored:
        with eval_mode(method):
            return self._evaluate(lm, enc, method, peft_model, batch_size, shared_prefix, on_progress)

    def _evaluate(self, lm, enc, method, peft_model, batch_size, shared_prefix, on_progress) -> Scored:
        progress = self._progress(on_progress)
        scoring = {"method": method, "peft_model": peft_model}
        per_batch = max(1, batch_size // max(1, max(len(r) for r in enc.rows)))  # ~batch_size rows a pass
        order = sorted(range(len(enc)), key=lambda i: sum(len(r) for r in enc.rows[i]))
        preds = [0] * len(enc)
        progress(0, len(enc))
        for s in range(0, len(order), per_batch):
            idx = order[s: s + per_batch]
            b = self.batch(enc, idx, lm)
            for i, p in zip(idx, self.scores(lm, b, scoring, shared_prefix).argmax(-1).tolist()):
                preds[i] = p
            progress(min(s + per_batch, len(order)), len(enc))
        correct = [float(p == y) for p, y in zip(preds, enc.labels)]
        return Scored(self.metric, sum(correct) / len(enc), predictions=preds, correct=correct)


class Generation(Objective):
    kind, metric = GENERATION, "exact_match"

    def __init__(self, data: TaskData, tokenizer, max_length: int, max_new_tokens: int | None = None):
        super().__init__(data, tokenizer, max_length)
        self.max_new_tokens = max_new_tokens or data.task.max_new_tokens or 16

    def encode(self, examples) -> Encoded:
        rows, n_t, ctx = [], [], []
        for e in examples:
            row, t = self._row(e.text, " " + e.answers[0] + "\n")
            rows.append([row])
            n_t.append([t])
            c = self._ids(e.text)
            ctx.append(c[-self.max_length:])
        return Encoded(rows, n_t, [0] * len(rows), ctx, [tuple(e.answers) for e in examples])

    def loss(self, lm, b: Batch, scoring: dict, shared_prefix: bool) -> torch.Tensor:
        total, count = engine.target_logprob(lm, b.ids, b.mask, b.lengths, b.n_target, **scoring,
                                             shared_prefix=shared_prefix)
        return -total.sum() / count.sum()      # mean over the batch's target tokens

    def group_losses(self, lm, b: Batch, prompts: list[torch.Tensor]) -> list[torch.Tensor]:
        total, count = multi_prompt.target_logprob(lm, b.ids, b.mask, b.n_target, prompts)  # (K, R), (R,)
        return [-total[k].sum() / count.sum() for k in range(len(prompts))]

    def answers(self, lm, enc: Encoded, method=None, peft_model=None, batch_size: int = 32,
                on_progress=None) -> list[str]:
        """The greedy answer written for each example (test-time input: the context alone)."""
        progress = self._progress(on_progress)
        order = sorted(range(len(enc)), key=lambda i: len(enc.context[i]))
        out = [""] * len(enc)
        progress(0, len(enc))
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            new = decode.greedy(lm, [enc.context[i] for i in idx], self.max_new_tokens, method, peft_model)
            for i, ids in zip(idx, new):
                out[i] = decode.answer_text(lm.tokenizer, ids)
            progress(min(s + batch_size, len(order)), len(enc))
        return out

    @torch.inference_mode()
    def target_loss(self, lm, enc: Encoded, method=None, peft_model=None, batch_size: int = 32,
                    shared_prefix: bool = True) -> float:
        scoring, total, count = {"method": method, "peft_model": peft_model}, 0.0, 0
        for s in range(0, len(enc), batch_size):
            b = self.batch(enc, list(range(s, min(s + batch_size, len(enc)))), lm)
            t, c = engine.target_logprob(lm, b.ids, b.mask, b.lengths, b.n_target, **scoring,
                                         shared_prefix=shared_prefix)
            total, count = total - float(t.sum()), count + int(c.sum())
        return total / max(1, count)

    def evaluate(self, lm, enc: Encoded, method=None, peft_model=None, batch_size: int = 32,
                 shared_prefix: bool = True, on_progress=None) -> Scored:
        with eval_mode(method):
            said = self.answers(lm, enc, method, peft_model, batch_size, on_progress)
            loss = self.target_loss(lm, enc, method, peft_model, batch_size, shared_prefix)
        em = [metrics.exact_match(a, g) for a, g in zip(said, enc.answers)]
        f1 = [metrics.f1(a, g) for a, g in zip(said, enc.answers)]
        return Scored(self.metric, sum(em) / len(enc), {"f1": sum(f1) / len(enc), "target_loss": round(loss, 4)},
                      predictions=said, correct=em)


OBJECTIVES = {c.kind: c for c in (Classification, MultipleChoice, Generation)}


def for_data(data: TaskData, tokenizer, max_length: int) -> Objective:
    """The objective of a task's kind, for a tokenizer and the run's max_length."""
    return OBJECTIVES[data.kind](data, tokenizer, max_length)
