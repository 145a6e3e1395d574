"""An honest time estimate for a sweep, from speeds measured on this machine.

Per-example training and evaluation times come from the finished runs in this store on the same model and
device (their recorded train_seconds, steps, batch size, group size and eval_seconds), else from the shipped
reference sweep's timings (a named machine), else there is no estimate. Training cost grows with the row
length, so times are scaled by (n + typical example tokens). One-by-one adds each run's own start-up
(worker, model load, zero-shot evaluation) that a sweep pays once.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

EXAMPLE_TOKENS = 30     # typical tokens of one templated example (SST-2 sentences), for the n scaling
STARTUP_S = 15.0        # worker start + model load (measured ~10-20 s on the 2-core CPU)


@dataclass
class Speed:
    train_s: float          # seconds per training example per prompt, at prompt length n_ref
    eval_s: float           # seconds per evaluated example
    n_ref: float
    runs: int               # how many runs the numbers come from
    basis: str              # where the numbers come from, in words
    startup_s: float = STARTUP_S  # worker start + model load, paid once per process


@dataclass
class Estimate:
    batched_s: float | None
    one_by_one_s: float | None
    basis: str


def _speed_from(results: list[dict], basis: str) -> Speed | None:
    train, evals, ns = [], [], []
    for res in results:
        steps, bs = res.get("steps_done"), res.get("batch_size")
        if not steps or not bs or not res.get("train_seconds"):
            continue
        k = res.get("group_size") or 1
        train.append(res["train_seconds"] / (steps * bs * k))
        ns.append(res.get("n") or 20)
        if res.get("eval_seconds") and res.get("eval_examples"):
            evals.append(res["eval_seconds"] / res["eval_examples"])
    if not train:
        return None
    return Speed(statistics.median(train), statistics.median(evals) if evals else statistics.median(train) / 3,
                 statistics.median(ns), len(train), basis)


def measured_speed(store, model: str, device: str | None = None) -> Speed | None:
    """From this store's finished runs of `model` (prompt methods only: adapters train at other speeds)."""
    from lopt_core.methods import METHODS
    results = []
    for row in store.list(states=("done",)):
        res = row.get("result") or {}
        if row["model"] != model or row["method"] not in METHODS or METHODS[row["method"]].changes_model:
            continue
        if device and not str(res.get("device", "")).startswith(device):
            continue
        results.append({**res, "batch_size": (row.get("config") or {}).get("batch_size")})
    return _speed_from(results, f"{len(results)} run(s) measured on this machine")


def reference_speed(model: str) -> Speed | None:
    from lopt_core.sweeps import results_file
    ref = results_file.reference()
    if ref is None or ref["sweep"]["spec"].get("model") != model:
        return None
    results = [{**r["result"], "batch_size": r["config"].get("batch_size")} for r in ref["runs"] if r.get("result")]
    m = ref.get("machine", {})
    return _speed_from(results, f"the reference sweep's timings ({m.get('cpu', 'unknown CPU')}, "
                                f"{m.get('torch_threads', '?')} threads)")


def _evals(cfg) -> int:
    periodic = len(range(cfg.eval_every, cfg.steps, cfg.eval_every)) if cfg.eval_every else 0
    return periodic + 1


def _eval_examples(cfg) -> int:
    if cfg.eval_size:
        return cfg.eval_size
    return {"sst2": 872}.get(cfg.task, 500)


def sweep_seconds(cfgs, store=None, speed: Speed | None = None, startup_one_s: float | None = None) -> Estimate:
    """Seconds for the whole sweep, batched (one start-up) and one by one (a start-up per run)."""
    if not cfgs:
        return Estimate(0.0, 0.0, "nothing to run")
    lead = cfgs[0]
    from lopt_core.lm.models import pick_device
    try:
        device = pick_device(lead.device).type  # "auto" is the device the run will really use
    except Exception:  # noqa: BLE001  e.g. cuda asked for on a machine without one: the run will say so
        device = None
    speed = speed or (measured_speed(store, lead.model, device) if store is not None else None) \
        or reference_speed(lead.model)
    if speed is None:
        return Estimate(None, None, f"no timing yet for {lead.model} on this machine: the first run measures it")
    work = 0.0
    for c in cfgs:
        scale = (c.n + EXAMPLE_TOKENS) / (speed.n_ref + EXAMPLE_TOKENS)
        work += c.steps * c.batch_size * speed.train_s * scale + _evals(c) * _eval_examples(c) * speed.eval_s * scale
    zero_shot = _eval_examples(lead) * speed.eval_s
    batched = speed.startup_s + zero_shot + work
    one = speed.startup_s if startup_one_s is None else startup_one_s
    one_by_one = len(cfgs) * one + zero_shot + work  # the store caches the zero-shot accuracy across runs
    return Estimate(batched, one_by_one, speed.basis)


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    m = seconds / 60
    return f"{seconds:.0f} s" if seconds < 90 else (f"{m:.0f} min" if m < 90 else f"{m / 60:.1f} h")


def describe(est: Estimate) -> str:
    if est.batched_s is None:
        return f"time: unknown ({est.basis})"
    return f"about {fmt(est.batched_s)} as one sweep (one by one: {fmt(est.one_by_one_s)}); from {est.basis}"
