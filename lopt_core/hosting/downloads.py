"""Where downloads are made (the Runs tab's artifact folder as a .zip and PEFT exports, the Compare tab's CSV
tables, the Sweep tab's results JSON): one folder, $LOPT_HOME/downloads, that never grows past its bound.

Each download or export is one entry `<kind>-<id>-<random>/` (the id: a run's, a sweep's, or "compare") holding
the zip (and the unzipped folder it was made from, for an export, tables or a sweep). Making a new entry first
removes the entries older than MAX_AGE_S and then the oldest beyond the newest KEEP - 1, so at most KEEP entries
are ever there; deleting a run removes its entries (forget). An entry's zip is served once, by a one-time link
for the session that asked (links.py), and the entry is removed as it is sent; one never fetched goes at the next
prune. Gradio's file route never serves this folder.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from lopt_core import paths

KEEP = 8               # entries kept at most (downloads and exports together)
MAX_AGE_S = 30 * 60    # an entry older than this is removed when a new one is made
KINDS = ("download", "peft", "tables", "sweep")


def root() -> Path:
    p = paths.home() / "downloads"
    p.mkdir(parents=True, exist_ok=True)
    return p


def entries() -> list[Path]:
    """The entries, newest first."""
    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0
    return sorted((p for p in root().iterdir()), key=mtime, reverse=True)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


_PINNED: dict[Path, float] = {}  # entry -> until when: a link to it is out and not yet fetched (hosting/links.py)


def pin(entry: Path, until: float) -> None:
    """Keep `entry` through pruning until `until` (or unpin): its one-time link has not been fetched yet."""
    _PINNED[Path(entry)] = until


def unpin(entry: Path) -> None:
    _PINNED.pop(Path(entry), None)


def prune(keep: int = KEEP, max_age_s: float = MAX_AGE_S, now: float | None = None) -> list[Path]:
    """Remove entries older than max_age_s and all but the newest `keep`; the removed paths. An entry whose
    link is still out is kept until that link expires: another visitor's downloads never break it."""
    now = time.time() if now is None else now
    gone = []
    for i, p in enumerate(entries()):
        try:
            old = now - p.stat().st_mtime > max_age_s
        except OSError:
            continue
        if _PINNED.get(p, 0.0) > now and not old:
            continue
        if i >= keep or old:
            _remove(p)
            gone.append(p)
    return gone


def new_entry(kind: str, run_id: str, keep: int = KEEP, max_age_s: float = MAX_AGE_S) -> Path:
    """A fresh, empty entry for one download or export of `run_id`, after pruning to make room for it."""
    assert kind in KINDS, kind
    prune(max(0, keep - 1), max_age_s)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{run_id}-", dir=root()))


def zip_folder(folder: Path, entry: Path, name: str) -> str:
    """`folder` zipped as entry/<name>.zip (its top folder inside the zip keeps folder's name); the zip's path."""
    folder = Path(folder)
    return shutil.make_archive(str(entry / name), "zip", root_dir=folder.parent, base_dir=folder.name)


def zipped(kind: str, key: str, name: str, fill) -> str:
    """A new entry's folder `name`, filled by fill(folder) and zipped as entry/<name>.zip; the zip's path. The
    entry goes again when fill fails, so a failed export leaves nothing behind."""
    entry = new_entry(kind, key)
    folder = entry / name
    try:
        folder.mkdir()
        fill(folder)
    except BaseException:
        _remove(entry)
        raise
    return zip_folder(folder, entry, name)


def forget(run_id: str) -> int:
    """Remove every entry of a deleted run; how many were removed."""
    n = 0
    for p in entries():
        if any(p.name.startswith(f"{kind}-{run_id}-") for kind in KINDS):
            _remove(p)
            n += 1
    return n
