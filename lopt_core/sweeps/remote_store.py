"""The run store as a training task on another machine sees it, and its writes as they land in the real one.

A remote task (ray_backend.py) cannot open the app's sqlite file: its node may not share the filesystem. It
trains with a RemoteStore, which stands in for Store wherever training touches it (runs.run_and_record,
runs.record_group, sweep.run_group):

    writes  update / add_metric / set_zero_shot  -> "ops", sent to the driver in order, at every stop check
            (each step) and at least every FLUSH_S; a finished run's artifact folder travels as one op of
            its files' bytes
    reads   stop_level / get / get_sweep  -> the driver's latest word (stop levels, states), asked each step
            zero_shot                     -> the driver's cached zero-shot accuracies

`link` is how ops and words travel: exchange(ops) -> word (synchronous) and push(ops) (fire and forget);
ray_backend.Relay is one. On the driver, `apply(store, ops, nodes)` writes them into the real Store;
artifacts land under the driver's LOPT_HOME.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from lopt_core.training import artifacts
from lopt_core.store.protocol import TrainingStore
from lopt_core.store.sqlite import FINAL, Store

FLUSH_S = 0.5   # the longest a written op waits on the remote side when no stop check comes


class RemoteStore(TrainingStore):
    def __init__(self, link, sweep_id: str, run_ids: list[str], node: dict | None = None):
        self.link, self.sweep_id = link, sweep_id
        self.states = {rid: "queued" for rid in run_ids}
        self.levels: dict[str, int] = {}
        self.sweep_stop = 0
        self.ops: list[tuple] = [("node", list(run_ids), node or {})]  # where these runs train
        self.last_flush = 0.0
        self.exchange()


    # ------------------------------------------------------------ reads: the driver's latest word
    def exchange(self) -> None:
        """Send what was written, receive the stop levels and the states the driver knows."""
        ops, self.ops = self.ops, []
        word = self.link.exchange(ops)
        self.last_flush = time.time()
        self.levels, self.sweep_stop = word["levels"], word["sweep_stop"]
        for rid, state in word["states"].items():  # stopped from the queue before this task reached it
            if rid in self.states and self.states[rid] == "queued":
                self.states[rid] = state

    def stop_level(self, run_id: str) -> int:
        self.exchange()
        return int(self.levels.get(run_id, 0))

    def get(self, run_id: str) -> dict:
        return {"run_id": run_id, "state": self.states[run_id]}

    def get_sweep(self, sweep_id: str) -> dict:
        self.exchange()
        return {"sweep_id": sweep_id, "stop_requested": self.sweep_stop}

    def zero_shot(self, key: str) -> float | None:
        return self.link.zero_shot(key)

    # ------------------------------------------------------------ writes: ops for the driver
    def update(self, run_id: str, **fields) -> None:
        if fields.get("state"):
            self.states[run_id] = fields["state"]
        if fields.get("state") in FINAL and fields.get("artifact_dir"):
            self._op(("artifact", run_id, pack(fields["artifact_dir"])))
        self._op(("update", run_id, fields))

    def add_metric(self, run_id: str, step: int, kind: str, value: float, lr=None, examples_per_s=None) -> None:
        self._op(("metric", run_id, (step, kind, value, lr, examples_per_s)))

    def set_zero_shot(self, key: str, acc: float) -> None:
        self._op(("zero_shot", key, acc))

    def _op(self, op: tuple) -> None:
        self.ops.append(op)
        if op[0] == "artifact" or time.time() - self.last_flush > FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Send what was written without waiting for an answer (the link keeps the order)."""
        if self.ops:
            ops, self.ops = self.ops, []
            self.link.push(ops)
            self.last_flush = time.time()


# ---------------------------------------------------------------- artifacts: files as bytes

def pack(folder) -> dict[str, bytes]:
    """Every file under an artifact folder, by its path relative to the folder."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def unpack(run_id: str, files: dict[str, bytes]) -> Path:
    """Write a packed artifact under this machine's LOPT_HOME, atomically (as artifacts.save does)."""
    folder = artifacts.run_dir(run_id)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        p = (tmp / rel).resolve()
        if not p.is_relative_to(tmp.resolve()):
            raise ValueError(f"artifact file {rel!r} is outside its folder")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


# ---------------------------------------------------------------- the driver's side

def apply(store: Store, ops: list[tuple], nodes: dict) -> None:
    """Write a batch of ops into the real store, in order (consecutive metrics in one transaction). Paths are
    this machine's: artifact_dir is the run's folder here; the process is this driver's; a result says on
    which node it trained. `nodes` (run id -> {id, ip}) learns where each run trains."""
    metrics: list[tuple] = []
    for kind, key, payload in ops:
        if kind == "metric":
            metrics.append((key, *payload))
            continue
        if metrics:
            store.add_metric_rows(metrics)
            metrics = []
        if kind == "node":
            nodes.update({rid: payload for rid in key})
        elif kind == "zero_shot":
            store.set_zero_shot(key, payload)
        elif kind == "artifact" and payload:  # empty: nothing was saved (a run stopped before it started)
            folder = unpack(key, payload)
            doc = artifacts.read_run(folder)
            doc["config"] = store.get(key)["config"]  # the store's config: a remote copy may differ (paths)
            doc["result"] = _local_result(doc["result"], key, nodes.get(key))
            (folder / artifacts.RUN_FILE).write_text(json.dumps(doc, indent=2))
        elif kind == "update":
            fields = dict(payload)
            if fields.get("artifact_dir"):
                fields["artifact_dir"] = str(artifacts.run_dir(key))
            if "pid" in fields:
                fields["pid"] = os.getpid()  # the remote pid means nothing here; this driver watches the run
            if isinstance(fields.get("result"), dict):
                fields["result"] = _local_result(fields["result"], key, nodes.get(key))
            store.update(key, **fields)
    if metrics:
        store.add_metric_rows(metrics)


def _local_result(result: dict, run_id: str, node: dict | None) -> dict:
    out = dict(result, backend="ray", ray_node=(node or {}).get("ip"))
    if out.get("artifact_dir"):
        out["artifact_dir"] = str(artifacts.run_dir(run_id))
    return out
