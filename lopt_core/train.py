"""The training loop: AdamW, warm-up + linear decay, clipping, periodic evaluation, events, a stop flag.

train(cfg, on_event) is what the CLI and the app's workers both call. Events are dicts:
  start {trainable_params, total_steps, artifact_dir, ...}   step {step, loss, lr, examples_per_s, eta_s}
  eval {step, accuracy}   end {state, result}
"""
from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime

import torch

from . import artifacts, engine
from .config import RunConfig
from .methods import PromptContext, get_method
from .models import LoadedModel, load_model
from .tasks import load_for_config


def new_run_id(cfg: RunConfig) -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{cfg.method}-{uuid.uuid4().hex[:6]}"


def lr_lambda(total: int, warmup_frac: float):
    warm = int(total * warmup_frac)

    def f(step: int) -> float:  # step counts from 0
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))
    return f


def build_method(cfg: RunConfig, lm: LoadedModel):
    """The method, and the optimiser's parameter groups at the run's learning rate."""
    cls = get_method(cfg.method)
    method = cls.from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, cfg.seed))
    if method.is_peft:
        method.wrap(lm.model)
        groups = [{"params": method.trainable_parameters(), "lr": cfg.resolved_lr()}]
    else:
        method.to(lm.device)
        groups = method.param_groups(cfg.resolved_lr())
    return method, groups


def _zero_shot_key(cfg: RunConfig, data) -> str:
    raw = f"{cfg.model}|{data.task.name}|{data.task.template}|{data.task.label_words}|{cfg.eval_size}|" \
          f"{cfg.max_length}|{cfg.seed}|{data.source}"
    return hashlib.sha1(raw.encode()).hexdigest()


def train(cfg: RunConfig, on_event=None, should_stop=None, lm: LoadedModel | None = None, run_id: str | None = None,
          store=None, save: bool = True) -> dict:
    """Train one run; returns the result dict (also written to the artifact's run.json)."""
    cfg.validate()
    emit = on_event or (lambda ev: None)
    should_stop = should_stop or (lambda: False)
    run_id = run_id or new_run_id(cfg)
    torch.manual_seed(cfg.seed)

    lm = lm or load_model(cfg.model, cfg.device)
    data = load_for_config(cfg)
    tok = lm.tokenizer
    label_ids = engine.label_token_ids(tok, data.task.label_words)
    train_set = engine.encode_examples(tok, data.train, cfg.max_length)
    test_examples = data.test[: cfg.eval_size] if cfg.eval_size else data.test
    test_set = engine.encode_examples(tok, test_examples, cfg.max_length)
    assert len(train_set) > 0 and len(test_set) > 0, "the task has no training or test examples"

    method, groups = build_method(cfg, lm)
    params = [p for g in groups for p in g["params"]]
    peft_model = method.peft_model if method.is_peft else None
    try:
        trainable = method.num_trainable()
        counted = sum(p.numel() for p in params)
        assert trainable == counted, f"trainable count {trainable} != tensors given to the optimiser {counted}"
        opt = torch.optim.AdamW(groups, lr=cfg.resolved_lr(), weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.steps, cfg.warmup))
        folder = artifacts.run_dir(run_id) if save else None
        emit({"type": "start", "run_id": run_id, "trainable_params": trainable, "total_steps": cfg.steps,
              "artifact_dir": str(folder) if folder else None, "data_source": data.source,
              "train_examples": len(train_set), "test_examples": len(test_set)})

        g = torch.Generator().manual_seed(cfg.seed)
        order, pos = torch.randperm(len(train_set), generator=g).tolist(), 0
        evals, losses, state, t0 = [], [], "done", time.time()
        train_time = 0.0
        step = 0
        for step in range(1, cfg.steps + 1):
            if should_stop():
                state, step = "stopped", step - 1
                break
            t_step = time.time()
            idx = []
            while len(idx) < cfg.batch_size:
                if pos == len(order):
                    order, pos = torch.randperm(len(train_set), generator=g).tolist(), 0
                idx.append(order[pos])
                pos += 1
            ids, mask, lengths = engine.collate([train_set.ids[i] for i in idx], tok.pad_token_id, lm.device)
            labels = torch.tensor([train_set.labels[i] for i in idx], device=lm.device)
            loss = engine.loss_on_batch(lm, ids, mask, lengths, labels, label_ids,
                                        None if method.is_peft else method, peft_model, cfg.shared_prefix)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            lr_now = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            dt = time.time() - t_step
            train_time += dt
            losses.append(loss.item())
            emit({"type": "step", "step": step, "loss": losses[-1], "lr": lr_now, "examples_per_s": len(idx) / dt,
                  "elapsed_s": time.time() - t0, "eta_s": train_time / step * (cfg.steps - step)})
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                evals.append((step, _eval(lm, test_set, label_ids, method, peft_model, cfg)))
                emit({"type": "eval", "step": step, "accuracy": evals[-1][1]})

        # final evaluation; a stopped run ends now, keeping its last periodic evaluation (if any)
        if state == "done" and (not evals or evals[-1][0] != step):
            evals.append((step, _eval(lm, test_set, label_ids, method, peft_model, cfg)))
            emit({"type": "eval", "step": step, "accuracy": evals[-1][1]})
        zs = _zero_shot(lm, cfg, data, test_set, label_ids, store, cached_only=state != "done")
        result = {"run_id": run_id, "model": lm.name, "task": data.task.name, "method": cfg.method, "n": cfg.n,
                  "r": cfg.r, "trainable_params": trainable, "accuracy": evals[-1][1] if evals else None,
                  "zero_shot_accuracy": zs, "train_seconds": round(train_time, 2), "steps_done": step,
                  "final_loss": losses[-1] if losses else None, "lr": cfg.resolved_lr(), "state": state,
                  "eval_examples": len(test_set), "data_source": data.source,
                  "artifact_dir": str(folder) if folder else None, "device": str(lm.device)}
        if folder:
            artifacts.save(folder, cfg, method, result)
        emit({"type": "end", "state": state, "result": result})
        return result
    finally:
        if method.is_peft:
            restored = method.unwrap()  # give the shared base model back without the adapter
            if restored is not None:
                lm.model = restored


def _eval(lm, test_set, label_ids, method, peft_model, cfg) -> float:
    return engine.evaluate(lm, test_set, label_ids, None if method.is_peft else method, peft_model,
                           cfg.eval_batch_size, cfg.shared_prefix).accuracy


def _zero_shot(lm, cfg, data, test_set, label_ids, store, cached_only: bool = False) -> float | None:
    """Accuracy of the same model and template with no prompt; cached in the store when one is given."""
    key = _zero_shot_key(cfg, data)
    if store is not None and (hit := store.zero_shot(key)) is not None:
        return hit
    if cached_only:
        return None
    acc = engine.evaluate(lm, test_set, label_ids, None, None, cfg.eval_batch_size).accuracy
    if store is not None:
        store.set_zero_shot(key, acc)
    return acc
