"""Limits for a public host, read from the environment and validated in one place.

LOPT_ALLOWED_MODELS   comma-separated model names the app may train/generate with (unset: any, incl. folders)
LOPT_MAX_STEPS        largest `steps` a run may ask for (unset: no limit beyond RunConfig's)
LOPT_MAX_CONCURRENT   runs training at the same time (default 1: a CPU is shared by all runs)
LOPT_MAX_UPLOAD_MB    largest uploaded CSV/JSONL in MiB (default 20)
LOPT_MAX_SWEEP_CONFIGS  most configurations one sweep may queue (default 64)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .config import ConfigError


class HostingError(ValueError):
    """A bad LOPT_* environment value; the message names the variable."""


def _int(name: str, default: int | None, lo: int = 1) -> int | None:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise HostingError(f"{name} must be an integer, got {raw!r}") from None
    if v < lo:
        raise HostingError(f"{name} must be at least {lo}, got {v}")
    return v


@dataclass(frozen=True)
class Limits:
    allowed_models: tuple[str, ...] | None   # None: any model, including local folders
    max_steps: int | None
    max_concurrent: int
    max_upload_mb: int
    max_sweep_configs: int = 64

    def check(self, cfg) -> None:
        """Raise ConfigError when `cfg` breaks a host limit."""
        if self.allowed_models is not None and cfg.model not in self.allowed_models:
            raise ConfigError(f"model {cfg.model!r} is not allowed on this host; allowed: "
                              f"{', '.join(self.allowed_models)}")
        if self.max_steps is not None and isinstance(cfg.steps, int) and cfg.steps > self.max_steps:
            raise ConfigError(f"steps={cfg.steps} is above this host's limit of {self.max_steps} (LOPT_MAX_STEPS)")

    def check_upload(self, path) -> None:
        size = os.path.getsize(path)
        if size > self.max_upload_mb * 2**20:
            raise ConfigError(f"the uploaded file is {size / 2**20:.1f} MiB; this host accepts at most "
                              f"{self.max_upload_mb} MiB (LOPT_MAX_UPLOAD_MB)")


def limits() -> Limits:
    """Current limits from the environment; raises HostingError naming a bad variable."""
    raw = os.environ.get("LOPT_ALLOWED_MODELS", "").strip()
    allowed = tuple(m.strip() for m in raw.split(",") if m.strip()) or None
    return Limits(allowed_models=allowed, max_steps=_int("LOPT_MAX_STEPS", None),
                  max_concurrent=_int("LOPT_MAX_CONCURRENT", 1), max_upload_mb=_int("LOPT_MAX_UPLOAD_MB", 20),
                  max_sweep_configs=_int("LOPT_MAX_SWEEP_CONFIGS", 64))
