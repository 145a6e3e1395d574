"""An honest time estimate for a sweep, from speeds measured on this machine, and a check of a live run's pace.

Per-example training and evaluation times come, in this order, from:
  1. the finished runs in this store on the same model and device (their recorded train_seconds, steps, batch
     size, group size and eval_seconds);
  2. the calibration this machine made when it first loaded the model (lm/precision.py times a few
     forward-and-backward steps of the model's body: seconds, not minutes);
  3. the shipped atlas's timings, only where the atlas was made on this CPU model;
else there is no estimate. Another machine's timings never stand in for this one's. Training cost grows with
the row length, so times are scaled by (n + typical example tokens). One-by-one adds each run's own start-up
(worker, model load, zero-shot evaluation) that a sweep pays once.

pace() compares a running run's measured seconds per step with what this machine's speed predicts: a host
slowed by other load shows as "N× slower than measured here", and the page says so.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

EXAMPLE_TOKENS = 30     # typical tokens of one templated example (SST-2 sentences), for the n scaling
STARTUP_S = 15.0        # worker start + model load (measured ~10-20 s on the 2-core CPU)
SLOW = 1.5              # a run this many times slower than predicted is called out as slowed down
# a whole training step (loss head, optimiser, data) over the calibrated body step: 1.42 s against 1.28 s for
# SmolLM2 on the 2-core AMD EPYC (an 8-step SST-2 run of LoPT-1, batch 8, beside `precision`'s calibration)
CALIBRATION_OVERHEAD = 1.1


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


def measured_speed(store, model: str, device: str | None = None, solo: bool = False,
                   precision: str | None = None) -> Speed | None:
    """From this store's finished runs of `model` (prompt methods only: adapters train at other speeds).
    solo: only runs that trained alone (a batched group's prompts train faster each). precision: only runs that
    computed in it (bf16 steps run ~2x fp32's on a CPU with AMX, many times slower on one without)."""
    from lopt_core.methods import METHODS
    results = []
    for row in store.list(states=("done",)):
        res = row.get("result") or {}
        if row["model"] != model or row["method"] not in METHODS or METHODS[row["method"]].changes_model:
            continue
        if device and not str(res.get("device", "")).startswith(device):
            continue
        if solo and (res.get("group_size") or 1) > 1:
            continue
        if precision and res.get("precision", "fp32") != precision:
            continue
        results.append({**res, "batch_size": (row.get("config") or {}).get("batch_size")})
    return _speed_from(results, f"{len(results)} run(s) measured on this machine")


def calibrated_speed(model: str, precision: str | None = None) -> Speed | None:
    """From the step this machine timed when it first loaded `model` (lm/precision.py: the body's forward and
    backward at a run's shape in fp32 and in bf16), scaled to a whole training step: the step of `precision`
    where given, else of the precision auto chose."""
    from lopt_core.lm import precision as prec
    entry = prec.calibration(model)
    if entry is None:
        return None
    batch, length = entry["step_shape"]
    n_ref = length - EXAMPLE_TOKENS
    chosen = precision or entry["precision"]
    step = entry["step_s"] if chosen == entry["precision"] else entry.get(f"{chosen}_s")
    if not step or (chosen != entry["precision"] and entry.get("shape") != entry["step_shape"]):
        return None   # that precision's step was not timed at a run's shape (a CPU where bf16 is far slower)
    train = step / batch * CALIBRATION_OVERHEAD
    return Speed(train, train / 3, n_ref, 0, f"a calibration of {model} on this machine ({entry['cpu']}, "
                                            f"{entry['threads']} threads, {chosen}); the first run "
                                            f"measures it whole")


def atlas_speed(model: str, precision: str | None = None) -> Speed | None:
    """The shipped atlas's timings of `model`, only where its machine had this machine's CPU model (and, where
    given, only its runs in `precision`)."""
    from lopt_core.lm.models import canonical
    from lopt_core.lm.precision import cpu_model
    from lopt_core.sweeps import results_file
    here = cpu_model()
    docs = [d for d in results_file.atlas() if d["machine"].get("cpu") == here]
    results = [{**r["result"], "batch_size": r["config"].get("batch_size")} for d in docs for r in d["runs"]
               if r.get("result") and canonical(r["config"]["model"]) == canonical(model)
               and (not precision or r["result"].get("precision", "fp32") == precision)]
    return _speed_from(results, f"the atlas's timings on this CPU model ({here})")


def speed_here(store, model: str, device: str | None = None, solo: bool = False,
               precision: str | None = None) -> Speed | None:
    """This machine's speed for `model` in `precision` (None: any): its finished runs, else its calibration,
    else the atlas on this CPU. The calibration and the atlas are CPU timings: a GPU run has only its own
    machine's runs."""
    measured = measured_speed(store, model, device, solo, precision) if store is not None else None
    if measured is not None or (device and not str(device).startswith("cpu")):
        return measured
    return calibrated_speed(model, precision) or (None if solo else atlas_speed(model, precision))


def precision_of(model: str, requested: str | None, device: str | None) -> str | None:
    """The precision a run of `model` asking for `requested` computes in on this machine, where known without
    measuring (auto before the first measurement: None, and the speeds of every precision count)."""
    from lopt_core.lm import precision
    try:
        v = precision.decide(model, device or "cpu", requested or "auto", measure_now=False)
    except Exception:  # noqa: BLE001  an unknown device or model: the run itself will say so
        return None
    return v.precision if v else None


_PACE_CACHE: dict = {}   # (store, model, device, solo, precision) -> (time read, Speed): a page polls pace() each second
PACE_CACHE_S = 30.0


def pace(store, row: dict, per_step_s: float, group_size: int | None = None) -> float | None:
    """How many times slower a run's measured seconds per step are than this machine's speed predicts (None
    where nothing predicts it). group_size: the prompts its batched group trains per step; None for a run seen
    alone, whose group is unknown when it belongs to a sweep (then None). A group is read against this machine's
    batched speed where it has one, else its solo speed, which only overstates a group's step (no false alarm).
    This machine's speed is read at most every PACE_CACHE_S per model: the runs list is not read per poll."""
    c = row.get("config") or {}
    if group_size is None:
        if row.get("sweep_id"):
            return None
        group_size = 1
    if not per_step_s:
        return None
    res = row.get("result") or {}
    prec = res.get("precision") or precision_of(row["model"], c.get("precision"), res.get("device"))
    key = (str(getattr(store, "path", id(store))), row["model"], res.get("device"), group_size == 1, prec)
    at, speed = _PACE_CACHE.get(key, (0.0, None))
    if time.monotonic() - at > PACE_CACHE_S:
        speed = speed_here(store, row["model"], key[2], solo=group_size == 1, precision=prec)
        _PACE_CACHE[key] = (time.monotonic(), speed)
    if speed is None:
        return None
    scale = (int(c.get("n") or 20) + EXAMPLE_TOKENS) / (speed.n_ref + EXAMPLE_TOKENS)
    return per_step_s / (group_size * int(c.get("batch_size") or 8) * speed.train_s * scale)


def group_pace(store, rows: list[dict]) -> float | None:
    """How many times slower a sweep's running batched group steps than this machine's speed predicts (None:
    not known, or not slower than SLOW). `rows`: the sweep's current runs; those running form the group."""
    running = [r for r in rows if r["state"] == "running" and r["steps_done"]]
    if not running:
        return None
    per_step = step_compute_seconds(store.metrics(running[0]["run_id"], "loss", last=RECENT_STEPS),
                                    int(running[0]["config"].get("batch_size") or 8))
    slower = pace(store, running[0], per_step, group_size=len(running)) if per_step else None
    return slower if slower is not None and slower >= SLOW else None


RECENT_STEPS = 10  # a run's pace and remaining time come from its last this many loss points


def seconds_per_step(metrics: list[dict]) -> float | None:
    """A run's recent wall seconds per step, from its last ten loss points' times: evaluations, checkpoints and
    writes between steps included (what its remaining time needs)."""
    if len(metrics) < 2:
        return None
    recent = metrics[-RECENT_STEPS:]
    return (recent[-1]["t"] - recent[0]["t"]) / max(1, recent[-1]["step"] - recent[0]["step"])


def step_compute_seconds(metrics: list[dict], batch_size: int) -> float | None:
    """A run's recent seconds of training compute per step: the median over its last ten loss points of the
    step's own time (batch / examples per second, as the loop measured it), the same time train_seconds sums.
    An evaluation between two steps is not in it, so a periodic evaluation never reads as a slow host."""
    rates = [m["examples_per_s"] for m in metrics[-RECENT_STEPS:] if m.get("examples_per_s")]
    return batch_size / statistics.median(rates) if len(rates) >= 2 else None


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
    speed = speed or speed_here(store, lead.model, device, precision=precision_of(lead.model, lead.precision, device))
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
