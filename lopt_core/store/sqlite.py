"""The run store: one sqlite3 file of runs and their metric events, safe across processes (WAL).

States: queued -> running -> done | stopped | failed | interrupted. A run whose worker died while running is
marked interrupted (never left running forever).
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from lopt_core import paths
from lopt_core.errors import RunNotFound, StoreError
from lopt_core.store.protocol import TrainingStore

STATES = ("queued", "running", "done", "stopped", "failed", "interrupted")
FINAL = ("done", "stopped", "failed", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, created REAL, updated REAL, state TEXT NOT NULL, config TEXT NOT NULL,
  model TEXT, task TEXT, method TEXT, n INTEGER, r INTEGER, trainable_params INTEGER,
  accuracy REAL, zero_shot_accuracy REAL, train_seconds REAL, steps_done INTEGER DEFAULT 0,
  error TEXT, artifact_dir TEXT, pid INTEGER, stop_requested INTEGER DEFAULT 0, result TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, value REAL, lr REAL,
  examples_per_s REAL, t REAL, FOREIGN KEY (run_id) REFERENCES runs(run_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, kind, step);
CREATE TABLE IF NOT EXISTS zero_shot (key TEXT PRIMARY KEY, accuracy REAL);
CREATE TABLE IF NOT EXISTS analyses (
  analysis_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, created REAL, updated REAL,
  state TEXT NOT NULL, params TEXT, progress TEXT, result TEXT, error TEXT, pid INTEGER
);
CREATE TABLE IF NOT EXISTS sweeps (
  sweep_id TEXT PRIMARY KEY, created REAL, updated REAL, state TEXT NOT NULL, spec TEXT NOT NULL,
  command TEXT, preset TEXT, reading TEXT, pid INTEGER, stop_requested INTEGER DEFAULT 0, error TEXT
);
"""
# columns added after the first release: (table, column, declaration); added to older files on open
_MIGRATIONS = [("runs", "sweep_id", "TEXT"), ("sweeps", "launch_id", "TEXT"), ("runs", "eval_progress", "TEXT"),
               ("runs", "owner", "TEXT"), ("sweeps", "owner", "TEXT")]

# what a page's poll asks (Store.mark, list by state, an analysis of a run) answered from an index, not a scan
_POLL_INDEXES = ("runs_owner_updated ON runs(owner, updated)", "runs_state_updated ON runs(state, updated)",
                 "analyses_run ON analyses(run_id, kind)")

_COLUMNS = ("run_id", "created", "updated", "state", "config", "model", "task", "method", "n", "r",
            "trainable_params", "accuracy", "zero_shot_accuracy", "train_seconds", "steps_done", "error",
            "artifact_dir", "pid", "stop_requested", "result", "sweep_id", "eval_progress", "owner")
_ANALYSIS_COLUMNS = ("analysis_id", "run_id", "kind", "created", "updated", "state", "params", "progress", "result",
                     "error", "pid")
_SWEEP_COLUMNS = ("sweep_id", "created", "updated", "state", "spec", "command", "preset", "reading", "pid",
                  "stop_requested", "error", "launch_id", "owner")


class Store(TrainingStore):
    """The local store: every run, sweep and analysis of a LOPT_HOME (the job manager, the CLI, the plots)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else paths.db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._conn() as c:
                c.executescript(_SCHEMA)
                for table, col, decl in _MIGRATIONS:
                    have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
                    if col not in have:
                        c.execute(f"ALTER TABLE {table} ADD COLUMN {col} {decl}")
                c.execute("CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id)")
                c.execute("CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner, created)")
                for index in _POLL_INDEXES:  # made on open, so an existing store gets them too
                    c.execute(f"CREATE INDEX IF NOT EXISTS {index}")
                bad = c.execute("PRAGMA quick_check").fetchone()[0]
                version = c.execute("PRAGMA user_version").fetchone()[0]
                c.execute(f"PRAGMA user_version = {int(version)}")  # a write: a read-only store fails here, at start
        except sqlite3.OperationalError as e:
            writable = os.access(self.path.parent, os.W_OK) and (not self.path.exists()
                                                                  or os.access(self.path, os.W_OK))
            if writable and "readonly" not in str(e):
                raise StoreError(f"{self.path} cannot be opened ({e}): check the file and its folder") from None
            raise StoreError(f"{self.path} is read-only ({e}): make it and its folder writable, or point LOPT_HOME "
                             f"at a folder of your own") from None
        except sqlite3.DatabaseError as e:  # not sqlite, truncated, or damaged pages
            raise StoreError(f"{self.path} is damaged or not a LoPT Lab store ({e}): move it aside (a new one is "
                             f"made on the next start) or restore it from a copy") from None
        if bad != "ok":
            raise StoreError(f"{self.path} is damaged ({bad[:120]}): move it aside (a new one is made on the next "
                             f"start) or restore it from a copy")

    @contextmanager
    def _conn(self):
        c = sqlite3.connect(self.path, timeout=30)
        c.row_factory = sqlite3.Row
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA foreign_keys=ON")
        try:
            with c:  # one transaction: commit on success, roll back on error
                yield c
        finally:
            c.close()

    # ---------------------------------------------------------------- runs
    def create(self, run_id: str, cfg, state: str = "queued", sweep_id: str | None = None,
               owner: str | None = None) -> None:
        with self._conn() as c:
            _insert_run(c, run_id, cfg, state, sweep_id, time.time(), owner)

    def update(self, run_id: str, **fields) -> None:
        self._update("runs", "run_id", run_id, _COLUMNS, "result", fields)

    def _update(self, table: str, key: str, value: str, columns, json_field: str, fields: dict) -> None:
        """UPDATE one row of `table`: known columns only, a valid state, `json_field` stored as JSON."""
        bad = set(fields) - set(columns)
        assert not bad, f"unknown {table} column(s) {bad}"
        if "state" in fields:
            assert fields["state"] in STATES, f"bad state {fields['state']!r}"
        if json_field in fields and not isinstance(fields[json_field], (str, type(None))):
            fields[json_field] = json.dumps(fields[json_field])
        fields["updated"] = time.time()
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._conn() as c:
            if c.execute(f"UPDATE {table} SET {cols} WHERE {key}=?", (*fields.values(), value)).rowcount == 0:
                raise RunNotFound(f"no {table[:-1]} {value!r}")

    def get(self, run_id: str) -> dict:
        with self._conn() as c:
            row = c.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id!r}")
        return _row(row, self.path.parent)

    def list(self, states=None, sweep_id: str | None = None, owners: tuple[str, ...] | None = None,
             others_done: bool = False) -> list[dict]:
        """Runs, oldest first. owners: only those runs (by the owner index), and with others_done also other
        owners' finished runs not trained on an uploaded file: what a public host's visitor may see, in SQL."""
        where, args = _runs_where(states, sweep_id, owners, others_done)
        with self._conn() as c:
            return [_row(r, self.path.parent)
                    for r in c.execute(f"SELECT * FROM runs{where} ORDER BY created, rowid", args).fetchall()]

    def mark(self, owners: tuple[str, ...] | None = None, others_done: bool = False) -> tuple[int, float | None]:
        """(how many, last updated) of the runs list() would return for the same filter: one aggregate over the
        (owner, updated) index, so a poll learns whether anything it shows changed without reading a row. Every
        write to a run moves its `updated`; a deleted run lowers the count."""
        where, args = _runs_where(None, None, owners, others_done)
        with self._conn() as c:
            count, last = c.execute(f"SELECT COUNT(*), MAX(updated) FROM runs{where}", args).fetchone()
        return count, last

    def sweep_run_counts(self) -> dict[str, int]:
        """{sweep_id: its runs}, counted on the sweep index (the Sweep tab's labels, every second)."""
        with self._conn() as c:
            return dict(c.execute("SELECT sweep_id, COUNT(*) FROM runs WHERE sweep_id IS NOT NULL "
                                  "GROUP BY sweep_id").fetchall())

    def delete(self, run_id: str) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM metrics WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM analyses WHERE run_id=?", (run_id,))
            if c.execute("DELETE FROM runs WHERE run_id=?", (run_id,)).rowcount == 0:
                raise RunNotFound(f"no run {run_id!r}")

    def request_stop(self, run_id: str) -> int:
        """Ask a running run to stop; asking again (level 2) also skips its closing evaluation."""
        with self._conn() as c:
            c.execute("UPDATE runs SET stop_requested=MIN(COALESCE(stop_requested, 0) + 1, 2), updated=? "
                      "WHERE run_id=?", (time.time(), run_id))
        return self.stop_level(run_id)

    def stop_level(self, run_id: str) -> int:
        with self._conn() as c:
            row = c.execute("SELECT stop_requested FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return int(row[0] or 0) if row else 0

    def mark_dead_runs(self, alive_pids: set[int] | None = None, reason: str = "the worker process died") -> list[str]:
        """Runs shown as running whose process is gone become interrupted. Returns their ids."""
        dead = []
        for r in self.list(states=("running",)):
            pid = r.get("pid")
            alive = pid is not None and (pid in alive_pids if alive_pids is not None else pid_alive(pid))
            if not alive:
                self.update(r["run_id"], state="interrupted", error=reason)
                dead.append(r["run_id"])
        return dead

    # ---------------------------------------------------------------- sweeps
    def create_sweep(self, sweep_id: str, spec: dict, run_ids_cfgs: list, command: str = "", preset: str | None = None,
                     state: str = "queued", launch_id: str | None = None, claimed_by: int | None = None,
                     owner: str | None = None) -> None:
        """A sweep row and one run row per configuration, in one transaction (all or nothing is queued).
        launch_id ties together the sweeps one click queued (a preset over two tasks); claimed_by: the pid of
        the process that will run it (the sweep is born running, so no scheduler sharing the store takes it)."""
        now = time.time()
        with self._conn() as c:
            c.execute("INSERT INTO sweeps (sweep_id, created, updated, state, spec, command, preset, launch_id, pid, "
                      "owner) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (sweep_id, now, now, "running" if claimed_by else state, json.dumps(spec), command, preset,
                       launch_id or sweep_id, claimed_by, owner))
            for i, (run_id, cfg) in enumerate(run_ids_cfgs):  # created keeps the grid's order
                _insert_run(c, run_id, cfg, state, sweep_id, now + i * 1e-6, owner)

    def add_sweep_runs(self, sweep_id: str, run_ids_cfgs: list, state: str = "queued") -> None:
        now = time.time()
        with self._conn() as c:
            row = c.execute("SELECT owner FROM sweeps WHERE sweep_id=?", (sweep_id,)).fetchone()
            for i, (run_id, cfg) in enumerate(run_ids_cfgs):
                _insert_run(c, run_id, cfg, state, sweep_id, now + i * 1e-6, row["owner"] if row else None)

    def requeue(self, run_id: str, keep_until: int = 0) -> None:
        """A run to train again, in place: queued, its result and error cleared, and its curves after step
        `keep_until` (0: all of them; a checkpoint's step: the run continues from there with a continuous curve)."""
        with self._conn() as c:
            c.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, keep_until))
            c.execute("UPDATE runs SET state='queued', updated=?, accuracy=NULL, zero_shot_accuracy=NULL, "
                      "train_seconds=NULL, steps_done=?, error=NULL, artifact_dir=NULL, pid=NULL, stop_requested=0, "
                      "result=NULL, eval_progress=NULL WHERE run_id=?", (time.time(), keep_until, run_id))

    def claim_sweep(self, sweep_id: str, pid: int) -> bool:
        """queued -> running for exactly one process (the app's scheduler or a CLI); False if already taken."""
        with self._conn() as c:
            return c.execute("UPDATE sweeps SET state='running', pid=?, updated=? WHERE sweep_id=? AND state='queued'",
                             (pid, time.time(), sweep_id)).rowcount == 1

    def update_sweep(self, sweep_id: str, **fields) -> None:
        self._update("sweeps", "sweep_id", sweep_id, _SWEEP_COLUMNS, "reading", fields)

    def get_sweep(self, sweep_id: str) -> dict:
        with self._conn() as c:
            row = c.execute("SELECT * FROM sweeps WHERE sweep_id=?", (sweep_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no sweep {sweep_id!r}")
        return _sweep_row(row)

    def list_sweeps(self, states=None) -> list[dict]:
        q, args = "SELECT * FROM sweeps", ()
        if states:
            q += f" WHERE state IN ({','.join('?' * len(states))})"
            args = tuple(states)
        with self._conn() as c:
            return [_sweep_row(r) for r in c.execute(q + " ORDER BY created", args).fetchall()]

    def delete_sweep(self, sweep_id: str) -> None:
        """The sweep row only; its runs stay as ordinary runs (delete them one by one)."""
        with self._conn() as c:
            c.execute("UPDATE runs SET sweep_id=NULL WHERE sweep_id=?", (sweep_id,))
            if c.execute("DELETE FROM sweeps WHERE sweep_id=?", (sweep_id,)).rowcount == 0:
                raise RunNotFound(f"no sweep {sweep_id!r}")

    # ---------------------------------------------------------------- analyses (jobs over a finished run)
    def create_analysis(self, analysis_id: str, run_id: str, kind: str, params: dict) -> None:
        self.get(run_id)  # the run must exist
        now = time.time()
        with self._conn() as c:
            c.execute("INSERT INTO analyses (analysis_id, run_id, kind, created, updated, state, params) "
                      "VALUES (?,?,?,?,?,?,?)", (analysis_id, run_id, kind, now, now, "queued", json.dumps(params)))

    def update_analysis(self, analysis_id: str, **fields) -> None:
        for k in ("params", "progress", "result"):
            if k in fields and fields[k] is not None and not isinstance(fields[k], str):
                fields[k] = json.dumps(fields[k])
        self._update("analyses", "analysis_id", analysis_id, _ANALYSIS_COLUMNS, "result", fields)

    def get_analysis(self, analysis_id: str) -> dict:
        with self._conn() as c:
            row = c.execute("SELECT * FROM analyses WHERE analysis_id=?", (analysis_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no analysis {analysis_id!r}")
        return _analysis_row(row)

    def list_analyses(self, run_id: str | None = None, kind: str | None = None, states=None) -> list[dict]:
        where, args = [], []
        for col, val in (("run_id", run_id), ("kind", kind)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += list(states)
        q = "SELECT * FROM analyses" + (" WHERE " + " AND ".join(where) if where else "")
        with self._conn() as c:
            return [_analysis_row(r) for r in c.execute(q + " ORDER BY created, rowid", args).fetchall()]

    # ---------------------------------------------------------------- metrics
    def add_metric(self, run_id: str, step: int, kind: str, value: float, lr=None, examples_per_s=None) -> None:
        with self._conn() as c:
            c.execute("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)",
                      (run_id, step, kind, value, lr, examples_per_s, time.time()))
            if kind == "loss":
                c.execute("UPDATE runs SET steps_done=?, updated=? WHERE run_id=?", (step, time.time(), run_id))
            else:  # a new point of any curve is a change a poll must see (Store.mark)
                c.execute("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), run_id))

    def add_metrics(self, run_id: str, points: list[tuple]) -> None:
        """Many (step, kind, value, lr) points in one transaction (imports)."""
        now = time.time()
        with self._conn() as c:
            c.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)",
                          [(run_id, s, k, v, lr, None, now) for s, k, v, lr in points])
            c.execute("UPDATE runs SET updated=? WHERE run_id=?", (now, run_id))

    def metrics(self, run_id: str, kind: str | None = None, last: int | None = None) -> list[dict]:
        """A run's metric rows in step order; `last`: only the last that many (a progress line needs ten, not a
        long run's every step)."""
        q, args = "SELECT * FROM metrics WHERE run_id=?", [run_id]
        if kind:
            q += " AND kind=?"
            args.append(kind)
        with self._conn() as c:
            if last is None:
                return [dict(r) for r in c.execute(q + " ORDER BY step, rowid", args).fetchall()]
            rows = c.execute(q + " ORDER BY step DESC, rowid DESC LIMIT ?", [*args, int(last)]).fetchall()
        return [dict(r) for r in reversed(rows)]

    def curve(self, run_id: str, kind: str, at_most: int) -> list[tuple[int, float]]:
        """A run's (step, value) points of one kind, at most `at_most` of them: every k-th step and the first
        and the last, picked in SQL, so a long run's poll reads what a plot can show, not every step."""
        with self._conn() as c:
            count, first, last = c.execute("SELECT COUNT(*), MIN(step), MAX(step) FROM metrics WHERE run_id=? "
                                           "AND kind=?", (run_id, kind)).fetchone()
            q = "SELECT step, value FROM metrics WHERE run_id=? AND kind=?"
            args: list = [run_id, kind]
            if count > at_most:
                q += " AND ((step - ?) % ? = 0 OR step = ?)"
                args += [first, math.ceil(count / (at_most - 1)), last]  # the last one may be off the stride
            return [(r[0], r[1]) for r in c.execute(q + " ORDER BY step, rowid", args).fetchall()]

    # ---------------------------------------------------------------- zero-shot cache
    def zero_shot(self, key: str) -> float | None:
        with self._conn() as c:
            row = c.execute("SELECT accuracy FROM zero_shot WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_zero_shot(self, key: str, acc: float) -> None:
        with self._conn() as c:
            c.execute("INSERT OR REPLACE INTO zero_shot VALUES (?,?)", (key, acc))

    def zero_shots(self) -> dict[str, float]:
        """The whole zero-shot cache (a remote task starts with a copy)."""
        with self._conn() as c:
            return dict(c.execute("SELECT key, accuracy FROM zero_shot").fetchall())

    def add_metric_rows(self, rows: list[tuple]) -> None:
        """Many (run_id, step, kind, value, lr, examples_per_s) rows in one transaction, as add_metric writes
        them one by one (a remote task's events arrive in batches)."""
        now = time.time()
        last_loss = {r[0]: r[1] for r in rows if r[2] == "loss"}
        with self._conn() as c:
            c.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)", [(*r, now) for r in rows])
            c.executemany("UPDATE runs SET steps_done=? WHERE run_id=?", [(s, rid) for rid, s in last_loss.items()])
            c.executemany("UPDATE runs SET updated=? WHERE run_id=?", [(now, rid) for rid in {r[0] for r in rows}])


def _runs_where(states, sweep_id, owners, others_done) -> tuple[str, list]:
    """The WHERE clause (with its leading space, or empty) and arguments of Store.list's filters."""
    where, args = [], []
    if owners is not None:
        mine = f"owner IN ({','.join('?' * len(owners))})" if owners else "0"
        where.append(f"({mine} OR (state='done' AND task != 'file'))" if others_done else mine)
        args += list(owners)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        args += list(states)
    if sweep_id is not None:
        where.append("sweep_id=?")
        args.append(sweep_id)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _insert_run(c, run_id: str, cfg, state: str, sweep_id: str | None, created: float,
                owner: str | None = None) -> None:
    c.execute("INSERT INTO runs (run_id, created, updated, state, config, model, task, method, n, r, sweep_id, "
              "owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (run_id, created, created, state, cfg.to_json(), cfg.model,
                                                          cfg.task, cfg.method, cfg.n, cfg.r, sweep_id, owner))


def _row(row: sqlite3.Row, home: Path) -> dict:
    d = dict(row)
    d["config"] = json.loads(d["config"]) if d.get("config") else {}
    d["result"] = json.loads(d["result"]) if d.get("result") else None
    d["eval_progress"] = json.loads(d["eval_progress"]) if d.get("eval_progress") else None
    d["artifact_dir"] = _portable(d.get("artifact_dir"), home / "artifacts" / d["run_id"])
    return d


def _portable(recorded: str | None, beside: Path) -> str | None:
    """A run's artifact folder: the one beside the store where it is there (so a home copied or moved to
    another path still finds its runs), else as recorded."""
    if recorded and beside.is_dir():
        return str(beside)
    return recorded


def _analysis_row(row: sqlite3.Row) -> dict:
    d = dict(row)
    for k in ("params", "progress", "result"):
        d[k] = json.loads(d[k]) if d.get(k) else None
    return d


def _sweep_row(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["spec"] = json.loads(d["spec"]) if d.get("spec") else {}
    d["reading"] = json.loads(d["reading"]) if d.get("reading") else None
    return d


def lopt_process_alive(pid: int | None) -> bool:
    """A live process of LoPT Lab's command line (`python -m lopt_core ...`): not a recycled pid."""
    if not pid or not pid_alive(pid):
        return False
    try:
        return b"lopt_core" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    """Some process has this pid (no pid: none)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
