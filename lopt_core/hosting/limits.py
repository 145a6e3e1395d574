"""Limits for a public host, read from the environment and validated in one place.

Local use sets none of these: one user, everything allowed. A public host (a Space, the Docker image) sets:

LOPT_PUBLIC                 1: visitors own the runs they start; only the owner stops, deletes or re-runs one
LOPT_SHOW_OTHERS_RUNS       1: visitors also see others' finished runs, read-only (never runs on uploaded files)
LOPT_MAX_QUEUED_PER_VISITOR unfinished jobs (a run or a sweep each) one visitor may have (public default 2)
LOPT_MAX_QUEUED             unfinished jobs in all (unset: no cap)
LOPT_ALLOWED_MODELS         comma-separated model names the app may train/generate with (unset: any locally;
                            on a public host the known model names only, never a folder)
LOPT_MAX_STEPS              largest `steps` a run may ask for
LOPT_MAX_BATCH_SIZE         largest batch size
LOPT_MAX_EVAL_SIZE          most test examples one evaluation may use (0, "all", is refused then)
LOPT_MAX_CONCURRENT         runs training at the same time (default 1: a CPU is shared by all runs)
LOPT_MAX_UPLOAD_MB          largest uploaded CSV/JSONL in MiB (default 20)
LOPT_MAX_SWEEP_CONFIGS      most configurations one sweep may queue (default 64)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from lopt_core.config import ConfigError
from lopt_core.errors import HostingError


def _int(name: str, default: int | None, lo: int = 1, hi: int = 10**6) -> int | None:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise HostingError(f"{name} must be a whole number, got {raw!r}") from None
    if not lo <= v <= hi:
        raise HostingError(f"{name} must be between {lo} and {hi:,}, got {raw if len(raw) < 20 else raw[:17] + '...'}")
    return v


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise HostingError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _models(name: str) -> tuple[str, ...] | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    names = [m.strip() for m in raw.split(",")]
    if not any(names):
        raise HostingError(f"{name} names no model ({raw!r}); give comma-separated model names, or unset it")
    if "" in names:
        raise HostingError(f"{name} has an empty name between commas ({raw!r})")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Limits:
    allowed_models: tuple[str, ...] | None   # None: any model (locally, incl. folders)
    max_steps: int | None = None
    max_concurrent: int = 1
    max_upload_mb: int = 20
    max_sweep_configs: int = 64
    public: bool = False
    show_others: bool = False
    max_queued_per_visitor: int | None = None   # unfinished jobs per visitor (public hosts)
    max_queued: int | None = None               # unfinished jobs in all
    max_batch_size: int | None = None
    max_eval_size: int | None = None

    def models(self) -> tuple[str, ...] | None:
        """The model names this host allows; None: any. A public host never resolves a folder a visitor names."""
        if self.allowed_models is None and self.public:
            from lopt_core.lm.models import KNOWN_MODELS
            return tuple(KNOWN_MODELS)
        return self.allowed_models

    def check(self, cfg) -> None:
        """Raise ConfigError when `cfg` breaks a host limit."""
        from lopt_core.lm.models import canonical
        allowed = self.models()
        if allowed is not None and canonical(cfg.model) not in {canonical(m) for m in allowed}:  # aliases too
            raise ConfigError(f"model {cfg.model!r} is not allowed on this host; allowed: {', '.join(allowed)}")
        for field, cap, var in (("steps", self.max_steps, "LOPT_MAX_STEPS"),
                                ("batch_size", self.max_batch_size, "LOPT_MAX_BATCH_SIZE"),
                                ("eval_size", self.max_eval_size, "LOPT_MAX_EVAL_SIZE")):
            v = getattr(cfg, field, None)
            if cap is None or not isinstance(v, int):
                continue
            if field == "eval_size" and v == 0:
                raise ConfigError(f"eval_size=0 (every test example) is not allowed on this host; at most {cap} ({var})")
            if v > cap:
                raise ConfigError(f"{field}={v} is above this host's limit of {cap} ({var})")

    def fit(self, knobs: dict) -> dict:
        """`knobs` (steps, batch_size, eval_size) brought within this host's caps: what a guided experiment
        runs with here (all test examples, eval_size 0, become the first LOPT_MAX_EVAL_SIZE)."""
        out = dict(knobs)
        for field, cap in (("steps", self.max_steps), ("batch_size", self.max_batch_size),
                           ("eval_size", self.max_eval_size)):
            if cap is not None and field in out and (out[field] > cap or (field == "eval_size" and out[field] == 0)):
                out[field] = cap
        return out

    def notice(self) -> str:
        """One line for the page on a public host (empty locally): what a visitor owns and may queue."""
        if not self.public:
            return ""
        bits = ["runs you start are yours: only you can stop, delete or re-run them"]
        if self.max_queued_per_visitor:
            bits.append(f"at most {self.max_queued_per_visitor} unfinished job(s) per visitor")
        caps = [f"{name} ≤ {v}" for name, v in (("steps", self.max_steps), ("batch size", self.max_batch_size),
                                                 ("eval examples", self.max_eval_size)) if v]
        if caps:
            bits.append(", ".join(caps))
        bits.append("others' finished runs are shown read-only" if self.show_others else "you see only your own runs")
        return "**Shared host:** " + "; ".join(bits) + "."

    def check_upload(self, path) -> None:
        size = os.path.getsize(path)
        if size > self.max_upload_mb * 2**20:
            raise ConfigError(f"the uploaded file is {size / 2**20:.1f} MiB; this host accepts at most "
                              f"{self.max_upload_mb} MiB (LOPT_MAX_UPLOAD_MB)")


def limits() -> Limits:
    """Current limits from the environment; raises HostingError naming a bad variable."""
    public = _flag("LOPT_PUBLIC")
    return Limits(allowed_models=_models("LOPT_ALLOWED_MODELS"), max_steps=_int("LOPT_MAX_STEPS", None),
                  max_concurrent=_int("LOPT_MAX_CONCURRENT", 1, hi=64),
                  max_upload_mb=_int("LOPT_MAX_UPLOAD_MB", 20, hi=10_240),
                  max_sweep_configs=_int("LOPT_MAX_SWEEP_CONFIGS", 64, hi=10_000),
                  public=public, show_others=_flag("LOPT_SHOW_OTHERS_RUNS"),
                  max_queued_per_visitor=_int("LOPT_MAX_QUEUED_PER_VISITOR", 2 if public else None, hi=10_000),
                  max_queued=_int("LOPT_MAX_QUEUED", None, hi=100_000),
                  max_batch_size=_int("LOPT_MAX_BATCH_SIZE", None, hi=4096),
                  max_eval_size=_int("LOPT_MAX_EVAL_SIZE", None, hi=10**7))
