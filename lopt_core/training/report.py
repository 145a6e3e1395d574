"""Optional tracker logging: when the user asks (`train` / `sweep` / `resume` with `--report-to tensorboard`), each
run's curves also go to TensorBoard, one log folder per run under `--report-dir` (default `$LOPT_HOME/tensorboard`):

    train/loss, train/lr, train/examples_per_s   every step
    eval/<metric>                                every evaluation (accuracy, exact_match, ...; eval/score
                                                 where the event does not name it: a Ray sweep's)
    config (text)                                the run's configuration, at its start

A resumed run continues its curves from its checkpoint: its new event file purges the steps after it, which the
interrupted run had logged and the store dropped, so TensorBoard shows one curve, not a zigzag.

Never required: tensorboardX is imported only when asked for, and a missing one is refused with the install line
before anything is queued. The store stays the record; this is a copy for people who live in TensorBoard.
"""
from __future__ import annotations

import json
import uuid
from importlib.util import find_spec
from pathlib import Path

from lopt_core.errors import ConfigError

REPORTERS = ("tensorboard",)
INSTALL = "pip install tensorboardX==2.6.5"


def check(report_to: str | None) -> None:
    """Refuse an unknown tracker, or one whose package is missing, naming the fix."""
    if not report_to:
        return
    if report_to not in REPORTERS:
        raise ConfigError(f"--report-to {report_to!r}: the trackers are {', '.join(REPORTERS)}")
    if find_spec("tensorboardX") is None:
        raise ConfigError(f"--report-to tensorboard needs tensorboardX, which is not installed: {INSTALL} "
                          "(or leave --report-to out)")


class TensorBoard:
    """An on_event(run_id, event) hook writing each run's events to `folder/<run_id>`; close() flushes them."""

    def __init__(self, folder: str | Path, configs: dict[str, dict] | None = None):
        self.folder = Path(folder)
        self.configs = configs or {}  # run_id -> config, written as text when the run starts
        self._writers: dict = {}

    def _writer(self, run_id: str, purge_step: int | None = None):
        if run_id not in self._writers:
            from tensorboardX import SummaryWriter
            # a file of its own: tensorboardX names files by the second, and a second writer within that second
            # (a resume right after the start) would overwrite the first one's file
            self._writers[run_id] = SummaryWriter(logdir=str(self.folder / run_id), flush_secs=10,
                                                  purge_step=purge_step, filename_suffix=f".{uuid.uuid4().hex[:8]}")
        return self._writers[run_id]

    def __call__(self, run_id: str, ev: dict) -> None:
        kind = ev.get("type")
        if kind == "start":
            w = self._writer(run_id)
            facts = {k: v for k, v in ev.items() if k not in ("type", "run_id")}
            w.add_text("config", "```\n" + json.dumps({**self.configs.get(run_id, {}), **facts}, indent=1,
                                                       default=str) + "\n```")
        elif kind == "resumed":  # continues after ev["step"]: what a killed run logged beyond it is dropped
            if run_id in self._writers:
                self._writers.pop(run_id).close()
            self._writer(run_id, purge_step=ev["step"] + 1)
        elif kind == "step":
            w = self._writer(run_id)
            w.add_scalar("train/loss", ev["loss"], ev["step"])
            if ev.get("lr") is not None:
                w.add_scalar("train/lr", ev["lr"], ev["step"])
            if ev.get("examples_per_s"):
                w.add_scalar("train/examples_per_s", ev["examples_per_s"], ev["step"])
        elif kind == "eval" and ev.get("accuracy") is not None:
            self._writer(run_id).add_scalar(f"eval/{ev.get('metric') or 'score'}", ev["accuracy"], ev["step"])
        elif kind == "end" and run_id in self._writers:
            self._writers.pop(run_id).close()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def reporter(report_to: str | None, folder: str | Path, configs: dict[str, dict] | None = None):
    """The hook the user asked for (checked), or None."""
    check(report_to)
    return TensorBoard(folder, configs) if report_to == "tensorboard" else None
