"""Which precision the frozen model computes in: fp32 or bf16, decided by measurement on the machine at hand.

    load(name, device, requested)  the LoadedModel at the decided precision, with lm.precision_reason set
    decide(name, device, requested, threads)   the Verdict alone (measures once per machine, then cached)

requested "fp32" or "bf16" is taken as asked. "auto":
  - CUDA: bf16 where the GPU supports it, else fp32.
  - CPU: time a few training steps of the loaded model at a run's shape in fp32, in bf16 and in bf16 with the
    attention in fp32, interleaved, on first use per (CPU model, torch version, model, threads); bf16 where its
    faster variant is at least BF16_MIN_SPEEDUP times faster than fp32. A CPU with bf16 matrix units (AMX) gains
    ~1.5-2.3x; one without them (the AMD EPYC this project was first timed on) runs bf16 many times slower. The
    verdict is cached in precision.json beside the models ($LOPT_HOME/models) and shown by
    `python -m lopt_core precision`.
  - The chosen variant's step time is the calibration from which a machine that has trained nothing yet
    estimates a sweep's time (sweeps/estimate.py).
What bf16 changes: the frozen weights are held in bf16 (cast once at load); where measured faster, the attention
product runs on fp32 copies of q, k, v (lm/attention.py). Trainable tensors, the optimiser state, label logits
and the loss stay fp32; a prompt is cast to the body's dtype where it enters the model. An explicit "bf16" keeps
the attention this machine measured faster, where it has measured.
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
from lopt_core.lm import attention
from lopt_core.lm.models import LoadedModel, canonical, load_model, pick_device

BF16_MIN_SPEEDUP = 1.3
CACHE_FILE = "precision.json"
STEP_SHAPE = (2, 24)   # the first warm-ups: 48 tokens, so a CPU where bf16 is many times slower learns it in seconds
CALIBRATION_SHAPE = (8, 50)  # the timed steps: one step as a run takes it (batch 8, n=20 + an SST-2 example)
CLEARLY_SLOWER = 3.0   # a bf16 warm-up this many times fp32's ends the measurement at once


@dataclass(frozen=True)
class Verdict:
    precision: str              # "fp32" | "bf16"
    reason: str                 # in words, with the measured ratio where there is one
    speedup: float | None = None   # fp32 step time / bf16 step time, where measured
    fp32_attention: bool = False   # a bf16 body computes its attention in fp32 (lm/attention.py): measured faster


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform's word for it."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")   # named in the cache key only, never used to decide


def cpu_signature() -> str:
    """Family, model and the bf16-related flags (/proc/cpuinfo): two CPUs behind one model name (a hypervisor's
    "Intel(R) Xeon(R) Processor", with AMX exposed on one and not the other) get their own verdicts."""
    fields, flags = {}, set()
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("cpu family", "model") and k not in fields:
                fields[k] = v.strip()
            elif k == "flags":
                flags = set(v.split())
                break
    except OSError:
        return ""
    return " ".join([f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"]
                    + [f for f in BF16_FLAGS if f in flags])


def cache_key(name: str, threads: int) -> str:
    return f"{cpu_model()} ({cpu_signature()})|torch {torch.__version__}|{canonical(name)}|{threads} threads"


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
    """Seconds per step at a run's shape (CALIBRATION_SHAPE) in fp32, in bf16, and in bf16 with the attention
    in fp32 (lm/attention.py), interleaved in `repeats` rounds after warm-ups: the fastest step of each (the
    fastest, not the median: another process's load only ever slows a step down). A round takes about
    MIN_SAMPLE_S per variant, so a tiny model's millisecond steps get many tries. The first warm-ups run at the
    small STEP_SHAPE: where bf16's alone is CLEARLY_SLOWER times fp32's, they decide, since a CPU without bf16
    units would otherwise spend minutes proving it (one bf16 step of SmolLM2 took ~20x fp32 on an AMD EPYC).
    The timed shape is a run's, not a toy's: at 48 tokens bf16 ran only 1.2x fp32 on an AMX Xeon, at 400 1.6x."""
    fp32, bf16 = load_model(name, device, "fp32"), load_model(name, device, "bf16")
    g = torch.Generator().manual_seed(0)
    small = torch.randn(*STEP_SHAPE, fp32.d, generator=g).to(fp32.device) * 0.02        # (B, L, d)
    warm = {}
    for key, lm in (("fp32", fp32), ("bf16", bf16)):
        _step(lm, small)  # a first call builds kernels (oneDNN's, ms on a tiny model): the second one is timed
        t0 = time.perf_counter()
        _step(lm, small)
        warm[key] = time.perf_counter() - t0
    if warm["bf16"] > CLEARLY_SLOWER * warm["fp32"]:  # fp32 wins; a warm step at a run's shape calibrates its speed
        return {"fp32_s": warm["fp32"], "bf16_s": warm["bf16"], "speedup": warm["fp32"] / warm["bf16"],
                "steps": 1, "shape": list(STEP_SHAPE), "fp32_attention": False} | calibrate(fp32)
    x = torch.randn(*CALIBRATION_SHAPE, fp32.d, generator=g).to(fp32.device) * 0.02    # (B, L, d)
    could = attention.fp32_attention(bf16.model, True)  # False where the body's attention is not sdpa
    attention.fp32_attention(bf16.model, False)
    variants = [("fp32", fp32, False), ("bf16", bf16, False)] + ([("bf16+fp32 attention", bf16, True)] if could
                                                                   else [])
    times: dict[str, list[float]] = {v[0]: [] for v in variants}
    try:
        first = {}
        for key, lm, fa in variants:  # a warm-up at the new shape each (oneDNN builds its kernels)
            attention.fp32_attention(lm.model, fa)
            t0 = time.perf_counter()
            _step(lm, x)
            first[key] = time.perf_counter() - t0
        per_sample = max(1, int(MIN_SAMPLE_S / max(1e-6, min(first.values()))) + 1)
        for _ in range(repeats):
            for key, lm, fa in variants:
                attention.fp32_attention(lm.model, fa)
                for _ in range(per_sample):  # each step timed alone: the fastest one is the least disturbed
                    t0 = time.perf_counter()
                    _step(lm, x)
                    times[key].append(time.perf_counter() - t0)
    finally:
        attention.fp32_attention(bf16.model, False)
    best = {k: min(v) for k, v in times.items()}
    fa = could and best["bf16+fp32 attention"] < best["bf16"]
    bf16_s = best["bf16+fp32 attention"] if fa else best["bf16"]
    speedup = best["fp32"] / bf16_s
    return {"fp32_s": best["fp32"], "bf16_s": bf16_s, "speedup": speedup, "steps": repeats * per_sample,
            "shape": list(CALIBRATION_SHAPE), "fp32_attention": fa,
            "attention_speedup": best["bf16"] / best["bf16+fp32 attention"] if could else None,
            "step_s": bf16_s if choose(speedup) == "bf16" else best["fp32"],
            "step_shape": list(CALIBRATION_SHAPE), "calibrated": True}


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
    dev = pick_device(device)
    threads = threads or torch.get_num_threads()
    key = cache_key(name, threads)
    entry = cached().get(key)
    if requested in ("fp32", "bf16"):  # a bf16 body on a CPU keeps the attention this machine measured faster
        fa = requested == "bf16" and dev.type == "cpu" and bool(entry and entry.get("fp32_attention"))
        return Verdict(requested, f"{requested}, as asked" + (_attention_words(entry) if fa else ""), None, fa)
    if dev.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return Verdict("bf16" if ok else "fp32", "auto: this GPU " + ("supports bf16" if ok else "lacks bf16"))
    if entry is None or (measure_now and "fp32_attention" not in entry):  # measured before attention was timed
        if not measure_now:
            return None
        entry = measure(name, str(dev)) | {"cpu": cpu_model(), "torch": torch.__version__, "model": canonical(name),
                                           "threads": threads,
                                           "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        entry["precision"] = choose(entry["speedup"])
        _remember(key, entry)
    s = entry["speedup"]
    fa = entry["precision"] == "bf16" and bool(entry.get("fp32_attention"))
    return Verdict(entry["precision"], f"auto: bf16 steps ran {s:.2f}x the speed of fp32 on this CPU "
                                       f"({entry['cpu']}, {threads} threads; bf16 needs {BF16_MIN_SPEEDUP}x)"
                                       + (_attention_words(entry) if fa else ""), s, fa)


def _attention_words(entry: dict) -> str:
    a = entry.get("attention_speedup")
    return "; attention in fp32" + (f" ({a:.2f}x the speed of bf16 attention here)" if a else "")


def load(name: str, device: str = "auto", requested: str = "auto") -> LoadedModel:
    """The model at the decided precision (and attention), its verdict's reason on lm.precision_reason."""
    v = decide(name, device, requested)
    lm = load_model(name, device, v.precision, v.fp32_attention)
    lm.precision_reason = v.reason
    return lm


def describe(v: Verdict | None) -> dict:
    return asdict(v) if v is not None else {"precision": None, "reason": "not measured on this machine yet"}
