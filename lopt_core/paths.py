"""Where LoPT Lab keeps its data: $LOPT_HOME; unset, /data/lopt-home when /data is a writable folder (a Hugging
Face Space's persistent storage, so runs survive restarts there), else ~/.cache/lopt-lab."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from lopt_core.errors import HomeError

PERSISTENT_DIR = Path("/data")  # where a Space with persistent storage mounts it


def home_path() -> Path:
    """The data folder, chosen as the module docstring says; not created, not checked."""
    env = os.environ.get("LOPT_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    if PERSISTENT_DIR.is_dir() and os.access(PERSISTENT_DIR, os.W_OK | os.X_OK):
        return PERSISTENT_DIR / "lopt-home"
    return Path.home() / ".cache" / "lopt-lab"


def _name(p: Path) -> str:
    return f"LOPT_HOME={p}" if os.environ.get("LOPT_HOME", "").strip() else f"LOPT_HOME (unset, so {p})"


def home() -> Path:
    p = home_path()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise HomeError(f"{_name(p)} is a file, not a folder") from None
    except OSError as e:
        raise HomeError(f"{_name(p)} cannot be created: {e.strerror or e}") from None
    return p


def check_home() -> Path:
    """The data folder, created if needed and proven writable; raises HomeError (one line) before anything starts."""
    p = home()
    try:
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-"):
            pass
    except OSError as e:
        raise HomeError(f"{_name(p)} is not writable: {e.strerror or e}") from None
    return p


def models_dir() -> Path:
    """Dequantized model cache; $LOPT_MODEL_CACHE lets several homes (tests, workers, an image) share one copy."""
    env = os.environ.get("LOPT_MODEL_CACHE")
    return Path(env).expanduser() if env else home() / "models"


def artifacts_dir() -> Path:
    p = home() / "artifacts"
    p.mkdir(parents=True, exist_ok=True)
    return p


def db_path() -> Path:
    return home() / "runs.sqlite"
