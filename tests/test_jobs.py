"""Job manager: queue, worker processes, stop, crash -> failed, killed worker -> interrupted, restart recovery."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from lopt_core.config import ConfigError, RunConfig
from lopt_core.jobs.manager import JobManager, run_progress
from lopt_core.training.checks import check
from lopt_core.store.sqlite import Store
from helpers import tiny_cfg
from lopt_core.errors import ModelUnavailable, TaskError

@pytest.fixture
def tiny(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOPT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_preflight_gives_clear_errors(tiny, home, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="rank r"):
        check(tiny_cfg(tiny, method="lopt1", n=2, r=5))
    with pytest.raises(ConfigError, match="steps"):
        check(tiny_cfg(tiny, steps=0))
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\na,1\n")
    with pytest.raises(TaskError, match="one class|usable rows"):  # the error tree's own kind, not re-wrapped
        check(tiny_cfg(tiny, task="file", data_file=str(bad)))
    monkeypatch.setenv("LOPT_MAX_STEPS", "2")
    with pytest.raises(ConfigError, match="LOPT_MAX_STEPS"):
        check(tiny_cfg(tiny, steps=3))
    monkeypatch.setenv("LOPT_MAX_STEPS", "many")
    with pytest.raises(ValueError, match="LOPT_MAX_STEPS must be a whole number"):
        check(tiny_cfg(tiny))


def test_queue_run_stop_crash_and_kill(tiny, home, tmp_path):
    jm = JobManager(home / "runs.sqlite", max_concurrent=1, poll_s=0.2, worker_threads=1)
    try:
        a = jm.submit(tiny_cfg(tiny, steps=3))
        # a long run that we stop, a run that crashes on its data, and one we kill
        b = jm.submit(tiny_cfg(tiny, steps=5000, method="prompt_tuning"))
        bad = tmp_path / "broken.csv"
        bad.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(10)))
        c = jm.submit(tiny_cfg(tiny, task="file", data_file=str(bad)))
        os.remove(bad)  # the data file vanishes before the worker reads it -> the run fails with a reason
        assert jm.store.get(b)["state"] == "queued"  # one at a time
        assert jm.wait(a, 120)["state"] == "done"
        row = jm.store.get(a)
        assert row["accuracy"] is not None and row["trainable_params"] == 2 * (4 + 32)
        assert len(jm.store.metrics(a, "loss")) == 3
        assert run_progress(jm.store, a)["fraction"] == 1.0

        t0 = time.time()
        while not jm.store.metrics(b, "loss") and time.time() - t0 < 60:
            time.sleep(0.2)
        assert jm.store.metrics(b, "loss"), "run b never started training"
        jm.stop(b)
        row_b = jm.wait(b, 60)
        assert row_b["state"] == "stopped" and 0 < row_b["steps_done"] < 5000
        assert Path(row_b["artifact_dir"], "prompt.safetensors").is_file()  # keeps what it trained

        row_c = jm.wait(c, 60)
        assert row_c["state"] == "failed" and "broken.csv" in row_c["error"]

        d = jm.submit(tiny_cfg(tiny, steps=5000))
        t0 = time.time()
        while jm.store.get(d)["state"] != "running" and time.time() - t0 < 30:
            time.sleep(0.1)
        os.kill(jm.store.get(d)["pid"], signal.SIGKILL)
        row_d = jm.wait(d, 30)
        assert row_d["state"] == "interrupted" and "SIGKILL" in row_d["error"]
        assert jm.store.get(a)["state"] == "done"  # no other run lost
    finally:
        jm.close()


def test_restart_marks_leftovers_interrupted(tiny, home):
    store = Store(home / "runs.sqlite")
    store.create("left-running", tiny_cfg(tiny), state="running")
    store.update("left-running", pid=os.getpid())  # even a live pid is not ours after a restart
    store.create("left-queued", tiny_cfg(tiny), state="queued")
    jm = JobManager(home / "runs.sqlite", start=False)
    assert jm.recovered == {"running": ["left-running"], "queued": ["left-queued"], "sweeps": []}
    assert {store.get(r)["state"] for r in ("left-running", "left-queued")} == {"interrupted"}
    assert "queued" in store.get("left-queued")["error"]


def test_stop_queued_run(tiny, home):
    jm = JobManager(home / "runs.sqlite", max_concurrent=1, start=False)
    jm.max_concurrent = 0  # nothing starts: the run stays queued
    rid = jm.submit(tiny_cfg(tiny))
    assert jm.queued() == [rid]
    assert "removed from the queue" in jm.stop(rid)
    assert jm.store.get(rid)["state"] == "stopped"


def test_preflight_refuses_what_this_machine_cannot_load(monkeypatch):
    """A hub model or an online-only task, offline: refused before anything is queued, not failed in a worker."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="model 'gpt2' is not available offline; offline you can use: smollm2"):
        check(RunConfig(model="gpt2"))
    with pytest.raises(TaskError, match="task 'ag_news' is not available offline; offline you can use: sst2"):
        check(RunConfig(task="ag_news"))
    with pytest.raises(TaskError, match="asked for from the hub"):
        check(RunConfig(data_source="hub"))
    check(RunConfig())  # the offline default on an offline task


def test_the_queue_is_first_come_first_served_across_job_kinds(home, monkeypatch):
    """An analysis queued before a run starts before it (a truncation once waited 37 min behind later runs)."""
    import time as _time
    started = []
    monkeypatch.setattr(JobManager, "_start", lambda self, row: started.append(("run", row["run_id"])))
    monkeypatch.setattr(JobManager, "_start_analysis", lambda self, aid: started.append(("analysis", aid)))
    jm = JobManager(home / "runs.sqlite", max_concurrent=3, start=False)
    try:
        jm.store.create("run-a", RunConfig(), state="done")
        jm.store.create("run-b", RunConfig(), state="queued")
        _time.sleep(0.01)
        jm.store.create_analysis("an-1", "run-a", "evaluate", {})
        _time.sleep(0.01)
        jm.store.create("run-c", RunConfig(), state="queued")
        assert [(k, r.get("run_id") if k == "run" else r["analysis_id"]) for k, r in jm.waiting()] == \
            [("run", "run-b"), ("analysis", "an-1"), ("run", "run-c")]
        jm.max_concurrent = 2
        jm.poll()
        assert started == [("run", "run-b"), ("analysis", "an-1")], "the older analysis went before run-c"
    finally:
        jm.close()
