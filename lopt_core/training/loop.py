"""The one training loop: AdamW, warm-up + linear decay, clipping, periodic evaluation, events, stop flags.

train_group(cfgs) trains K configurations that share data and budget (group.py) on one batch per step; a solo
run is a group of one (train(cfg)). Each configuration keeps its own method, AdamW state, learning-rate
schedule, clipping, evaluations, events and artifact, and ends as an ordinary run: a configuration trained in a
group gives the loss curve and prompt it gives alone, within float tolerance (tests/test_group.py).

Events, per configuration, are dicts:
  start {trainable_params, total_steps, artifact_dir, ...}   step {step, loss, lr, examples_per_s, eta_s}
  eval_progress {step, done, total}   eval {step, accuracy}   end {state, result}
Every configuration ends the same way, alone or in a group:
  done     evaluated at its last step (unless an evaluation already ran there);
  stopped  (should_stop) leaves at once and is evaluated on what it trained, unless stopped before its first
           step; asking again while that evaluation runs (should_skip_eval) ends it without one;
  failed   a non-finite loss fails that configuration alone, with the reason; the others go on.
An exception that is not a configuration's own (an event handler, the model) ends the whole call.
The loop trusts its configurations: they were checked once before queuing (checks.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

import torch

from lopt_core.config import RunConfig
from lopt_core.data.tasks import TaskData, fingerprint, load_for_config
from lopt_core.lm import fast_path, multi_prompt, precision
from lopt_core.lm.models import LoadedModel
from lopt_core.methods import PromptContext, get_method
from lopt_core.training import artifacts, checkpoints, objectives
from lopt_core.training.group import batchable, default_prompts_per_pass, group_key


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


@dataclass
class Prepared:
    """A run's data on a loaded model: its objective (the task kind's loss and score), tokenized train and test sets."""
    data: TaskData
    objective: objectives.Objective
    train_set: objectives.Encoded
    test_set: objectives.Encoded
    test_fingerprint: str = ""      # tasks.fingerprint of the test examples: runs compare only when equal


def prepare(cfg: RunConfig, lm: LoadedModel) -> Prepared:
    data = load_for_config(cfg, lm.tokenizer)
    objective = objectives.for_data(data, lm.tokenizer, cfg.max_length)
    test_examples = data.test[: cfg.eval_size] if cfg.eval_size else data.test
    train_set, test_set = objective.encode(data.train), objective.encode(test_examples)
    assert len(train_set) > 0 and len(test_set) > 0, "the task has no training or test examples"
    return Prepared(data, objective, train_set, test_set, fingerprint(test_examples))


class BatchOrder:
    """Shuffled passes over the training set, seeded: the same seed gives the same batches."""

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size = size, batch_size
        self.g = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(size, generator=self.g).tolist(), 0

    def state(self) -> dict:
        return {"order": list(self.order), "pos": self.pos, "g": self.g.get_state()}

    def restore(self, st: dict) -> None:
        self.order, self.pos = list(st["order"]), int(st["pos"])
        self.g.set_state(st["g"])

    def next(self) -> list[int]:
        idx = []
        while len(idx) < self.batch_size:
            if self.pos == len(self.order):
                self.order, self.pos = torch.randperm(self.size, generator=self.g).tolist(), 0
            idx.append(self.order[self.pos])
            self.pos += 1
        return idx


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
    """The run's record. `accuracy` holds the headline score of any kind (the store's column and the plots'
    axis); `metric` names it (accuracy or exact_match) and `score` repeats it; `scores` holds the others."""
    last = evals[-1][2] if evals else None
    return {"run_id": run_id, "model": lm.name, "task": prep.data.task.name, "method": cfg.method, "n": cfg.n,
            "r": cfg.r, "trainable_params": trainable, "accuracy": last.score if last else None,
            "kind": prep.data.kind, "metric": prep.objective.metric, "score": last.score if last else None,
            "scores": last.extra if last else {},
            # per test example, in order: 1 right, 0 wrong (a paired comparison of two runs on one test set)
            "correct": "".join("1" if c else "0" for c in last.correct) if last else None,
            "zero_shot_accuracy": zs, "train_seconds": round(train_time, 2), "steps_done": step,
            "final_loss": losses[-1] if losses else None, "lr": cfg.resolved_lr(), "state": state,
            "eval_examples": len(prep.test_set), "data_source": prep.data.source,
            "split_seed": cfg.split_seed, "test_fingerprint": prep.test_fingerprint,
            "artifact_dir": str(folder) if folder else None, "device": str(lm.device),
            "torch_threads": torch.get_num_threads(), "precision": lm.precision,
            "precision_reason": lm.precision_reason or f"{lm.precision}: the model it was given",
            "fast_path": fast_path.for_run(lm, get_method(cfg.method), cfg.shared_prefix), **extra}


def _zero_shot_key(cfg: RunConfig, data, lm_precision: str = "fp32") -> str:
    """The no-prompt score's cache key (fp32 classification keys stay as older stores wrote them)."""
    raw = f"{cfg.model}|{data.task.name}|{data.task.template}|{data.task.label_words}|{cfg.eval_size}|" \
          f"{cfg.max_length}|{cfg.split_seed}|{data.source}" + ("" if lm_precision == "fp32" else f"|{lm_precision}")
    if data.kind != "classification":
        raw += f"|{data.kind}|{getattr(data.task, 'max_new_tokens', 0)}"
    return hashlib.sha1(raw.encode()).hexdigest()


class EvalSkipped(Exception):
    """Raised from an evaluation's progress callback when the user asked for the run to end without it."""


def evaluate(lm, prep: Prepared, method, cfg, on_progress=None) -> objectives.Scored:
    """The attached `method`'s score on the run's test set, under the task's metric."""
    return prep.objective.evaluate(lm, prep.test_set, **method.scoring_args(), batch_size=cfg.eval_batch_size,
                                   shared_prefix=cfg.shared_prefix, on_progress=on_progress)


def progress_events(emit, step: int, skip=None):
    """An evaluation progress callback that emits eval_progress events (and aborts when `skip()` turns true)."""
    def on_progress(done: int, total: int) -> None:
        emit({"type": "eval_progress", "step": step, "done": done, "total": total})
        if skip is not None and done < total and skip():
            raise EvalSkipped()
    return on_progress


def zero_shot(lm, cfg, prep: Prepared, store, cached_only: bool = False) -> float | None:
    """Accuracy of the same model and template with no prompt; cached in the store when one is given."""
    key = _zero_shot_key(cfg, prep.data, lm.precision)
    if store is not None and (hit := store.zero_shot(key)) is not None:
        return hit
    if cached_only:
        return None
    acc = prep.objective.evaluate(lm, prep.test_set, None, None, cfg.eval_batch_size).score
    if store is not None:
        store.set_zero_shot(key, acc)
    return acc


def train(cfg: RunConfig, on_event=None, should_stop=None, lm: LoadedModel | None = None, run_id: str | None = None,
          store=None, save: bool = True, should_skip_eval=None) -> dict:
    """Train one run (a group of one); returns the result dict (also written to the artifact's run.json).
    on_event(ev), should_stop() and should_skip_eval() are the run's own."""
    emit = on_event or (lambda ev: None)
    return train_group([cfg], [run_id] if run_id else None, on_event=lambda rid, ev: emit(ev),
                       should_stop=(lambda rid: should_stop()) if should_stop else None,
                       should_skip_eval=(lambda rid: should_skip_eval()) if should_skip_eval else None,
                       lm=lm, store=store, save=save)[0]


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
    train_time: float = 0.0         # wall seconds of the steps this configuration took part in


def train_group(cfgs: list[RunConfig], run_ids: list[str] | None = None, on_event=None, should_stop=None,
                lm: LoadedModel | None = None, store=None, save: bool = True, prompts_per_pass: int | None = None,
                should_skip_eval=None) -> list[dict]:
    """Train every configuration of one group; returns their result dicts, in order.

    on_event(run_id, event), should_stop(run_id) and should_skip_eval(run_id) are per configuration."""
    assert cfgs, "a group needs at least one configuration"
    key = group_key(cfgs[0])
    bad = [c for c in cfgs if group_key(c) != key]
    assert not bad, f"configurations {[(c.method, c.n, c.r) for c in bad]} do not share the group's data and budget"
    emit = on_event or (lambda run_id, ev: None)
    stop_asked = should_stop or (lambda run_id: False)
    skip_asked = should_skip_eval or (lambda run_id: False)
    run_ids = list(run_ids) if run_ids else [new_run_id(c) for c in cfgs]
    lead = cfgs[0]
    torch.manual_seed(lead.seed)
    if lm is None or lead.precision not in ("auto", lm.precision):  # a loaded model of another precision
        lm = precision.load(lead.model, lead.device, lead.precision)
    assert len(cfgs) == 1 or all(batchable(c, lm) for c in cfgs), \
        "only input-independent prompts on a causal LM train batched"
    prep = prepare(lead, lm)
    per_pass = prompts_per_pass or default_prompts_per_pass(lm, len(cfgs))

    with ExitStack() as attached:  # an adapter leaves the shared base model however the run ends
        members = []
        for cfg, rid in zip(cfgs, run_ids):
            method = make_method(cfg, lm)
            attached.enter_context(method.attached(lm))
            params, trainable, opt, sched = optimiser(cfg, method, method.param_groups(cfg.resolved_lr()))
            m = Member(cfg, rid, method, params, trainable, opt, sched, artifacts.run_dir(rid) if save else None)
            members.append(m)
            emit(rid, start_event(rid, trainable, cfg, m.folder, prep) | {"group_size": len(cfgs)})

        batches = BatchOrder(len(prep.train_set), lead.batch_size, lead.seed)
        results: dict[str, dict] = {}

        def finish(m: Member) -> None:
            """A configuration's end, as soon as it leaves the group: final evaluation, artifact, end event."""
            results[m.run_id] = _finish(m, lm, prep, store, len(members), per_pass, emit, skip_asked)

        start = _resume(members, batches, emit)  # a checkpoint of every member: continue after its step
        t0, saved_at = time.time(), time.time()
        for step in range(start + 1, lead.steps + 1):
            for m in members:
                if m.state == "running" and stop_asked(m.run_id):
                    m.state = "stopped"
                    finish(m)
            active = [m for m in members if m.state == "running"]
            if not active:
                break
            t_step = time.time()
            b = prep.objective.batch(prep.train_set, batches.next(), lm)
            for m in active:
                m.opt.zero_grad(set_to_none=True)
            # K prompts in one pass where packed rows are proven exact on this model (fast_path) and pay
            packed = len(cfgs) > 1 and fast_path.decide(lm).packed and \
                multi_prompt.pays(lm, b.mask, max(m.cfg.n for m in active))
            chunk_size = per_pass if packed else 1
            for s in range(0, len(active), chunk_size):
                chunk = active[s: s + chunk_size]
                if packed:  # one model pass for the chunk's prompts
                    losses = prep.objective.group_losses(lm, b, [m.method() for m in chunk])
                else:  # one configuration's own pass (a solo run; long rows, where packing costs more than it saves)
                    m = chunk[0]
                    losses = [prep.objective.loss(lm, b, m.method.scoring_args(), m.cfg.shared_prefix)]
                finite = [loss for m, loss in zip(chunk, losses) if _keep(m, loss, step)]
                if finite:
                    torch.stack(finite).sum().backward()  # d loss_k / d prompt_j = 0 for j != k: one backward
            dt = time.time() - t_step
            for m in active:
                if m.state == "failed":
                    finish(m)
                    continue
                lr_now = update(m.cfg, m.params, m.opt, m.sched)
                m.step, m.train_time = step, m.train_time + dt
                emit(m.run_id, {"type": "step", "step": step, "loss": m.losses[-1], "lr": lr_now,
                                "examples_per_s": b.size / dt,
                                "group_examples_per_s": b.size * len(active) / dt,
                                "elapsed_s": time.time() - t0, "eta_s": m.train_time / step * (lead.steps - step)})
                if m.cfg.eval_every and step % m.cfg.eval_every == 0 and step < m.cfg.steps:
                    _evaluated(m, step, evaluate(lm, prep, m.method, m.cfg, _progress(emit, m, step)), emit)
            if save and step < lead.steps and time.time() - saved_at >= checkpoints.EVERY_S:
                for m in members:
                    if m.state == "running":
                        checkpoints.save(m.folder, _checkpoint(m, batches))
                saved_at = time.time()

        for m in members:
            if m.state == "running":
                m.state = "done"
                finish(m)
        return [results[m.run_id] for m in members]


def _checkpoint(m: Member, batches: BatchOrder) -> dict:
    """Everything the configuration needs to continue after m.step with the same batches (checkpoints.py)."""
    return {"step": m.step, "params": [p.detach().cpu().clone() for p in m.params], "opt": m.opt.state_dict(),
            "sched": m.sched.state_dict(), "losses": list(m.losses), "train_time": m.train_time,
            "evals": [(s, score, dataclasses.asdict(scored)) for s, score, scored in m.evals],
            "batches": batches.state(), "rng": torch.get_rng_state(), "run_id": m.run_id}


def _resume(members: list[Member], batches: BatchOrder, emit) -> int:
    """Restore every member from its checkpoint when all have one, taken at the same step (a group saves them
    together); returns that step, 0 when the group starts from the beginning."""
    ckpts = [checkpoints.load(m.folder) for m in members]
    if not all(ckpts) or len({int(c["step"]) for c in ckpts}) != 1 or \
            any(c.get("run_id") != m.run_id for c, m in zip(ckpts, members)):
        return 0
    for m, c in zip(members, ckpts):
        with torch.no_grad():
            for p, saved in zip(m.params, c["params"]):
                p.copy_(saved.to(p.device, p.dtype))
        m.opt.load_state_dict(c["opt"])
        m.sched.load_state_dict(c["sched"])
        m.step, m.losses, m.train_time = int(c["step"]), list(c["losses"]), float(c["train_time"])
        m.evals = [(s, score, objectives.Scored(**d)) for s, score, d in c["evals"]]
        emit(m.run_id, {"type": "resumed", "step": m.step})
    batches.restore(ckpts[0]["batches"])
    torch.set_rng_state(ckpts[0]["rng"])
    return int(ckpts[0]["step"])


def _finish(m: Member, lm, prep, store, group_size: int, per_pass: int, emit, skip_asked) -> dict:
    """Evaluate what the configuration trained (done, or stopped after its first step; a second Stop during
    that evaluation skips it), then its result record, artifact and end event."""
    t_eval, extra = time.time(), {}
    if m.state in ("done", "stopped") and m.step > 0 and (not m.evals or m.evals[-1][0] != m.step):
        skip = (lambda: skip_asked(m.run_id)) if m.state == "stopped" else None
        try:
            _evaluated(m, m.step, evaluate(lm, prep, m.method, m.cfg, _progress(emit, m, m.step, skip)), emit)
            extra = {"evaluated_after_stop": True} if m.state == "stopped" else {}
        except EvalSkipped:
            extra = {"evaluation_skipped": "stop was pressed again during the evaluation"}
    eval_time = time.time() - t_eval
    zs = zero_shot(lm, m.cfg, prep, store, cached_only=m.state != "done")
    failed = m.state == "failed"
    result = result_record(m.run_id, m.cfg, lm, prep, m.trainable, [] if failed else m.evals, m.losses, m.step,
                           m.state, m.train_time, zs, None if failed else m.folder,
                           eval_seconds=round(eval_time, 2), group_size=group_size, prompts_per_pass=per_pass,
                           error=m.error, **extra)
    if m.folder and not failed:
        artifacts.save(m.folder, m.cfg, m.method, result)
    checkpoints.remove(m.folder)
    emit(m.run_id, {"type": "end", "state": m.state, "result": result})
    return result


def _evaluated(m: Member, step: int, scored: objectives.Scored, emit) -> None:
    """Keep an evaluation (step, score, Scored) and tell the listeners: `accuracy` is the headline score."""
    m.evals.append((step, scored.score, scored))
    emit(m.run_id, {"type": "eval", "step": step, "accuracy": scored.score, "metric": scored.metric,
                    **scored.extra})


def _progress(emit, m: Member, step: int, skip=None):
    return progress_events(lambda ev: emit(m.run_id, ev), step, skip)


def _keep(m: Member, loss: torch.Tensor, step: int) -> bool:
    """Record a configuration's loss; a non-finite one fails that configuration alone."""
    value = loss.item()
    if not torch.isfinite(loss):
        m.state, m.error = "failed", f"FloatingPointError: loss became {value} at step {step}; lower the learning rate"
        return False
    m.losses.append(value)
    return True
