"""Where LoPT Lab keeps its data: $LOPT_HOME (default ~/.cache/lopt-lab)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    p = Path(os.environ.get("LOPT_HOME") or Path.home() / ".cache" / "lopt-lab").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir() -> Path:
    """Dequantized model cache; $LOPT_MODEL_CACHE lets several homes (tests, workers) share one copy."""
    env = os.environ.get("LOPT_MODEL_CACHE")
    return Path(env).expanduser() if env else home() / "models"


def artifacts_dir() -> Path:
    p = home() / "artifacts"
    p.mkdir(parents=True, exist_ok=True)
    return p


def db_path() -> Path:
    return home() / "runs.sqlite"
