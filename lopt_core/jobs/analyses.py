"""Analyses: background jobs over a run that has ended, with progress and a stored result.

Kinds:
  evaluate  {}                        evaluate the run's saved prompt on its test examples and record the accuracy
                                      (how a stopped run that was never evaluated reaches the Compare plots)
  truncate  {"ranks", "eval_size"}    the truncation curve (truncate.py)
create() checks everything it can before anything is queued (AnalysisError with the reason); run() is what a
worker process (jobs.py) or the CLI calls; states are the runs' states (queued, running, done, failed, ...).
"""
from __future__ import annotations

import time
import traceback
import uuid
from datetime import datetime

from lopt_core.analysis.spectrum import AnalysisError
from lopt_core.store.sqlite import Store

KINDS = ("evaluate", "truncate")


def _saved(row: dict) -> None:
    from pathlib import Path
    from lopt_core.training import artifacts
    if row["state"] in ("queued", "running"):
        raise AnalysisError(f"run {row['run_id']} is {row['state']}; analyse it once it has ended")
    if not row.get("artifact_dir") or not (Path(row["artifact_dir"]) / artifacts.RUN_FILE).is_file():
        raise AnalysisError(f"run {row['run_id']} ({row['state']}) saved nothing to analyse")


def check(store: Store, kind: str, run_id: str, params: dict) -> dict:
    """The params to store, validated; AnalysisError naming the problem otherwise."""
    if kind not in KINDS:
        raise AnalysisError(f"unknown analysis {kind!r}; choose one of: {', '.join(KINDS)}")
    try:
        row = store.get(run_id)
    except KeyError:
        raise AnalysisError(f"no run {run_id!r}") from None
    _saved(row)
    if kind == "evaluate":
        return {}
    from lopt_core.analysis import truncate
    eval_size = params.get("eval_size", truncate.DEFAULT_EVAL_SIZE)
    return {"ranks": truncate.check(row, params.get("ranks"), eval_size), "eval_size": eval_size}


def create(store: Store, kind: str, run_id: str, params: dict | None = None) -> str:
    params = check(store, kind, run_id, params or {})
    analysis_id = f"{kind}-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    store.create_analysis(analysis_id, run_id, kind, params)
    return analysis_id


def run(analysis_id: str, store: Store, lm=None, on_progress=None) -> dict:
    """Run a queued analysis to its end, writing progress, result or the reason it failed. on_progress(done,
    total) also hears every progress report (the CLI's progress bar)."""
    import os
    a = store.get_analysis(analysis_id)
    store.update_analysis(analysis_id, state="running", pid=os.getpid(), progress={"done": 0, "total": None,
                                                                                  "t0": time.time()})
    t0, last = time.time(), [0.0]

    def report(done: int, total: int) -> None:
        if on_progress:
            on_progress(done, total)
        if time.time() - last[0] >= 0.5 or done == total:  # at most two writes a second
            last[0] = time.time()
            store.update_analysis(analysis_id, progress={"done": done, "total": total, "t0": t0})
    try:
        row = store.get(a["run_id"])
        if a["kind"] == "evaluate":
            from lopt_core.training.runs import evaluate_run
            result = evaluate_run(a["run_id"], store, lm=lm, record=True, on_progress=report)
        else:
            from lopt_core.analysis.truncate import truncation_curve
            result = truncation_curve(row, a["params"]["ranks"], a["params"]["eval_size"], lm=lm,
                                      on_progress=report)
    except BaseException as e:  # noqa: BLE001 (recorded, then re-raised)
        store.update_analysis(analysis_id, state="failed", error=f"{type(e).__name__}: {e}",
                              result={"traceback": traceback.format_exc(limit=8)})
        raise
    store.update_analysis(analysis_id, state="done", result=result)
    return result


def progress(a: dict) -> dict:
    """What a page shows of an analysis: state, done/total, fraction, ETA."""
    p = a.get("progress") or {}
    done, total = p.get("done") or 0, p.get("total")
    eta = None
    if a["state"] == "running" and total and done:
        eta = (time.time() - p["t0"]) / done * (total - done)
    return {"analysis_id": a["analysis_id"], "state": a["state"], "done": done, "total": total,
            "fraction": done / total if total else 0.0, "eta_s": eta, "error": a.get("error")}

