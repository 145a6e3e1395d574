"""Which precision the frozen model computes in: fp32 or bf16, decided by measurement on the machine at hand.

    load(name, device, requested)  the LoadedModel at the decided precision, with lm.precision_reason set
    decide(name, device, requested, threads)   the Verdict alone (measures once per machine, then cached)

requested "fp32" or "bf16" is taken as asked. "auto":
  - CUDA: bf16 where the GPU supports it, else fp32.
  - CPU: time a few training steps of the loaded model in fp32 and in bf16, interleaved, on first use per
    (CPU model, torch version, model, threads); bf16 where it is at least BF16_MIN_SPEEDUP times faster. A CPU
    with bf16 matrix units (AMX) gains ~2x; one without them (the AMD EPYC this project was first timed on)
    runs bf16 many times slower. The verdict is cached in precision.json beside the models ($LOPT_HOME/models) and shown by
    `python -m lopt_core precision`.
  - The same measurement then times one step at a run's shape in the chosen precision: the calibration from
    which a machine that has trained nothing yet estimates a sweep's time (sweeps/estimate.py).
What bf16 changes: the frozen weights are held in bf16 (cast once at load). Trainable tensors, the optimiser
state, label logits and the loss stay fp32; a prompt is cast to the body's dtype where it enters the model.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import torch

from lopt_core import paths
from lopt_core.lm.models import LoadedModel, canonical, load_model, pick_device

BF16_MIN_SPEEDUP = 1.3
CACHE_FILE = "precision.json"
STEP_SHAPE = (2, 24)   # the timed step: 48 tokens (an SST-2 example is ~30); small, so a slow bf16 costs seconds
CALIBRATION_SHAPE = (8, 50)  # then one step as a run takes it (batch 8, n=20 + an example), at the chosen precision
CLEARLY_SLOWER = 3.0   # a bf16 warm-up this many times fp32's ends the measurement at once


@dataclass(frozen=True)
class Verdict:
    precision: str              # "fp32" | "bf16"
    reason: str                 # in words, with the measured ratio where there is one
    speedup: float | None = None   # fp32 step time / bf16 step time, where measured


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform's word for it."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(name: str, threads: int) -> str:
    return f"{cpu_model()}|torch {torch.__version__}|{canonical(name)}|{threads} threads"


def _cache_path():
    """Beside the dequantized models (LOPT_MODEL_CACHE where set): a verdict is the machine's, not one home's."""
    return paths.models_dir() / CACHE_FILE


def cached() -> dict:
    """Every verdict measured under this LOPT_HOME, by cache key."""
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _remember(key: str, entry: dict) -> None:
    path = _cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    gone = lambda e: os.path.isabs(str(e.get("model", ""))) and not os.path.exists(e["model"])  # noqa: E731
    data = {k: e for k, e in cached().items() if not gone(e)} | {key: entry}  # a deleted folder's model is no more
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _step(lm: LoadedModel, x: torch.Tensor) -> None:
    """One training-like step: forward through the body from input embeddings, backward to them."""
    x = x.detach().to(lm.dtype).requires_grad_(True)
    if lm.is_seq2seq:  # the encoder reads the embeddings, the decoder scores its first token
        start = torch.zeros(x.shape[0], 1, dtype=torch.long, device=x.device)
        h = lm.model(inputs_embeds=x, decoder_input_ids=start).logits                # (B, 1, V)
    else:
        h = lm.model.base_model(inputs_embeds=x).last_hidden_state                   # (B, L, d)
    h[:, -1].float().sum().backward()


MIN_SAMPLE_S = 0.02    # a round repeats the step until it lasts about this long (a tiny model's step is ~1 ms)


def measure(name: str, device: str = "cpu", repeats: int = 3) -> dict:
    """Seconds per step in fp32 and in bf16, interleaved in `repeats` rounds after one warm-up each: the fastest
    step of each (the fastest, not the median: another process's load only ever slows a step down). A round
    takes about MIN_SAMPLE_S per precision, so a tiny model's millisecond steps get many tries. Where bf16's
    warm-up step alone is CLEARLY_SLOWER times fp32's, the warm-ups decide: a CPU without bf16 units would
    otherwise spend minutes proving it (one bf16 step of SmolLM2 took ~20x fp32 on an AMD EPYC)."""
    fp32, bf16 = load_model(name, device, "fp32"), load_model(name, device, "bf16")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*STEP_SHAPE, fp32.d, generator=g).to(fp32.device) * 0.02      # (B, L, d)
    warm = {}
    for key, lm in (("fp32", fp32), ("bf16", bf16)):
        t0 = time.perf_counter()
        _step(lm, x)
        warm[key] = time.perf_counter() - t0
    if warm["bf16"] > CLEARLY_SLOWER * warm["fp32"]:  # fp32 wins; one more fp32 step, warm, calibrates the speed
        t0 = time.perf_counter()
        _step(fp32, x)
        fp32_s = min(warm["fp32"], time.perf_counter() - t0)
        return {"fp32_s": fp32_s, "bf16_s": warm["bf16"], "speedup": fp32_s / warm["bf16"],
                "steps": 2, "shape": list(STEP_SHAPE)} | calibrate(fp32)
    per_sample = max(1, int(MIN_SAMPLE_S / max(1e-6, min(warm.values()))) + 1)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for key, lm in (("fp32", fp32), ("bf16", bf16)):
            for _ in range(per_sample):  # each step timed alone: the fastest one is the least disturbed
                t0 = time.perf_counter()
                _step(lm, x)
                times[key].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    speedup = best["fp32"] / best["bf16"]
    return {"fp32_s": best["fp32"], "bf16_s": best["bf16"], "speedup": speedup,
            "steps": repeats * per_sample, "shape": list(STEP_SHAPE)} | calibrate(bf16 if choose(speedup) == "bf16"
                                                                              else fp32)


def choose(speedup: float) -> str:
    return "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"


def calibrate(lm: LoadedModel) -> dict:
    """Seconds of one warm training-like step at CALIBRATION_SHAPE: the first time estimate on a machine that
    has run nothing yet (sweeps/estimate.py)."""
    x = torch.randn(*CALIBRATION_SHAPE, lm.d, generator=torch.Generator().manual_seed(0)).to(lm.device) * 0.02
    times = []
    for _ in range(2):  # a warm-up at the new shape, then the timed step
        t0 = time.perf_counter()
        _step(lm, x)
        times.append(time.perf_counter() - t0)
    return {"step_s": times[1], "step_shape": list(CALIBRATION_SHAPE), "calibrated": True}


def calibration(name: str, threads: int | None = None) -> dict | None:
    """The cached measurement of model `name` at this thread count, where its step times were taken warm (the
    speed estimates' calibration: sweeps/estimate.py); None before the first measurement on this machine."""
    entry = cached().get(cache_key(name, threads or torch.get_num_threads()))
    return entry if entry and entry.get("calibrated") else None


def decide(name: str, device: str = "auto", requested: str = "auto", threads: int | None = None,
           measure_now: bool = True) -> Verdict | None:
    """The precision a run of model `name` computes in, and why. measure_now=False: None where auto would have
    to measure first (a readout that must not take seconds)."""
    if requested in ("fp32", "bf16"):
        return Verdict(requested, f"{requested}, as asked")
    dev = pick_device(device)
    if dev.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return Verdict("bf16" if ok else "fp32", "auto: this GPU " + ("supports bf16" if ok else "lacks bf16"))
    threads = threads or torch.get_num_threads()
    key = cache_key(name, threads)
    entry = cached().get(key)
    if entry is None or (measure_now and not entry.get("calibrated")):  # measured before steps were timed warm
        if not measure_now:
            return None
        entry = measure(name, str(dev)) | {"cpu": cpu_model(), "torch": torch.__version__, "model": canonical(name),
                                           "threads": threads,
                                           "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        entry["precision"] = choose(entry["speedup"])
        _remember(key, entry)
    s = entry["speedup"]
    return Verdict(entry["precision"], f"auto: bf16 steps ran {s:.2f}x the speed of fp32 on this CPU "
                                       f"({entry['cpu']}, {threads} threads; bf16 needs {BF16_MIN_SPEEDUP}x)", s)


def load(name: str, device: str = "auto", requested: str = "auto") -> LoadedModel:
    """The model at the decided precision, its verdict's reason on lm.precision_reason."""
    v = decide(name, device, requested)
    lm = load_model(name, device, v.precision)
    lm.precision_reason = v.reason
    return lm


def describe(v: Verdict | None) -> dict:
    return asdict(v) if v is not None else {"precision": None, "reason": "not measured on this machine yet"}
