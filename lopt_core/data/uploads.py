"""Uploaded data files: kept under $LOPT_HOME/uploads only once they passed the checks, shared by the runs that
train on them, and removed with the last run that uses them.

A kept file lives at uploads/<content hash>/<the user's own file name>, so every message that names
Path(data_file).name names the user's file, and the same upload trained twice is kept once.
Deleting a run (Runs tab or `python -m lopt_core delete`) goes through training.runs.delete_run(), which calls release().
"""
from __future__ import annotations

import shutil
from pathlib import Path

from lopt_core import paths


def uploads_dir() -> Path:
    return paths.home() / "uploads"


def keep(path: str, name: str | None = None) -> str:
    """Copy an upload that passed the checks out of Gradio's temporary cache (the worker and a rerun read it
    later); `name` is the user's own file name (default: the path's). Returns the kept path."""
    from lopt_core.data.preview import content_key
    folder = uploads_dir() / content_key(path)[:16]
    dst = folder / Path(name or path).name
    if not dst.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{dst.name}.part"
        shutil.copyfile(path, tmp)
        tmp.replace(dst)
    return str(dst)


def is_kept(path: str | None) -> bool:
    """True for a file kept under uploads_dir() (never a file of the user's own disk, as the CLI's are)."""
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(uploads_dir().resolve())
        return True
    except ValueError:
        return False


def release(store, data_file: str | None) -> bool:
    """Remove a kept upload no run in the store uses any more; True when it was removed."""
    if not is_kept(data_file) or any(r["config"].get("data_file") == data_file for r in store.list()):
        return False
    p = Path(data_file)
    p.unlink(missing_ok=True)
    if p.parent != uploads_dir() and not any(p.parent.iterdir()):
        p.parent.rmdir()
    return True
