"""The training loop: AdamW, warm-up + linear decay, clipping, periodic evaluation, events, a stop flag.

train(cfg, on_event) is what the CLI and the app's workers both call. Events are dicts:
  start {trainable_params, total_steps, artifact_dir, ...}   step {step, loss, lr, examples_per_s, eta_s}
  eval_progress {step, done, total}   eval {step, accuracy}   end {state, result}
A stopped run is evaluated on what it trained (its accuracy reaches the plots); asking to stop again while that
evaluation runs (should_skip_eval) ends it without one.
The pieces a run needs besides the loop itself (data, batch order, optimiser, result record) are functions
here, so the sweep's group trainer (group.py) trains each configuration exactly as a solo run would.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import torch

from . import artifacts, engine, fast_path
from .config import RunConfig
from .methods import PromptContext, get_method
from .models import LoadedModel, load_model
from .tasks import TaskData, fingerprint, load_for_config


def new_run_id(cfg: RunConfig) -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{cfg.method}-{uuid.uuid4().hex[:6]}"


def lr_lambda(total: int, warmup_frac: float, schedule: str = "linear"):
    """Warm-up over `warmup_frac` of the steps, then linear decay to 0 ("linear") or a constant lr ("constant")."""
    warm = int(total * warmup_frac)

    def f(step: int) -> float:  # step counts from 0
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warm))
    return f


def make_method(cfg: RunConfig, lm: LoadedModel):
    """The run's method, freshly initialised for `lm` (not yet attached to it)."""
    return get_method(cfg.method).from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, cfg.seed))


def build_method(cfg: RunConfig, lm: LoadedModel):
    """The method attached to `lm`, and the optimiser's parameter groups at the run's learning rate. The caller
    detaches it (method.detach(lm)) when done; train() uses make_method and `with method.attached(lm)` instead."""
    method = make_method(cfg, lm)
    method.attach(lm)
    return method, method.param_groups(cfg.resolved_lr())


@dataclass
class Prepared:
    """A run's data on a loaded model: tokenized train and test sets and the label words' token ids."""
    data: TaskData
    label_ids: list[int]
    train_set: engine.Encoded
    test_set: engine.Encoded
    test_fingerprint: str = ""      # tasks.fingerprint of the test examples: runs compare only when equal


def prepare(cfg: RunConfig, lm: LoadedModel) -> Prepared:
    data = load_for_config(cfg, lm.tokenizer)
    tok = lm.tokenizer
    label_ids = engine.label_token_ids(tok, data.task.label_words)
    train_set = engine.encode_examples(tok, data.train, cfg.max_length)
    test_examples = data.test[: cfg.eval_size] if cfg.eval_size else data.test
    test_set = engine.encode_examples(tok, test_examples, cfg.max_length)
    assert len(train_set) > 0 and len(test_set) > 0, "the task has no training or test examples"
    return Prepared(data, label_ids, train_set, test_set, fingerprint(test_examples))


class BatchOrder:
    """Shuffled passes over the training set, seeded: the same seed gives the same batches."""

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size = size, batch_size
        self.g = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(size, generator=self.g).tolist(), 0

    def next(self) -> list[int]:
        idx = []
        while len(idx) < self.batch_size:
            if self.pos == len(self.order):
                self.order, self.pos = torch.randperm(self.size, generator=self.g).tolist(), 0
            idx.append(self.order[self.pos])
            self.pos += 1
        return idx


def batch_tensors(prep: Prepared, idx: list[int], lm: LoadedModel):
    """ids (B, L), mask (B, L), lengths (B,), labels (B,) of the training examples `idx`."""
    ids, mask, lengths = engine.collate([prep.train_set.ids[i] for i in idx], lm.tokenizer.pad_token_id, lm.device)
    labels = torch.tensor([prep.train_set.labels[i] for i in idx], device=lm.device)
    return ids, mask, lengths, labels


def optimiser(cfg: RunConfig, method, groups):
    """AdamW over the method's groups with warm-up + linear decay; checks the trainable count on the way."""
    params = [p for g in groups for p in g["params"]]
    trainable = method.num_trainable()
    counted = sum(p.numel() for p in params)
    assert trainable == counted, f"trainable count {trainable} != tensors given to the optimiser {counted}"
    opt = torch.optim.AdamW(groups, lr=cfg.resolved_lr(), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.steps, cfg.warmup, cfg.lr_schedule))
    return params, trainable, opt, sched


def update(cfg: RunConfig, params, opt, sched) -> float:
    """Clip, step the optimiser and the schedule (gradients already in .grad); returns the lr just used."""
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    lr_now = opt.param_groups[0]["lr"]
    opt.step()
    sched.step()
    return lr_now


def start_event(run_id, trainable, cfg, folder, prep: Prepared) -> dict:
    return {"type": "start", "run_id": run_id, "trainable_params": trainable, "total_steps": cfg.steps,
            "artifact_dir": str(folder) if folder else None, "data_source": prep.data.source,
            "train_examples": len(prep.train_set), "test_examples": len(prep.test_set),
            "test_fingerprint": prep.test_fingerprint}


def result_record(run_id, cfg, lm, prep: Prepared, trainable, evals, losses, step, state, train_time, zs, folder,
                  **extra) -> dict:
    return {"run_id": run_id, "model": lm.name, "task": prep.data.task.name, "method": cfg.method, "n": cfg.n,
            "r": cfg.r, "trainable_params": trainable, "accuracy": evals[-1][1] if evals else None,
            "zero_shot_accuracy": zs, "train_seconds": round(train_time, 2), "steps_done": step,
            "final_loss": losses[-1] if losses else None, "lr": cfg.resolved_lr(), "state": state,
            "eval_examples": len(prep.test_set), "data_source": prep.data.source,
            "split_seed": cfg.split_seed, "test_fingerprint": prep.test_fingerprint,
            "artifact_dir": str(folder) if folder else None, "device": str(lm.device),
            "torch_threads": torch.get_num_threads(),
            "fast_path": fast_path.for_run(lm, get_method(cfg.method), cfg.shared_prefix), **extra}


def _zero_shot_key(cfg: RunConfig, data) -> str:
    raw = f"{cfg.model}|{data.task.name}|{data.task.template}|{data.task.label_words}|{cfg.eval_size}|" \
          f"{cfg.max_length}|{cfg.split_seed}|{data.source}"
    return hashlib.sha1(raw.encode()).hexdigest()


class EvalSkipped(Exception):
    """Raised from an evaluation's progress callback when the user asked for the run to end without it."""


def train(cfg: RunConfig, on_event=None, should_stop=None, lm: LoadedModel | None = None, run_id: str | None = None,
          store=None, save: bool = True, should_skip_eval=None) -> dict:
    """Train one run; returns the result dict (also written to the artifact's run.json)."""
    cfg.validate()
    emit = on_event or (lambda ev: None)
    should_stop = should_stop or (lambda: False)
    should_skip_eval = should_skip_eval or (lambda: False)
    run_id = run_id or new_run_id(cfg)
    torch.manual_seed(cfg.seed)

    lm = lm or load_model(cfg.model, cfg.device)
    prep = prepare(cfg, lm)
    method = make_method(cfg, lm)
    with method.attached(lm):  # an adapter leaves the shared base model however the run ends
        params, trainable, opt, sched = optimiser(cfg, method, method.param_groups(cfg.resolved_lr()))
        folder = artifacts.run_dir(run_id) if save else None
        emit(start_event(run_id, trainable, cfg, folder, prep))

        batches = BatchOrder(len(prep.train_set), cfg.batch_size, cfg.seed)
        evals, losses, state, t0 = [], [], "done", time.time()
        train_time = 0.0
        step = 0
        for step in range(1, cfg.steps + 1):
            if should_stop():
                state, step = "stopped", step - 1
                break
            t_step = time.time()
            ids, mask, lengths, labels = batch_tensors(prep, batches.next(), lm)
            loss = engine.loss_on_batch(lm, ids, mask, lengths, labels, prep.label_ids, **method.scoring_args(),
                                        shared_prefix=cfg.shared_prefix)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lr_now = update(cfg, params, opt, sched)
            dt = time.time() - t_step
            train_time += dt
            losses.append(loss.item())
            emit({"type": "step", "step": step, "loss": losses[-1], "lr": lr_now, "examples_per_s": len(labels) / dt,
                  "elapsed_s": time.time() - t0, "eta_s": train_time / step * (cfg.steps - step)})
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                evals.append((step, evaluate(lm, prep, method, cfg, progress_events(emit, step))))
                emit({"type": "eval", "step": step, "accuracy": evals[-1][1]})

        # final evaluation, also of a stopped run's prompt (unless stopped before its first step, or asked twice)
        t_eval, extra = time.time(), {}
        if step > 0 and (not evals or evals[-1][0] != step):
            skip = should_skip_eval if state == "stopped" else (lambda: False)
            try:
                evals.append((step, evaluate(lm, prep, method, cfg, progress_events(emit, step, skip))))
                emit({"type": "eval", "step": step, "accuracy": evals[-1][1]})
                extra = {"evaluated_after_stop": True} if state == "stopped" else {}
            except EvalSkipped:
                extra = {"evaluation_skipped": "stop was pressed again during the evaluation"}
        eval_time = time.time() - t_eval
        zs = zero_shot(lm, cfg, prep, store, cached_only=state != "done")
        result = result_record(run_id, cfg, lm, prep, trainable, evals, losses, step, state, train_time, zs, folder,
                               eval_seconds=round(eval_time, 2), **extra)
        if folder:
            artifacts.save(folder, cfg, method, result)
        emit({"type": "end", "state": state, "result": result})
        return result


def evaluate(lm, prep: Prepared, method, cfg, on_progress=None) -> float:
    """Accuracy of the attached `method` on the run's test set."""
    return engine.evaluate(lm, prep.test_set, prep.label_ids, **method.scoring_args(),
                           batch_size=cfg.eval_batch_size, shared_prefix=cfg.shared_prefix,
                           on_progress=on_progress).accuracy


def progress_events(emit, step: int, skip=None):
    """An evaluation progress callback that emits eval_progress events (and aborts when `skip()` turns true)."""
    def on_progress(done: int, total: int) -> None:
        emit({"type": "eval_progress", "step": step, "done": done, "total": total})
        if skip is not None and done < total and skip():
            raise EvalSkipped()
    return on_progress


def zero_shot(lm, cfg, prep: Prepared, store, cached_only: bool = False) -> float | None:
    """Accuracy of the same model and template with no prompt; cached in the store when one is given."""
    key = _zero_shot_key(cfg, prep.data)
    if store is not None and (hit := store.zero_shot(key)) is not None:
        return hit
    if cached_only:
        return None
    acc = engine.evaluate(lm, prep.test_set, prep.label_ids, None, None, cfg.eval_batch_size).accuracy
    if store is not None:
        store.set_zero_shot(key, acc)
    return acc
