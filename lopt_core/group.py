"""Train K input-independent prompt configurations together: one batch per step, one model pass for all K.

Configurations that share a group key (model, task, data, batch size, step budget, seed and evaluation set)
see the same batches in the same order, so each step draws ONE batch and runs it under all K prompts at once
(multi_prompt.class_logits). Each configuration keeps its own method, AdamW state, learning-rate schedule,
clipping, evaluations, events and artifact, and ends as an ordinary run: a configuration trained in a group
gives the loss curve and prompt it gives alone, within float tolerance (tests/test_group.py).

Rows are packed (every example of the batch behind each prompt); where the rows are so long that packing costs
more attention work than it saves (the engine's own cost model), each prompt runs the solo path instead.
prompts_per_pass bounds how many prompt rows share one forward/backward: activation memory grows with it,
while a CPU already runs one batch near its matmul peak, so on CPU a small number keeps memory near one run's
at the same speed; on a GPU all K go in one pass. A configuration that is stopped, or whose loss turns
non-finite, leaves the group at that step; the others go on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import artifacts, engine, fast_path, multi_prompt
from .config import RunConfig
from .models import LoadedModel, load_model
from .train import (BatchOrder, batch_tensors, build_method, evaluate, new_run_id, optimiser, prepare,
                    progress_events, result_record, start_event, update, zero_shot)

# fields that may differ inside a group: each configuration's own method and optimiser settings
PER_CONFIG = ("method", "n", "r", "lr", "warmup", "lr_schedule", "weight_decay", "grad_clip", "eval_every", "init",
              "init_text", "activation", "lopa_hidden", "method_knobs")


def group_key(cfg: RunConfig) -> str:
    """Configurations with equal keys see the same data in the same order and can train as one group."""
    d = cfg.to_dict()
    return repr(sorted((k, repr(v)) for k, v in d.items() if k not in PER_CONFIG))


def batchable(cfg: RunConfig, lm: LoadedModel | None = None) -> bool:
    """True for input-independent prompts on a model whose attention takes the packed multi-prompt mask."""
    from .methods import get_method
    cls = get_method(cfg.method)
    if cls.changes_model or cls.input_dependent or not cfg.shared_prefix:
        return False
    return lm is None or multi_prompt.supported(lm)


def default_prompts_per_pass(lm: LoadedModel, k: int) -> int:
    """All K on a GPU; 2 on a CPU, where a batch already runs near the matmul peak and memory grows with K."""
    return k if lm.device.type == "cuda" else min(k, 2)


@dataclass
class Member:
    """One configuration of the group and everything it owns."""
    cfg: RunConfig
    run_id: str
    method: object
    params: list
    trainable: int
    opt: object
    sched: object
    folder: object
    losses: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    state: str = "running"          # running -> done | stopped | failed
    error: str | None = None
    step: int = 0
    train_time: float = 0.0         # wall seconds of the group steps this configuration took part in


def train_group(cfgs: list[RunConfig], run_ids: list[str] | None = None, on_event=None, should_stop=None,
                lm: LoadedModel | None = None, store=None, save: bool = True,
                prompts_per_pass: int | None = None) -> list[dict]:
    """Train every configuration of one group; returns their result dicts, in order.

    on_event(run_id, event) and should_stop(run_id) are per configuration; a failed configuration's result
    has state "failed" and its error (the others are not touched)."""
    assert cfgs, "a group needs at least one configuration"
    for c in cfgs:
        c.validate()
    key = group_key(cfgs[0])
    bad = [c for c in cfgs if group_key(c) != key]
    assert not bad, f"configurations {[(c.method, c.n, c.r) for c in bad]} do not share the group's data and budget"
    emit = on_event or (lambda run_id, ev: None)
    stop_asked = should_stop or (lambda run_id: False)
    run_ids = list(run_ids) if run_ids else [new_run_id(c) for c in cfgs]
    lead = cfgs[0]
    torch.manual_seed(lead.seed)
    lm = lm or load_model(lead.model, lead.device)
    assert all(batchable(c, lm) for c in cfgs), "only input-independent prompts on a causal LM train batched"
    prep = prepare(lead, lm)
    per_pass = prompts_per_pass or default_prompts_per_pass(lm, len(cfgs))

    members = []
    for cfg, rid in zip(cfgs, run_ids):
        method, groups = build_method(cfg, lm)
        params, trainable, opt, sched = optimiser(cfg, method, groups)
        m = Member(cfg, rid, method, params, trainable, opt, sched, artifacts.run_dir(rid) if save else None)
        members.append(m)
        emit(rid, start_event(rid, trainable, cfg, m.folder, prep) | {"group_size": len(cfgs)})

    batches = BatchOrder(len(prep.train_set), lead.batch_size, lead.seed)
    results: dict[str, dict] = {}

    def finish(m: Member) -> None:
        """A configuration's end, as soon as it leaves the group: final evaluation (done only), artifact, event."""
        results[m.run_id] = _finish(m, lm, prep, store, len(members), per_pass, emit)

    t0 = time.time()
    for step in range(1, lead.steps + 1):
        for m in members:
            if m.state == "running" and stop_asked(m.run_id):
                m.state = "stopped"
                finish(m)
        active = [m for m in members if m.state == "running"]
        if not active:
            break
        t_step = time.time()
        ids, mask, lengths, labels = batch_tensors(prep, batches.next(), lm)
        for m in active:
            m.opt.zero_grad(set_to_none=True)
        # the K-prompt pass where packed rows are proven exact on this model (fast_path) and pay
        packed = fast_path.decide(lm).packed and multi_prompt.pays(lm, mask, max(m.cfg.n for m in active))
        for s in range(0, len(active), per_pass if packed else 1):
            chunk = active[s: s + (per_pass if packed else 1)]
            if packed:  # one model pass for the chunk's prompts
                logits = multi_prompt.class_logits(lm, ids, mask, [m.method() for m in chunk], prep.label_ids)
                losses = [F.cross_entropy(logits[i], labels) for i in range(len(chunk))]  # (k, B, C) -> k losses
            else:  # long rows: packing costs more attention than it saves; each prompt as its solo run would
                losses = [engine.loss_on_batch(lm, ids, mask, lengths, labels, prep.label_ids, chunk[0].method)]
            finite = [loss for m, loss in zip(chunk, losses) if _keep(m, loss, step)]
            if finite:
                torch.stack(finite).sum().backward()  # d loss_k / d prompt_j = 0 for j != k: one backward for all
        dt = time.time() - t_step
        for m in active:
            if m.state == "failed":
                finish(m)
                continue
            lr_now = update(m.cfg, m.params, m.opt, m.sched)
            m.step, m.train_time = step, m.train_time + dt
            emit(m.run_id, {"type": "step", "step": step, "loss": m.losses[-1], "lr": lr_now,
                            "examples_per_s": len(labels) / dt, "group_examples_per_s": len(labels) * len(active) / dt,
                            "elapsed_s": time.time() - t0, "eta_s": m.train_time / step * (lead.steps - step)})
            if m.cfg.eval_every and step % m.cfg.eval_every == 0 and step < m.cfg.steps:
                m.evals.append((step, evaluate(lm, prep, m.method, m.cfg, _progress(emit, m, step))))
                emit(m.run_id, {"type": "eval", "step": step, "accuracy": m.evals[-1][1]})

    for m in members:
        if m.state == "running":
            m.state = "done"
            finish(m)
    return [results[m.run_id] for m in members]


def _finish(m: Member, lm, prep, store, group_size: int, per_pass: int, emit) -> dict:
    t_eval = time.time()
    if m.state == "done" and (not m.evals or m.evals[-1][0] != m.step):
        m.evals.append((m.step, evaluate(lm, prep, m.method, m.cfg, _progress(emit, m, m.step))))
        emit(m.run_id, {"type": "eval", "step": m.step, "accuracy": m.evals[-1][1]})
    eval_time = time.time() - t_eval
    zs = zero_shot(lm, m.cfg, prep, store, cached_only=m.state != "done")
    failed = m.state == "failed"
    result = result_record(m.run_id, m.cfg, lm, prep, m.trainable, [] if failed else m.evals, m.losses, m.step,
                           m.state, m.train_time, zs, None if failed else m.folder,
                           eval_seconds=round(eval_time, 2), group_size=group_size, prompts_per_pass=per_pass,
                           error=m.error)
    if m.folder and not failed:
        artifacts.save(m.folder, m.cfg, m.method, result)
    emit(m.run_id, {"type": "end", "state": m.state, "result": result})
    return result


def _progress(emit, m: Member, step: int):
    return progress_events(lambda ev: emit(m.run_id, ev), step)


def _keep(m: Member, loss: torch.Tensor, step: int) -> bool:
    """Record a configuration's loss; a non-finite one fails that configuration alone."""
    value = loss.item()
    if not torch.isfinite(loss):
        m.state, m.error = "failed", f"FloatingPointError: loss became {value} at step {step}; lower the learning rate"
        return False
    m.losses.append(value)
    return True
