"""A sweep's results as one portable JSON file: configurations, per-step curves, accuracies, parameter counts,
the machine and library versions, and the exact command that produced it. Export, import, and the reference
atlas that ships with the app (assets/atlas/, one file per sweep made by scripts/atlas.sh), drawn on the Train
and Compare plots as a lighter layer beside runs of its own task and model.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import platform
import time
from functools import lru_cache
from pathlib import Path

from lopt_core.config import ConfigError

FORMAT = "lopt-lab/sweep-results/1"
ATLAS = Path(__file__).resolve().parents[2] / "assets" / "atlas"
_DROP = ("artifact_dir", "traceback")  # machine-local or bulky result fields not worth carrying


def machine() -> dict:
    """What measured the numbers: CPU, cores, GPU, Python and library versions."""
    import torch
    import transformers
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


def export_sweep(store, sweep_id: str, out, checkpoints: bool = False) -> Path:
    """Write the sweep as one file. checkpoints=True also carries each unfinished configuration's checkpoint
    (training/checkpoints.py, base64): imported on another machine, or into a store that lost it, the sweep
    resumes from those steps instead of from zero."""
    from lopt_core.training import artifacts, checkpoints as ckpts
    sw = store.get_sweep(sweep_id)
    runs = []
    threads = set()
    for r in store.list(sweep_id=sweep_id):
        res = {k: v for k, v in (r.get("result") or {}).items() if k not in _DROP}
        if res.get("torch_threads"):
            threads.add(res["torch_threads"])
        runs.append({"run_id": r["run_id"], "state": r["state"], "config": r["config"], "result": res,
                     "trainable_params": r["trainable_params"], "accuracy": r["accuracy"],
                     "zero_shot_accuracy": r["zero_shot_accuracy"], "error": r.get("error"),
                     "curves": {"loss": [[m["step"], m["value"], m["lr"]] for m in store.metrics(r["run_id"], "loss")],
                                "accuracy": [[m["step"], m["value"]] for m in store.metrics(r["run_id"], "accuracy")]}})
        ckpt = ckpts.path(artifacts.run_dir(r["run_id"]))
        if checkpoints and r["state"] != "done" and ckpt.is_file():  # replaced atomically: always whole
            runs[-1]["checkpoint"] = base64.b64encode(ckpt.read_bytes()).decode("ascii")
    doc = {"format": FORMAT, "exported": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
           "sweep": {k: sw[k] for k in ("sweep_id", "created", "state", "spec", "command", "preset", "reading")},
           "machine": {**machine(), "torch_threads": sorted(threads)[0] if len(threads) == 1 else sorted(threads)},
           "runs": runs}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    return out


def read(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no sweep results file at {path}")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p.name} is not a JSON sweep results file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{p.name} is not a LoPT Lab sweep results file (format {FORMAT!r} expected)")
    return doc


def import_sweep(store, path) -> str:
    """Write the file's sweep and runs into the store (ids kept, or suffixed where taken); runs come without
    artifacts (curves, accuracies and counts only), except the checkpoints of unfinished configurations that
    an export with checkpoints carried: those land in their runs' folders, so `sweep --resume` continues them
    from their steps. Returns the sweep id."""
    from lopt_core.config import RunConfig
    from lopt_core.training import artifacts, checkpoints
    from lopt_core.store.sqlite import RunNotFound
    from lopt_core.store.sqlite import FINAL, STATES
    doc = read(path)
    sw = doc["sweep"]
    bad = [r.get("state") for r in doc["runs"] if r.get("state") not in STATES]
    if bad:
        raise ConfigError(f"{Path(path).name}: unknown run state {bad[0]!r}")
    carried = {}  # run id in the file -> checkpoint bytes, decoded before anything is written
    for r in doc["runs"]:
        if r.get("checkpoint") and r["state"] != "done":
            try:
                carried[r["run_id"]] = base64.b64decode(r["checkpoint"], validate=True)
            except (binascii.Error, TypeError):
                raise ConfigError(f"{Path(path).name}: run {r['run_id']}'s checkpoint is not base64") from None
    final = lambda s: s if s in FINAL else "interrupted"  # noqa: E731  never import work into the queue
    sweep_id = _free(sw["sweep_id"], lambda s: store.get_sweep(s), RunNotFound)
    pairs, taken = [], {}
    for r in doc["runs"]:
        rid = _free(r["run_id"], lambda s: store.get(s), RunNotFound)
        taken[r["run_id"]] = rid
        pairs.append((rid, RunConfig.from_dict(r["config"])))
    store.create_sweep(sweep_id, sw["spec"], pairs, command=sw.get("command") or "", preset=sw.get("preset"),
                       state=final(sw.get("state") or "done"))
    for r in doc["runs"]:
        rid = taken[r["run_id"]]
        res = {**(r.get("result") or {}), "run_id": rid, "imported_from": Path(path).name}
        store.update(rid, state=final(r["state"]), accuracy=r["accuracy"], trainable_params=r["trainable_params"],
                     zero_shot_accuracy=r["zero_shot_accuracy"], train_seconds=res.get("train_seconds"),
                     steps_done=res.get("steps_done") or 0, error=r.get("error"), result=res)
        store.add_metrics(rid, [(s, "loss", v, lr) for s, v, lr in r["curves"]["loss"]] +
                          [(s, "accuracy", v, None) for s, v in r["curves"]["accuracy"]])
        if r["run_id"] in carried:  # unreadable, it is no checkpoint (checkpoints.load): the run starts over
            folder = artifacts.run_dir(rid)
            folder.mkdir(parents=True, exist_ok=True)
            checkpoints.path(folder).write_bytes(carried[r["run_id"]])
    store.update_sweep(sweep_id, reading=sw.get("reading"))
    return sweep_id


def _free(name: str, get, missing) -> str:
    """name, or name-2, name-3, ... : the first id not yet in the store."""
    cand, i = name, 1
    while True:
        try:
            get(cand)
        except missing:
            return cand
        i += 1
        cand = f"{name}-{i}"


@lru_cache(maxsize=32)
def _load(path: str, mtime: float) -> dict:
    return read(path)


def atlas(folder: Path | None = None) -> list[dict]:
    """The shipped atlas: every sweep file in assets/atlas (or `folder`), by name; [] when there is none."""
    root = Path(folder or ATLAS)
    return [_load(str(p), p.stat().st_mtime) for p in sorted(root.glob("*.json"))] if root.is_dir() else []


def atlas_rows(folder: Path | None = None) -> list[dict]:
    """The atlas's runs as store rows, each (configuration, seed) once: sweeps overlap (the n sweep's n=20 r=2
    is also in the rank sweep) and a seed counted twice would shrink the spread. The first file's run stands."""
    from lopt_core.analysis.aggregate import config_key
    seen, out = set(), []
    for doc in atlas(folder):
        for row in rows(doc):
            key = (config_key(row), row["config"].get("seed"))
            if key not in seen:
                seen.add(key)
                out.append(row)
    return out


def atlas_tasks(folder: Path | None = None) -> list[str]:
    """The tasks the atlas holds (a task's label, as the plots' task filter names it)."""
    from lopt_core.analysis.aggregate import task_label
    return sorted({task_label(r) for r in atlas_rows(folder)})


def first_task(folder: Path | None = None) -> str | None:
    """The task a first visit opens on: the Train form's first task where the atlas has it (SST-2), else the
    atlas's first."""
    from lopt_core.config import RunConfig
    tasks = atlas_tasks(folder)
    return RunConfig().task if RunConfig().task in tasks else (tasks[0] if tasks else None)


def atlas_machine(folder: Path | None = None) -> str:
    """Where the atlas was measured, in words ("AMD EPYC, 2 threads, fp32"); "" without an atlas."""
    docs = atlas(folder)
    if not docs:
        return ""
    cpus = sorted({d["machine"].get("cpu", "unknown CPU") for d in docs})
    precisions = sorted({(r.get("result") or {}).get("precision") or "fp32" for d in docs for r in d["runs"]})
    threads = sorted({str(d["machine"].get("torch_threads")) for d in docs})
    return f"{' / '.join(cpus)}, {'/'.join(threads)} threads, {'/'.join(precisions)}"


def rows(doc: dict) -> list[dict]:
    """The file's runs shaped like store rows (for plots and readings)."""
    out = []
    for r in doc["runs"]:
        c = r["config"]
        out.append({"run_id": r["run_id"], "state": r["state"], "model": c["model"], "task": c["task"],
                    "method": c["method"], "n": c["n"], "r": c["r"], "trainable_params": r["trainable_params"],
                    "accuracy": r["accuracy"], "zero_shot_accuracy": r["zero_shot_accuracy"], "config": c,
                    "result": r.get("result") or {}, "created": 0.0, "sweep_id": doc["sweep"]["sweep_id"],
                    "steps_done": (r.get("result") or {}).get("steps_done")})
    return out
