"""Gradio's cached copies of a visitor's upload, removed once a run has consumed the upload (checked, and kept
under $LOPT_HOME/uploads by data/uploads.keep), so that no /file= URL of Gradio's serves it any more.

Gradio holds an upload twice in its upload folder, each as <folder>/<content hash>/<file name>: the upload
route's copy and the event's block-cache copy, hashed differently. The handler sees the second; both go.
Without this they stayed fetchable, by anyone holding the URL and without a session, until Gradio's cache was
cleared (two hours here).
"""
from __future__ import annotations

import filecmp
import glob
from pathlib import Path


def folder() -> Path:
    """Gradio's upload folder (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder
    return Path(get_upload_folder()).resolve()


def discard(path: str | Path) -> int:
    """Remove Gradio's copies of the upload at `path`; how many were removed. A path outside Gradio's upload
    folder (a file of the CLI's or of a test) is left alone."""
    p, root = Path(path).resolve(), folder()
    if not p.is_file() or p.parent.parent != root:
        return 0
    copies = [c for c in root.glob(f"*/{glob.escape(p.name)}")
              if c == p or (c.is_file() and filecmp.cmp(c, p, shallow=False))]
    for c in copies:
        c.unlink(missing_ok=True)
        try:
            c.parent.rmdir()  # its content-hash folder, when nothing else is in it
        except OSError:
            pass
    return len(copies)
