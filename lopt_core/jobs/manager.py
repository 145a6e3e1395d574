"""Background training: a FIFO queue, worker processes (multiprocessing "spawn"), stop, dead-worker detection.

The store is the source of truth for every run's state; this module only decides *when* a queued run starts:
  submit(cfg)  -> a row in state "queued"; a scheduler thread starts it when fewer than max_concurrent run.
  worker       -> runs.run_and_record(cfg, store=Store(path), run_id=run_id) in its own process, so a crash,
                  an out-of-memory kill or a hang never takes the server down.
  stop(id)     -> queued: leaves the queue as "stopped"; running: Store.request_stop, polled every step, so
                  the run ends within one step and keeps what it trained.
  a worker that exits without a final state (killed, segfault) -> "interrupted" with its exit code;
  a worker whose training raised -> "failed" with the exception (written by run_and_record).
  submit_sweep(spec) -> a sweep row and one queued run per configuration; the whole sweep is ONE job: one
                  worker loads the model once and trains all its runs (sweep.run), batched where it can.
  stop_sweep(id)  -> queued runs of the sweep leave the queue, running ones end after their step.
  submit_analysis(kind, run_id, params) -> an analysis of an ended run (evaluate now, truncation curve) in a
                  worker of its own, queued like a run (analyses.py).
  who=Visitor     -> on a public host every call that queues or changes a job names its visitor: new jobs record
                  their owner and count against the host's queue caps; stop, delete, re-run and analyses of
                  another visitor's run are refused (owners.py). Locally `who` is LOCAL: everything allowed.
On start (a new server), runs left "running" by a dead server become "interrupted", and runs left "queued"
become "interrupted" too (never silently restarted: the user may not want them any more; one click re-queues);
sweeps left queued or running likewise. Workers watch their parent and exit when the server dies, so no orphan
keeps writing to the store.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

from lopt_core.config import ConfigError, RunConfig
from lopt_core.errors import NotFound
from lopt_core.analysis.aggregate import metric_of
from lopt_core.training.checks import Checked, check
from lopt_core.hosting.owners import LOCAL, Visitor, check_room
from lopt_core.store.sqlite import FINAL, Store
from lopt_core.sweeps import estimate

RESTART_REASON_RUNNING = "the server stopped while this run was training"
RESTART_REASON_QUEUED = "the server stopped before this queued run started"
SWEEP_PREFIX = "sweep:"  # job keys: a run id, SWEEP_PREFIX + sweep id, or ANALYSIS_PREFIX + analysis id
ANALYSIS_PREFIX = "analysis:"


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)  # the server is gone: stop writing into its store


def _in_worker(parent_pid: int, threads: int | None, job) -> None:
    """What every worker process does around its job: watch the server, set threads, and exit non-zero
    without a long traceback when the job raised (the job has recorded why in the store)."""
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if threads:
        import torch
        torch.set_num_threads(threads)
    try:
        job()
    except BaseException:
        os._exit(1)


def _worker(cfg_dict: dict, store_path: str, run_id: str, parent_pid: int, threads: int | None) -> None:
    """Entry point of a run's worker process (top level: picklable under spawn)."""
    def job():
        from lopt_core.training.runs import run_and_record
        run_and_record(RunConfig.from_dict(cfg_dict), store=Store(store_path), run_id=run_id)
    _in_worker(parent_pid, threads, job)


def _sweep_worker(sweep_id: str, store_path: str, parent_pid: int, threads: int | None) -> None:
    """Entry point of a sweep's worker process: every queued run of the sweep, on one loaded model (or, with
    LOPT_RAY_ADDRESS set, each group of its plan as a task on that Ray cluster: ray_backend.py)."""
    def job():
        from lopt_core.sweeps import ray_backend
        ray_backend.run(sweep_id, Store(store_path), ray_backend.from_env())
    _in_worker(parent_pid, threads, job)


def _analysis_worker(analysis_id: str, store_path: str, parent_pid: int, threads: int | None) -> None:
    """Entry point of an analysis's worker process (analyses.run records its result or failure)."""
    def job():
        from lopt_core.jobs import analyses
        analyses.run(analysis_id, Store(store_path))
    _in_worker(parent_pid, threads, job)


class JobManager:
    def __init__(self, store_path: str | os.PathLike | None = None, max_concurrent: int | None = None,
                 poll_s: float = 0.5, worker_threads: int | None = None, start: bool = True, limits=None):
        self.store = Store(store_path)
        self.store_path = str(self.store.path)
        self._given_limits = limits  # None: read LOPT_* at each call (tests change them)
        self.max_concurrent = max_concurrent or self.limits.max_concurrent
        self.worker_threads = worker_threads
        self.poll_s = poll_s
        self._ctx = mp.get_context("spawn")
        self._procs: dict[str, mp.Process] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self.recovered = self._recover()
        self._thread = None
        if start:
            self._thread = threading.Thread(target=self._loop, name="lopt-jobs", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ lifecycle
    def _recover(self) -> dict[str, list[str]]:
        """A new server owns no workers: what the store says is running or queued is left over, except the
        sweeps a live command-line process is training (`python -m lopt_core sweep` on the same store)."""
        from lopt_core.store.sqlite import lopt_process_alive
        live = {s["sweep_id"] for s in self.store.list_sweeps(states=("running",))
                if s["pid"] != os.getpid() and lopt_process_alive(s["pid"])}
        dead, queued = [], []
        for r in self.store.list(states=("running", "queued")):
            if r.get("sweep_id") in live:
                continue
            was = r["state"]
            self.store.update(r["run_id"], state="interrupted",
                              error=RESTART_REASON_RUNNING if was == "running" else RESTART_REASON_QUEUED)
            (dead if was == "running" else queued).append(r["run_id"])
        sweeps = []
        for s in self.store.list_sweeps(states=("queued", "running")):
            if s["sweep_id"] in live:
                continue
            self.store.update_sweep(s["sweep_id"], state="interrupted", error=RESTART_REASON_RUNNING
                                    if s["state"] == "running" else RESTART_REASON_QUEUED)
            sweeps.append(s["sweep_id"])
        for a in self.store.list_analyses(states=("queued", "running")):
            self.store.update_analysis(a["analysis_id"], state="interrupted", error=RESTART_REASON_RUNNING
                                       if a["state"] == "running" else RESTART_REASON_QUEUED)
        return {"running": dead, "queued": queued, "sweeps": sweeps}

    def close(self, timeout: float = 5.0) -> None:
        """Stop the scheduler; ask running workers to stop, then end them."""
        self._closed.set()
        with self._lock:
            procs = dict(self._procs)
        for key in procs:
            try:
                if key.startswith(SWEEP_PREFIX):
                    from lopt_core.sweeps import spec as sweep
                    sweep.stop(key[len(SWEEP_PREFIX):], self.store)
                elif key.startswith(ANALYSIS_PREFIX):
                    p = procs[key]
                    p.terminate()
                else:
                    self.store.request_stop(key)
            except Exception:
                pass
        deadline = time.time() + timeout
        for run_id, p in procs.items():
            p.join(max(0.0, deadline - time.time()))
            if p.is_alive():
                p.terminate()
                p.join(2)
        self.poll()

    @property
    def limits(self):
        from lopt_core.hosting import limits as hosting
        return self._given_limits or hosting.limits()

    # ------------------------------------------------------------ API
    def submit(self, cfg: RunConfig | Checked, who: Visitor = LOCAL) -> str:
        """Check (unless given a Checked) and queue a run; returns its id. Raises ConfigError with a clear message (QueueFull when
        the host's caps are reached)."""
        from lopt_core.training.loop import new_run_id
        limits = self.limits
        cfg = (cfg if isinstance(cfg, Checked) else check(cfg, limits)).config  # checked once, by whoever made it
        with self._lock:  # the cap check and the insert together: two clicks cannot both take the last place
            check_room(self.store, limits, who)
            run_id = new_run_id(cfg)
            self.store.create(run_id, cfg, state="queued", owner=who.owner)
        self.poll()
        return run_id

    def submit_sweep(self, spec, preset: str | None = None, who: Visitor = LOCAL) -> str:
        """Validate a SweepSpec and queue all its configurations as one job; returns the sweep id.
        Raises ConfigError (SweepError) naming the offending value; nothing is queued then."""
        from lopt_core.sweeps import spec as sweep
        limits = self.limits
        with self._lock:
            check_room(self.store, limits, who)
            sweep_id = sweep.create(spec, self.store, preset=preset, limits=limits, owner=who.owner)
        self.poll()
        return sweep_id

    def resume_sweep(self, sweep_id: str, who: Visitor = LOCAL) -> list[str]:
        """Re-queue the configurations of a stopped or interrupted sweep that never finished."""
        from lopt_core.sweeps import spec as sweep
        who.check(self.store.get_sweep(sweep_id), "resume", "sweep")
        with self._lock:
            check_room(self.store, self.limits, who)
            proc = self._procs.get(SWEEP_PREFIX + sweep_id)
        if proc is not None and self.store.get_sweep(sweep_id)["state"] in FINAL:
            proc.join(timeout=15)  # its worker is exiting right after recording the end: let it, then reap it
        self.poll()
        with self._lock:
            if SWEEP_PREFIX + sweep_id in self._procs:
                raise sweep.SweepError(f"{sweep_id} is still finishing its current step; resume it in a moment")
            ids = sweep.resume(sweep_id, self.store)
        self.poll()
        return ids

    def resume_run(self, run_id: str, who: Visitor = LOCAL) -> int:
        """Queue again a run that was interrupted (the server restarted, its worker died) or failed: it continues
        from its last checkpoint, its curve kept up to there, or starts over without one. Returns the step it
        continues after (0: from the start). A run of a sweep resumes with its sweep."""
        from lopt_core.sweeps.spec import SweepError
        from lopt_core.training import artifacts
        row = self.store.get(run_id)
        who.check(row, "resume", "run")
        if row.get("sweep_id"):
            raise SweepError(f"{run_id} belongs to sweep {row['sweep_id']}: resume the sweep")
        if row["state"] not in ("interrupted", "failed"):
            raise ConfigError(f"{run_id} is {row['state']}: only an interrupted or failed run can be resumed")
        with self._lock:
            check_room(self.store, self.limits, who)
            step = artifacts.clear_for_resume(run_id)
            self.store.requeue(run_id, keep_until=step)
        self.poll()
        return step

    def submit_preset(self, key: str, model: str, quick: bool, who: Visitor = LOCAL) -> list[str]:
        """Queue a guided experiment (one sweep, or one per task); all are checked before any is queued."""
        from lopt_core.sweeps import presets
        limits = self.limits
        with self._lock:  # a preset over two tasks queues two sweeps: both must fit
            check_room(self.store, limits, who, jobs=len(presets.get(key).specs(model=model, quick=quick)))
            ids = presets.create_preset(key, self.store, model, quick, limits=limits, owner=who.owner)
        self.poll()
        return ids

    def submit_analysis(self, kind: str, run_id: str, params: dict | None = None, who: Visitor = LOCAL) -> str:
        """Check and queue an analysis of an ended run ('evaluate' or 'truncate'); returns its id.
        Raises analyses.AnalysisError with the reason; nothing is queued then."""
        from lopt_core.jobs import analyses
        who.check(self.store.get(run_id), "analyse")
        cap = self.limits.max_eval_size
        size = (params or {}).get("eval_size")
        if cap is not None and isinstance(size, int) and (size == 0 or size > cap):
            raise ConfigError(f"{size or 'all'} test examples is above this host's limit of {cap} (LOPT_MAX_EVAL_SIZE)")
        with self._lock:
            check_room(self.store, self.limits, who)
            aid = analyses.create(self.store, kind, run_id, params)
        self.poll()
        return aid

    def wait_analysis(self, analysis_id: str, timeout: float = 300.0) -> dict:
        """Block until the analysis's worker is gone and the analysis is final (for tests and scripts)."""
        return self._wait("analysis", analysis_id, self.store.get_analysis, ANALYSIS_PREFIX + analysis_id, timeout)

    def stop_sweep(self, sweep_id: str, who: Visitor = LOCAL) -> str:
        from lopt_core.sweeps import spec as sweep
        who.check(self.store.get_sweep(sweep_id), "stop", "sweep")
        with self._lock:
            return sweep.stop(sweep_id, self.store)

    def wait_sweep(self, sweep_id: str, timeout: float = 300.0) -> dict:
        """Block until the sweep's worker is gone and the sweep is final (for tests and scripts)."""
        return self._wait("sweep", sweep_id, self.store.get_sweep, SWEEP_PREFIX + sweep_id, timeout)

    def stop(self, run_id: str, who: Visitor = LOCAL) -> str:
        """Stop a queued or running run; returns what happened, in words."""
        with self._lock:
            row = self.store.get(run_id)
            who.check(row, "stop")
            if row["state"] == "queued":
                self.store.update(run_id, state="stopped", error=None, stop_requested=1)
                return f"{run_id} removed from the queue"
            if row["state"] == "running":
                if self.store.request_stop(run_id) >= 2:
                    return f"{run_id} ends without its closing evaluation (stop pressed twice)"
                return (f"stop requested for {run_id}: it ends after the current step, keeps what it trained and "
                        f"is evaluated on it (press Stop again to skip that evaluation)")
            return f"{run_id} is already {row['state']}"

    def delete(self, run_id: str, who: Visitor = LOCAL) -> str:
        """Delete an ended run (its row, artifact folder, and upload when no other run uses it); returns what
        was deleted, in words. ValueError for a run still queued or running, NotYours for another's run."""
        from lopt_core.training import runs
        with self._lock:
            who.check(self.store.get(run_id), "delete")
            return runs.delete_run(self.store, run_id)

    def run_for(self, run_id: str, who: Visitor = LOCAL, action: str | None = None) -> dict:
        """The run's row when `who` may see it, else NotFound, worded as for a run that does not exist; given an
        action ("download", "export", ...), NotYours unless `who` may also change it."""
        try:
            row = self.store.get(run_id) if run_id else None
        except KeyError:
            row = None
        if row is None or not who.sees(row):
            raise NotFound(f"run {run_id} no longer exists; press Refresh" if run_id else "choose a run first")
        if action:
            who.check(row, action)
        return row

    def download(self, run_id: str, who: Visitor = LOCAL) -> Path:
        """The run's artifact folder zipped into a bounded downloads entry (hosting/downloads.py)."""
        from lopt_core.hosting import downloads
        from lopt_core.training import artifacts
        row = self.run_for(run_id, who, "download")
        folder = Path(row["artifact_dir"] or artifacts.run_dir(run_id))
        if not folder.is_dir():
            raise NotFound(f"run {run_id} has no artifact folder (state {row['state']}; nothing was saved)")
        return downloads.zip_folder(folder, downloads.new_entry("download", run_id), run_id)

    def export(self, run_id: str, who: Visitor = LOCAL) -> Path:
        """The run's prompt as a zipped PEFT prompt-tuning adapter (ExportError says why a run cannot be one)."""
        import shutil
        from lopt_core.analysis.export import export_peft
        from lopt_core.hosting import downloads
        row = self.run_for(run_id, who, "export")
        if not row["artifact_dir"]:
            raise NotFound(f"run {run_id} has no saved prompt (state {row['state']})")
        entry = downloads.new_entry("peft", run_id)
        try:
            folder = export_peft(row["artifact_dir"], entry / f"{run_id}-peft")
        except BaseException:
            shutil.rmtree(entry, ignore_errors=True)
            raise
        return downloads.zip_folder(folder, entry, f"{run_id}-peft")

    def rerun(self, run_id: str, who: Visitor = LOCAL) -> str:
        """Queue a new run with the settings of `run_id` (the owner's only, on a public host); returns its id."""
        row = self.store.get(run_id)
        who.check(row, "re-run")
        return self.submit(RunConfig.from_dict(row["config"]), who)

    def queued(self) -> list[str]:
        return [r["run_id"] for r in self.store.list(states=("queued",))]

    def running(self) -> list[str]:
        with self._lock:
            return [k for k, p in self._procs.items() if p.is_alive()]

    def wait(self, run_id: str, timeout: float = 120.0) -> dict:
        """Block until the run reaches a final state (for tests and scripts)."""
        return self._wait("run", run_id, self.store.get, run_id, timeout)

    def _wait(self, what: str, key: str, get, proc_key: str, timeout: float) -> dict:
        t0 = time.time()
        while time.time() - t0 < timeout:
            self.poll()
            row = get(key)
            if row["state"] in FINAL and proc_key not in self._procs:
                return row
            time.sleep(0.2)
        raise TimeoutError(f"{what} {key} did not finish within {timeout} s")

    # ------------------------------------------------------------ scheduling
    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self.poll()
            except Exception as e:  # never let the scheduler die
                print(f"[jobs] scheduler error: {type(e).__name__}: {e}", flush=True)
            self._closed.wait(self.poll_s)

    def poll(self) -> None:
        """Reap finished workers, then start queued runs while there is room."""
        with self._lock:
            for run_id, p in list(self._procs.items()):
                if p.is_alive():
                    continue
                p.join(0.1)
                del self._procs[run_id]
                self._reap(run_id, p.exitcode)
            if self._closed.is_set():
                return
            room = self.max_concurrent - len(self._procs)
            for kind, row in self.waiting():
                if room <= 0:
                    return
                if kind == "analysis":
                    self._start_analysis(row["analysis_id"])
                elif kind == "run":
                    self._start(row)
                elif self.store.claim_sweep(row["sweep_id"], os.getpid()):  # a CLI's own sweep is never claimed
                    self._start_sweep(row["sweep_id"])
                else:
                    continue
                room -= 1

    def waiting(self) -> list[tuple[str, dict]]:
        """The queue in the order jobs start: oldest first across every kind ("run", "sweep" (the row of its
        oldest queued run) and "analysis"), so an analysis never waits behind runs queued after it."""
        jobs, sweeps = [], set()
        for row in self.store.list(states=("queued",)):  # oldest first; a sweep is one job
            sid = row.get("sweep_id")
            if sid is None:
                jobs.append((row["created"], "run", row))
            elif sid not in sweeps and SWEEP_PREFIX + sid not in self._procs:
                sweeps.add(sid)
                jobs.append((row["created"], "sweep", row))
        jobs += [(a["created"], "analysis", a) for a in self.store.list_analyses(states=("queued",))]
        return [(kind, row) for _, kind, row in sorted(jobs, key=lambda j: j[0])]

    def _start_analysis(self, analysis_id: str) -> None:
        p = self._ctx.Process(target=_analysis_worker, name=f"lopt-{analysis_id}",
                              args=(analysis_id, self.store_path, os.getpid(), self.worker_threads), daemon=True)
        try:
            p.start()
        except Exception as e:
            self.store.update_analysis(analysis_id, state="failed",
                                       error=f"could not start a worker: {type(e).__name__}: {e}")
            return
        self._procs[ANALYSIS_PREFIX + analysis_id] = p
        self.store.update_analysis(analysis_id, state="running", pid=p.pid)

    def _start(self, row: dict) -> None:
        run_id = row["run_id"]
        p = self._ctx.Process(target=_worker, name=f"lopt-run-{run_id}",
                              args=(row["config"], self.store_path, run_id, os.getpid(), self.worker_threads),
                              daemon=True)
        try:
            p.start()
        except Exception as e:
            self.store.update(run_id, state="failed", error=f"could not start a worker: {type(e).__name__}: {e}")
            return
        self._procs[run_id] = p
        self.store.update(run_id, state="running", pid=p.pid)

    def _start_sweep(self, sweep_id: str) -> None:
        """Start the worker of a sweep this scheduler has just claimed (queued -> running)."""
        key = SWEEP_PREFIX + sweep_id
        p = self._ctx.Process(target=_sweep_worker, name=f"lopt-{sweep_id}",
                              args=(sweep_id, self.store_path, os.getpid(), self.worker_threads), daemon=True)
        try:
            p.start()
        except Exception as e:
            why = f"could not start a worker: {type(e).__name__}: {e}"
            self.store.update_sweep(sweep_id, state="failed", error=why)
            for r in self.store.list(states=("queued",), sweep_id=sweep_id):
                self.store.update(r["run_id"], state="failed", error=why)
            return
        self._procs[key] = p
        self.store.update_sweep(sweep_id, state="running", pid=p.pid)

    def _reap(self, key: str, exitcode) -> None:
        if key.startswith(SWEEP_PREFIX):
            return self._reap_sweep(key[len(SWEEP_PREFIX):], exitcode)
        if key.startswith(ANALYSIS_PREFIX):
            try:
                a = self.store.get_analysis(key[len(ANALYSIS_PREFIX):])
            except KeyError:
                return
            if a["state"] not in FINAL:
                self.store.update_analysis(a["analysis_id"], state="interrupted", error=_death_reason(exitcode))
            return
        try:
            row = self.store.get(key)
        except KeyError:
            return  # deleted meanwhile
        if row["state"] in FINAL:
            return
        self.store.update(key, state="interrupted", error=_death_reason(exitcode))

    def _reap_sweep(self, sweep_id: str, exitcode) -> None:
        """The sweep's runs that its worker left unfinished (running or still queued) become interrupted."""
        why = _death_reason(exitcode)
        for r in self.store.list(states=("queued", "running"), sweep_id=sweep_id):
            self.store.update(r["run_id"], state="interrupted", error=why)
        try:
            sw = self.store.get_sweep(sweep_id)
        except KeyError:
            return
        if sw["state"] not in FINAL:
            self.store.update_sweep(sweep_id, state="interrupted", error=why)


def _death_reason(exitcode) -> str:
    if exitcode == 0:
        return "the worker exited without recording a result"
    if exitcode is not None and exitcode < 0:
        import signal
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"the worker process was killed ({name})" + (" - out of memory?" if name == "SIGKILL" else "")
    return f"the worker process died (exit code {exitcode})"


def run_progress(store: Store, run_id: str) -> dict:
    """What the Train tab shows for one run: state, step/total, examples/s, ETA, error."""
    row = store.get(run_id)
    total = int(row["config"].get("steps") or 0)
    loss = store.metrics(run_id, "loss", last=estimate.RECENT_STEPS)  # what the pace and the ETA read
    done = loss[-1]["step"] if loss else 0
    eps = loss[-1]["examples_per_s"] if loss else None
    eta = slower = None
    per_step = estimate.seconds_per_step(loss) if row["state"] == "running" else None
    if per_step is not None:
        eta = per_step * max(0, total - done)
        compute = estimate.step_compute_seconds(loss, int(row["config"].get("batch_size") or 8))
        slower = estimate.pace(store, row, compute) if compute else None
    phase, fraction = row["state"], (done / total) if total else 0.0
    ev = row.get("eval_progress") if row["state"] == "running" else None
    if ev:  # an evaluation is under way: its own progress and ETA
        stopped = bool(row.get("stop_requested"))
        phase = "evaluating the stopped prompt" if stopped else (
            "final evaluation" if ev["step"] >= total else f"evaluating at step {ev['step']}")
        fraction = ev["done"] / ev["total"] if ev["total"] else 0.0
        spent = time.time() - ev["t0"]
        eta = spent / ev["done"] * (ev["total"] - ev["done"]) if ev["done"] else None
    elif phase == "running" and row.get("stop_requested"):
        phase = "stopping after this step"
    elif phase == "running" and not loss:
        phase = "loading model and data"
    elif phase == "running" and done >= total:
        phase = "final evaluation"
    return {"run_id": run_id, "state": row["state"], "phase": phase, "step": done, "total": total,
            "fraction": fraction, "examples_per_s": eps, "eta_s": eta,
            "eval_done": ev["done"] if ev else None, "eval_total": ev["total"] if ev else None,
            "error": row.get("error"), "accuracy": row.get("accuracy"), "metric": metric_of(row),
            "slower": slower if slower is not None and slower >= estimate.SLOW else None}



def default_store_path() -> Path:
    from lopt_core import paths
    return paths.db_path()
