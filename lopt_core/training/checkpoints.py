"""Checkpoints: what a run needs to continue after its process died, saved in its artifact folder.

Every EVERY_S seconds of training (and never more than once a step) the loop writes, per configuration, one
small file (KB to MB): the method's trainable tensors, the AdamW state, the schedule, the step, the loss curve
and evaluations so far, the time trained, the batch order's position and generator, and torch's RNG. A
resumed run (sweeps.spec.resume, JobManager.resume_run, `python -m lopt_core resume`) finds it and continues
from that step with the same batches: it reaches the prompt an uninterrupted run reaches. The file is written
beside the final one and renamed over it, so a kill mid-write leaves the previous checkpoint whole; it is
removed when the run ends.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_FILE = "checkpoint.pt"
# seconds of training between two checkpoints; LOPT_CHECKPOINT_S overrides it (0: after every step)
EVERY_S = float(os.environ.get("LOPT_CHECKPOINT_S", "60"))


def path(folder) -> Path:
    return Path(folder) / CHECKPOINT_FILE


def save(folder, state: dict) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) atomically as the folder's checkpoint."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path(folder))


def load(folder) -> dict | None:
    """The folder's checkpoint, or None when there is none (or it cannot be read: the run starts over)."""
    if folder is None or not path(folder).is_file():
        return None
    try:
        return torch.load(path(folder), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (a damaged file is no checkpoint)
        return None


def step_of(folder) -> int:
    """The step a folder's checkpoint was taken at (0: none)."""
    ckpt = load(folder)
    return int(ckpt["step"]) if ckpt else 0


def remove(folder) -> None:
    if folder is not None:
        for p in (path(folder), Path(folder) / (CHECKPOINT_FILE + ".tmp")):
            p.unlink(missing_ok=True)
