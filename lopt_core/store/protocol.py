"""The contract between a training run and wherever its records go: what the loop, run_and_record and a
sweep read and write while they train. Two stores implement it: the local sqlite store (sqlite.py), and the
relay a Ray task writes through to the driver's store (sweeps/remote_store.py). Like MLflow's AbstractStore:
an abstract base whose concrete parts (stop_requested, recorder) are written once, on top of the abstract ones.
"""
from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod


class TrainingStore(ABC):
    @abstractmethod
    def get(self, run_id: str) -> dict:
        """The run's row (at least run_id and state); NotFound when there is none."""

    @abstractmethod
    def update(self, run_id: str, **fields) -> None:
        """Set columns of the run's row (state, accuracy, result, artifact_dir, eval_progress, ...)."""

    @abstractmethod
    def add_metric(self, run_id: str, step: int, kind: str, value: float, lr=None, examples_per_s=None) -> None:
        """One point of a curve: kind "loss" or "accuracy" at `step`."""

    @abstractmethod
    def stop_level(self, run_id: str) -> int:
        """0: train on; 1: stop after this step (and evaluate); 2: stop and skip that evaluation too."""

    @abstractmethod
    def get_sweep(self, sweep_id: str) -> dict:
        """The sweep's row (at least sweep_id and stop_requested)."""

    @abstractmethod
    def zero_shot(self, key: str) -> float | None:
        """The cached no-prompt accuracy under `key`, or None."""

    @abstractmethod
    def set_zero_shot(self, key: str, acc: float) -> None:
        """Cache a no-prompt accuracy."""

    def stop_requested(self, run_id: str) -> bool:
        return self.stop_level(run_id) > 0

    def recorder(self, run_id: str):
        """An on_event callback that writes a run's training events into this store (the same mapping for
        every store)."""
        progress = [None, None, time.time()]  # the evaluation under way: step, total, start time

        def on_event(ev: dict) -> None:
            if ev["type"] == "step":
                self.add_metric(run_id, ev["step"], "loss", ev["loss"], ev.get("lr"), ev.get("examples_per_s"))
            elif ev["type"] == "eval_progress":
                if ev["done"] == 0:
                    progress[:] = [ev["step"], ev["total"], time.time()]
                self.update(run_id, eval_progress=json.dumps({"step": ev["step"], "done": ev["done"],
                                                              "total": ev["total"], "t0": progress[2]}))
            elif ev["type"] in ("eval", "end"):
                if ev["type"] == "eval":
                    self.add_metric(run_id, ev["step"], "accuracy", ev["accuracy"])
                self.update(run_id, eval_progress=None)
            elif ev["type"] == "resumed":  # continued from a checkpoint: its curve up to there was kept
                self.update(run_id, steps_done=ev["step"])
            elif ev["type"] == "start":
                # no artifact_dir yet: the folder is recorded with the result, once it is written (a run killed
                # before that would name a folder that was never written)
                self.update(run_id, state="running", trainable_params=ev["trainable_params"], pid=os.getpid(),
                            zero_shot_accuracy=ev.get("zero_shot_accuracy"))
        return on_event

