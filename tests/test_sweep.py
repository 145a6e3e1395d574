"""Sweeps on tiny random models: validation names the bad value and queues nothing, the plan batches what it
can, a sweep trains every configuration as an ordinary run (in-process and through the job manager), stop /
kill / restart keep the store honest, results export and import back, readings come from the numbers."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from lopt_core.analysis import aggregate
from lopt_core import cli
from lopt_core.plots import figures as plots
from lopt_core.sweeps import presets, readings, results_file, spec as sweep
from lopt_core.config import ConfigError, RunConfig
from lopt_core.jobs.manager import JobManager
from lopt_core.store.sqlite import Store
from lopt_core.sweeps.spec import SweepError, SweepSpec


def spec_for(model_dir, csv, **kw):
    base = dict(model=model_dir, task="file", methods=["prompt_tuning", "lopt1", "ulpt"], n=[4], r=[1, 2], seeds=[0],
                knobs=dict(data_file=str(csv), steps=3, batch_size=4, eval_every=0, eval_size=0, device="cpu"))
    base.update(kw)
    return SweepSpec(**base)


# ---------------------------------------------------------------- validation and the plan

@pytest.mark.parametrize("change,msg", [
    (dict(methods=[]), "methods is empty"),
    (dict(n=[]), "n list is empty"),
    (dict(r="1, x"), "r list: 'x' is not a whole number"),
    (dict(seeds=""), "seeds is empty"),
    (dict(methods=["lopt1", "lopt9"]), "unknown method 'lopt9'"),
    (dict(r=[2, 5]), r"LoPT-1 n=4 r=5 seed 0: LoPT-1 rank r must be in \[1, min\(n, d\)\] = \[1, 4\], got 5"),
    (dict(n=[0]), "n=0 .*n must be between 1 and 512"),
])
def test_bad_sweeps_name_the_value_and_queue_nothing(tiny_model_dir, sentiment_csv, change, msg):
    store = Store()
    with pytest.raises(SweepError, match=msg):
        sweep.create(spec_for(tiny_model_dir, sentiment_csv, **change), store)
    assert store.list() == [] and store.list_sweeps() == []


def test_a_grid_over_the_host_limit_is_refused(tiny_model_dir, sentiment_csv, monkeypatch):
    monkeypatch.setenv("LOPT_MAX_SWEEP_CONFIGS", "4")
    store = Store()
    with pytest.raises(SweepError, match="5 configurations; this host allows at most 4 .LOPT_MAX_SWEEP_CONFIGS"):
        sweep.create(spec_for(tiny_model_dir, sentiment_csv), store)
    assert store.list() == []


def test_expansion_and_plan(tiny_model_dir, sentiment_csv):
    spec = spec_for(tiny_model_dir, sentiment_csv, methods=["prompt_tuning", "lopt1", "lora", "lopa"], n=[4, 6],
                    seeds=[0, 1]).validate()
    cfgs = spec.configs()
    # prompt tuning has no rank: one per (n, seed); the others one per (n, r, seed)
    assert len(cfgs) == 2 * 2 + 3 * (2 * 2 * 2)
    assert sum(c.method == "prompt_tuning" for c in cfgs) == 4
    groups = sweep.plan(cfgs)
    batched = [g for g in groups if g.batched]
    assert len(batched) == 2, "one batched group per seed (the seed fixes the batch order)"
    for g in batched:
        assert {cfgs[i].method for i in g.indices} == {"prompt_tuning", "lopt1"}
        assert len({cfgs[i].seed for i in g.indices}) == 1
    rest = [g for g in groups if not g.batched]
    assert len(rest) == 1 and {cfgs[i].method for i in rest[0].indices} == {"lora", "lopa"}
    assert groups[-1] is rest[0], "batched groups first: the trade-off plot fills sooner"
    assert "--methods prompt_tuning,lopt1,lora,lopa --n 4,6 --r 1,2 --seeds 0,1" in spec.command()


# ---------------------------------------------------------------- running

def test_sweep_runs_every_configuration_as_an_ordinary_run(tiny_model_dir, sentiment_csv):
    store = Store()
    spec = spec_for(tiny_model_dir, sentiment_csv, methods=["prompt_tuning", "lopt1", "ulpt", "lora"], seeds=[0, 1])
    sid = sweep.create(spec, store)
    out = sweep.run(sid, store)
    runs = store.list(sweep_id=sid)
    assert out["state"] == "done" and len(runs) == len(spec.configs()) == 2 + 3 * 4
    for r in runs:
        assert r["state"] == "done" and r["sweep_id"] == sid and r["accuracy"] is not None, r
        assert [m["step"] for m in store.metrics(r["run_id"], "loss")] == [1, 2, 3]
        assert os.path.isdir(r["artifact_dir"])
        # per seed: prompt tuning + 2 LoPT-1 + 2 ULPT in one batched group; LoRA alone on the same model
        assert r["result"].get("group_size") == (1 if r["method"] == "lora" else 5)  # LoRA: a group of one
    sw = store.get_sweep(sid)
    assert sw["reading"]["lines"] and sw["command"].startswith("python -m lopt_core sweep")
    # two seeds pooled per configuration on the plots and in the reading
    pts = aggregate.points(runs)
    assert len(pts) == 1 + 2 + 2 + 2 and all(p.seeds == 2 for p in pts)
    fig = plots.tradeoff_figure(runs)
    assert any(t.error_y is not None and t.error_y.array is not None for t in fig.data)


def test_stopping_a_run_inside_a_group_keeps_the_rest(tiny_model_dir, sentiment_csv):
    store = Store()
    spec = spec_for(tiny_model_dir, sentiment_csv, knobs=dict(spec_for(tiny_model_dir, sentiment_csv).knobs, steps=6))
    sid = sweep.create(spec, store)
    victim = store.list(sweep_id=sid)[1]["run_id"]

    def on_event(rid, ev):
        if rid == victim and ev["type"] == "step" and ev["step"] == 2:
            store.request_stop(victim)
    sweep.run(sid, store, on_event=on_event)
    rows = {r["run_id"]: r for r in store.list(sweep_id=sid)}
    assert rows[victim]["state"] == "stopped" and rows[victim]["steps_done"] == 2
    assert all(r["state"] == "done" and r["steps_done"] == 6 for k, r in rows.items() if k != victim)


@pytest.fixture
def jm(tmp_path):
    m = JobManager(tmp_path / "jobs" / "runs.sqlite", max_concurrent=1, poll_s=0.2, worker_threads=1)
    yield m
    m.close()


def test_job_manager_runs_a_sweep_as_one_job(jm, tiny_model_dir, sentiment_csv):
    lone = jm.submit(RunConfig(model=tiny_model_dir, task="file", data_file=str(sentiment_csv), method="lopt1", n=4,
                               r=2, steps=2, batch_size=4, eval_size=8, eval_every=0, device="cpu"))
    sid = jm.submit_sweep(spec_for(tiny_model_dir, sentiment_csv))
    sw = jm.wait_sweep(sid, timeout=240)
    assert sw["state"] == "done" and sw["reading"]["lines"]
    assert jm.store.get(lone)["state"] == "done", "the single run queued first ran first"
    assert {r["state"] for r in jm.store.list(sweep_id=sid)} == {"done"}
    pids = {r["pid"] for r in jm.store.list(sweep_id=sid)}
    assert len(pids) == 1, "one worker process trained the whole sweep"


def test_stop_kill_and_restart(jm, tiny_model_dir, sentiment_csv, tmp_path):
    long_knobs = dict(spec_for(tiny_model_dir, sentiment_csv).knobs, steps=100000)
    a = jm.submit_sweep(spec_for(tiny_model_dir, sentiment_csv, knobs=long_knobs))
    b = jm.submit_sweep(spec_for(tiny_model_dir, sentiment_csv, knobs=long_knobs))
    _until(lambda: all((r["steps_done"] or 0) >= 2 for r in jm.store.list(sweep_id=a)))
    assert {r["state"] for r in jm.store.list(sweep_id=b)} == {"queued"}, "one sweep at a time"
    assert "stop requested" in jm.stop_sweep(a)
    sw = jm.wait_sweep(a, timeout=60)
    assert sw["state"] == "stopped"
    for r in jm.store.list(sweep_id=a):
        assert r["state"] == "stopped" and r["steps_done"] >= 2 and os.path.isdir(r["artifact_dir"])
    # sweep b starts next; kill its worker: its runs are interrupted with the reason, nothing else changes
    _until(lambda: jm.store.get_sweep(b)["state"] == "running" and
           all((r["steps_done"] or 0) >= 1 for r in jm.store.list(sweep_id=b)))
    os.kill(jm.store.get_sweep(b)["pid"], signal.SIGKILL)
    sw = jm.wait_sweep(b, timeout=60)
    assert sw["state"] == "interrupted" and "killed (SIGKILL)" in sw["error"]
    assert {r["state"] for r in jm.store.list(sweep_id=b)} == {"interrupted"}
    assert {r["state"] for r in jm.store.list(sweep_id=a)} == {"stopped"}
    # a queued sweep left by a dead server is interrupted on the next start, never silently restarted
    c = sweep.create(spec_for(tiny_model_dir, sentiment_csv), jm.store)
    jm2 = JobManager(jm.store_path, start=False)
    assert c in jm2.recovered["sweeps"] and jm2.store.get_sweep(c)["state"] == "interrupted"
    assert {r["state"] for r in jm2.store.list(sweep_id=c)} == {"interrupted"}


def _until(cond, timeout=120):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, "condition not reached in time"
        time.sleep(0.2)


# ---------------------------------------------------------------- results files, CLI

def test_cli_sweep_export_import_round_trip(tiny_model_dir, sentiment_csv, tmp_path, capsys, monkeypatch):
    argv = ["sweep", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv), "--methods",
            "prompt_tuning,lopt1", "--n", "4", "--r", "1,2", "--seeds", "0", "--steps", "3", "--batch-size", "4",
            "--eval-size", "0", "--eval-every", "0", "--device", "cpu", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["state"] == "done" and len(out["runs"]) == 3
    path = tmp_path / "res.json"
    assert cli.main(["sweep-export", "--sweep", out["sweep_id"], "--out", str(path)]) == 0
    doc = results_file.read(path)
    assert doc["machine"]["torch"] and doc["sweep"]["command"] == out["command"]
    assert all(len(r["curves"]["loss"]) == 3 for r in doc["runs"])
    # import into a fresh store: same accuracies, curves, counts; a second import gets new ids
    monkeypatch.setenv("LOPT_HOME", str(tmp_path / "other"))
    capsys.readouterr()
    assert cli.main(["sweep-import", str(path), "--json"]) == 0
    sid = json.loads(capsys.readouterr().out)["sweep_id"]
    assert sid == out["sweep_id"]
    store = Store()
    got = {r["method"] + str(r["r"]): r for r in store.list(sweep_id=sid)}
    for r in out["runs"]:
        g = got[r["method"] + str(r["r"])]
        assert g["accuracy"] == r["accuracy"] and g["trainable_params"] == r["trainable_params"]
        assert len(store.metrics(g["run_id"], "loss")) == 3
    assert results_file.import_sweep(store, path) == sid + "-2"
    # the re-run command from the file names everything needed to reproduce the sweep
    assert "--data-file" in doc["sweep"]["command"] and "--steps 3" in doc["sweep"]["command"]


def test_results_file_errors_are_clear(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a JSON sweep results file"):
        results_file.read(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ConfigError, match="not a LoPT Lab sweep results file"):
        results_file.read(bad)
    with pytest.raises(ConfigError, match="no sweep results file"):
        results_file.read(tmp_path / "missing.json")
    bad.write_text(json.dumps({"format": results_file.FORMAT, "sweep": {"sweep_id": "s"},
                               "runs": [{"run_id": "r1", "state": "running", "checkpoint": "not base64!"}]}))
    store = Store(tmp_path / "runs.sqlite")
    with pytest.raises(ConfigError, match="run r1's checkpoint is not base64"):
        results_file.import_sweep(store, bad)
    assert store.list_sweeps() == [] and store.list() == []  # refused before anything was written


def test_cli_dry_run_lists_configurations_and_rejects_bad_lists(tiny_model_dir, sentiment_csv, capsys):
    base = ["sweep", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv), "--n", "4",
            "--device", "cpu"]
    assert cli.main(base + ["--methods", "prompt_tuning,lopt1", "--r", "1,2", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "LoPT-1 n=4 r=2 seed 0" in lines[2]
    assert cli.main(base + ["--methods", "lopt1", "--r", "1,9"]) == 2
    assert "LoPT-1 n=4 r=9 seed 0" in capsys.readouterr().err
    assert Store().list_sweeps() == []


# ---------------------------------------------------------------- readings and aggregation

def _row(method, n, r, params, acc, seed=0, task="sst2", n_eval=872, zs=0.77):
    return {"run_id": f"{method}-{n}-{r}-{seed}-{task}", "state": "done", "model": "m", "task": task,
            "method": method, "n": n, "r": r, "trainable_params": params, "accuracy": acc, "zero_shot_accuracy": zs,
            "config": {"method": method, "n": n, "r": r, "seed": seed, "steps": 150, "task": task},
            "result": {"eval_examples": n_eval, "data_source": "offline"}}


def test_reading_is_computed_from_the_numbers():
    rows = [_row("prompt_tuning", 20, 5, 11520, 0.870), _row("lopt1", 20, 5, 2980, 0.866),
            _row("lopt1", 20, 1, 596, 0.800), _row("ulpt", 20, 1, 1172, 0.880)]
    lines = readings.read_runs(rows)["lines"]
    assert "LoPT-1 r=5 (0.866) is 0.4 points below prompt tuning with 3.9× fewer parameters (2,980 vs 11,520)." in lines
    assert any(s.startswith("ULPT r=1 (0.880) is 1.0 points above prompt tuning with 9.8× fewer") for s in lines)
    assert "LoPT-1 at n=20: 0.800 at r=1 → 0.866 at r=5; best r=5 (0.866)." in lines
    # binomial noise on 872 examples at p ~ 0.85: 2 * sqrt(.85 * .15 / 872) = 2.4 points
    noise = next(s for s in lines if s.startswith("Noise"))
    assert "under 2.4 points" in noise and "one seed on 872 test examples" in noise
    assert "Best: ULPT n=20 r=1 at 0.880 with 1,172 parameters; nothing cheaper comes within noise of it." in lines
    rows[3]["accuracy"] = 0.860  # now prompt tuning is best, and ULPT is the cheapest within 2.4 points of it
    lines = readings.read_runs(rows)["lines"]
    assert ("Cheapest within noise of the best (Prompt tuning n=20, 0.870, 11,520 parameters): ULPT n=20 r=1 at "
            "0.860 with 1,172 (9.8× fewer).") in lines
    same = readings.read_runs([_row("prompt_tuning", 20, 5, 11520, 0.870), _row("lopt2", 20, 10, 11520, 0.873)])
    assert "LoPT-2 r=10 (0.873) is 0.3 points above prompt tuning with the same number of parameters" in \
        same["lines"][0]
    # change a number: the reading follows
    rows[1]["accuracy"] = 0.850
    assert any("LoPT-1 r=5 (0.850) is 2.0 points below" in s for s in readings.read_runs(rows)["lines"])


def test_reading_across_tasks_and_seed_pooling():
    rows = [_row("prompt_tuning", 10, 2, 5760, 0.86), _row("lopt1", 10, 2, 1172, 0.85),
            _row("prompt_tuning", 10, 2, 5760, 0.60, task="rte", n_eval=111),
            _row("lopt1", 10, 2, 1172, 0.52, task="rte", n_eval=111),
            _row("lopt1", 10, 2, 1172, 0.56, seed=1, task="rte", n_eval=111)]
    pts = aggregate.points(rows)
    rte = next(p for p in pts if p.task == "rte" and p.method == "lopt1")
    assert rte.seeds == 2 and rte.mean == pytest.approx(0.54) and rte.std == pytest.approx(0.02828, abs=1e-4)
    out = readings.read_runs(rows)
    assert "LoPT-1 n=10 r=2 against prompt tuning: -1.0 points on sst2, -6.0 points on rte." in out["lines"]
    fig = plots.tradeoff_figure(rows)
    assert not any(t.name == "Pareto frontier" for t in fig.data), "no frontier across two test sets"
    fig = plots.tradeoff_figure(rows[:2], reference=rows[2:])
    assert any(t.name == "Pareto frontier" for t in fig.data)
    assert any((t.name or "").startswith("atlas: ") for t in fig.data)


def test_old_store_files_gain_the_sweep_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, created REAL, updated REAL, state TEXT NOT NULL, "
                  "config TEXT NOT NULL, model TEXT, task TEXT, method TEXT, n INTEGER, r INTEGER, "
                  "trainable_params INTEGER, accuracy REAL, zero_shot_accuracy REAL, train_seconds REAL, "
                  "steps_done INTEGER DEFAULT 0, error TEXT, artifact_dir TEXT, pid INTEGER, "
                  "stop_requested INTEGER DEFAULT 0, result TEXT)")
        c.execute("INSERT INTO runs (run_id, created, updated, state, config) VALUES ('old', 1, 1, 'done', '{}')")
    store = Store(path)
    assert store.get("old")["sweep_id"] is None and store.list(sweep_id="nope") == []


def test_resume_requeues_only_unfinished_configurations(tiny_model_dir, sentiment_csv):
    store = Store()
    sid = sweep.create(spec_for(tiny_model_dir, sentiment_csv), store)
    runs = store.list(sweep_id=sid)
    store.update(runs[0]["run_id"], state="stopped")  # stopped before it started (left the queue)
    with pytest.raises(SweepError, match="is queued: stop it first"):
        sweep.resume(sid, store)
    out = sweep.run(sid, store)
    assert [r["state"] for r in out["runs"]] == ["stopped", "done", "done", "done", "done"]
    new = sweep.resume(sid, store)
    assert new == [runs[0]["run_id"]], "the unfinished configuration's own row is queued again, in place"
    sweep.run(sid, store)
    assert store.get(new[0])["state"] == "done" and len(store.list(sweep_id=sid)) == 5
    with pytest.raises(SweepError, match="nothing to resume"):
        sweep.resume(sid, store)


def test_a_sweep_whose_data_vanishes_fails_with_the_reason(tiny_model_dir, sentiment_csv, tmp_path):
    csv = tmp_path / "gone.csv"
    csv.write_text(sentiment_csv.read_text())
    store = Store()
    sid = sweep.create(spec_for(tiny_model_dir, csv, methods=["lopt1", "lora"]), store)
    csv.unlink()  # the file disappears between queueing and training
    out = sweep.run(sid, store)
    assert out["state"] == "failed" and {r["state"] for r in out["runs"]} == {"failed"}
    assert "every configuration failed" in store.get_sweep(sid)["error"]
    assert all("gone.csv" in r["error"] for r in out["runs"])


def test_rankless_sweeps_ignore_the_r_list(tiny_model_dir, sentiment_csv):
    spec = spec_for(tiny_model_dir, sentiment_csv, methods=["prompt_tuning"], n=[4, 6], r="1, x").validate()
    assert spec.r == [1] and [c.n for c in spec.configs()] == [4, 6]
    assert "--r 1 " in spec.command()


def test_each_configuration_lands_in_the_store_when_it_ends(tiny_model_dir, sentiment_csv):
    store = Store()
    sid = sweep.create(spec_for(tiny_model_dir, sentiment_csv), store)
    seen = []

    def on_event(rid, ev):
        if ev["type"] == "end":
            states = {r["run_id"]: r["state"] for r in store.list(sweep_id=sid)}
            seen.append((states[rid], sum(s == "done" for s in states.values())))
    sweep.run(sid, store, on_event=on_event)
    assert seen == [("done", i) for i in range(1, 6)], "one configuration after another, not all at the end"


def test_resumed_configurations_count_once(tiny_model_dir, sentiment_csv):
    store = Store()
    sid = sweep.create(spec_for(tiny_model_dir, sentiment_csv, methods=["lopt1"]), store)
    first = store.list(sweep_id=sid)[0]
    store.update(first["run_id"], state="stopped")
    sweep.run(sid, store)
    store.update(first["run_id"], accuracy=0.5, trainable_params=10)  # as if a periodic evaluation had happened
    sweep.resume(sid, store)
    assert store.get(first["run_id"])["accuracy"] is None, "the re-queued row starts clean"
    sweep.run(sid, store)
    cur = sweep.current_runs(store, sid)
    assert len(store.list(sweep_id=sid)) == 2 and len(cur) == 2  # one row per configuration, not one per attempt
    assert store.get(first["run_id"])["state"] == "done"
    assert all(p.seeds == 1 for p in aggregate.points(cur))


def test_an_interrupted_sweep_resumes_in_place_and_records_no_unwritten_folder(tiny_model_dir, sentiment_csv):
    """A configuration killed mid-run left a store row naming an artifact folder never written, and resume
    added new rows beside the interrupted ones (5 configurations shown as 10 rows)."""
    store = Store()
    sid = sweep.create(spec_for(tiny_model_dir, sentiment_csv, methods=["lopt1"]), store)
    ids = [r["run_id"] for r in store.list(sweep_id=sid)]
    rec = store.recorder(ids[0])
    rec({"type": "start", "run_id": ids[0], "trainable_params": 1, "artifact_dir": "/nowhere/" + ids[0]})
    assert store.get(ids[0])["artifact_dir"] is None, "recorded only once the folder is written"
    for rid in ids:  # the worker died: every run of the sweep interrupted
        store.update(rid, state="interrupted", error="the worker process died")
    store.update_sweep(sid, state="interrupted")
    assert sorted(sweep.resume(sid, store)) == sorted(ids)
    sweep.run(sid, store)
    rows = store.list(sweep_id=sid)
    assert sorted(r["run_id"] for r in rows) == sorted(ids) and {r["state"] for r in rows} == {"done"}
    assert all(Path(r["artifact_dir"]).is_dir() for r in rows)


def test_a_sweep_whose_process_was_killed_resumes_and_a_live_one_does_not(tiny_model_dir, sentiment_csv):
    """A command-line sweep killed mid-run (the machine rebooted) stayed 'running' forever: resume refused it."""
    import subprocess
    store = Store()
    sid = sweep.create(spec_for(tiny_model_dir, sentiment_csv, methods=["lopt1"]), store, claim=True)
    with pytest.raises(SweepError, match="is running: stop it first"):
        sweep.resume(sid, store)  # this live process holds it
    gone = subprocess.Popen(["true"])
    gone.wait()
    store.update_sweep(sid, pid=gone.pid)
    ids = [r["run_id"] for r in store.list(sweep_id=sid)]
    store.update(ids[0], state="running")  # killed mid-configuration
    assert sorted(sweep.resume(sid, store)) == sorted(ids)
    assert store.get_sweep(sid)["state"] == "queued"
    assert sweep.run(sid, store)["state"] == "done"


def test_a_two_task_preset_is_one_launch(tiny_model_dir):
    store = Store()
    ids = presets.create_preset("task_difficulty", store, tiny_model_dir, quick=True)
    assert len(ids) == 2
    sweeps = sweep.launch_sweeps(store, ids[0])
    assert [s["sweep_id"] for s in sweeps] == ids and {s["spec"]["task"] for s in sweeps} == {"sst2", "rte"}
    assert all(s["preset"] == "task_difficulty" for s in sweeps)


def test_a_cli_sweep_is_never_taken_by_an_app_on_the_same_store(tiny_model_dir, sentiment_csv, tmp_path):
    """The command line claims its sweep at creation: a job manager polling the same store starts nothing,
    and a restarting app leaves a sweep alone while its live command-line process trains it."""
    store = Store(tmp_path / "shared.sqlite")
    sid = sweep.create(spec_for(tiny_model_dir, sentiment_csv), store, claim=True)
    assert store.get_sweep(sid)["state"] == "running" and store.get_sweep(sid)["pid"] == os.getpid()
    jm = JobManager(store.path, start=False)       # this process: not a live *other* CLI, so recovered
    assert sid in jm.recovered["sweeps"]
    sid2 = sweep.create(spec_for(tiny_model_dir, sentiment_csv), store, claim=True)
    jm.poll()
    assert jm._procs == {} and {r["state"] for r in store.list(sweep_id=sid2)} == {"queued"}
    assert store.claim_sweep(sid2, 1) is False, "a claimed sweep cannot be claimed twice"
    out = sweep.run(sid2, store)  # the claiming process runs it
    assert out["state"] == "done"
    with pytest.raises(SweepError, match="is done: nothing to run"):
        sweep.run(sid2, store)


def test_bad_numbers_in_lists_are_named():
    for text, bad in (("1, nan", "'nan'"), ("inf", "'inf'"), ("1e400", "'1e400'"), ("2.5", "'2.5'")):
        with pytest.raises(SweepError, match=f"r list: {bad} is not a whole number"):
            sweep.parse_int_list(text, "r list")


def test_an_app_restart_leaves_a_live_cli_sweep_alone(tiny_model_dir, sentiment_csv, lopt_home, capsys):
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "lopt_core", "sweep", "--model", tiny_model_dir, "--task", "file", "--data-file",
           str(sentiment_csv), "--methods", "lopt1", "--n", "4", "--r", "1", "--steps", "100000", "--batch-size", "2",
           "--eval-size", "8", "--eval-every", "0", "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, LOPT_HOME=str(lopt_home), OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = Store()
        _until(lambda: store.list_sweeps() and all((r["steps_done"] or 0) >= 1 for r in store.list()), 90)
        sid = store.list_sweeps()[0]["sweep_id"]
        jm = JobManager(store.path, start=False)
        assert jm.recovered == {"running": [], "queued": [], "sweeps": []}
        assert store.get_sweep(sid)["state"] == "running" and store.list()[0]["state"] == "running"
        assert cli.main(["sweeps"]) == 0
        assert re.search(rf"{sid}\s+running\b", capsys.readouterr().out)
    finally:
        proc.kill()
        proc.wait()
    assert cli.main(["sweeps"]) == 0  # before any app recovers it: the CLI says its process is gone
    out = capsys.readouterr().out
    assert re.search(rf"{sid}\s+interrupted\b", out) and f"sweep --resume {sid}" in out, out
    jm = JobManager(store.path, start=False)  # now the process is gone: a leftover like any other
    assert jm.recovered["sweeps"] == [sid] and store.list()[0]["state"] == "interrupted"


def test_a_huge_grid_is_refused_from_its_list_lengths_without_being_built(monkeypatch):
    """1.44 M configurations (n and r 1..400, 3 methods, 3 seeds) were built and de-duplicated before the cap;
    now the lists' lengths are refused first, and a grid within them is counted, not built, before the cap."""
    big = ",".join(str(i) for i in range(1, 401))
    with pytest.raises(SweepError, match="n list has 400 values; at most 64"):
        SweepSpec(methods=["lopt1", "lopt2", "ulpt"], n=big, r=big, seeds=[0, 1, 2]).validate()
    with pytest.raises(SweepError, match="characters long"):
        SweepSpec(methods=["lopt1"], n="1," * 5000, r=[1]).validate()
    monkeypatch.setattr(SweepSpec, "configs", lambda self: pytest.fail("built a grid the cap refuses"))
    grid = ",".join(str(i) for i in range(1, 61))
    with pytest.raises(SweepError, match=r"this sweep has 32,400 configurations; this host allows at most 64"):
        SweepSpec(methods=["lopt1", "lopt2", "ulpt"], n=grid, r=grid, seeds=[0, 1, 2]).validate()


def test_a_quick_preset_says_what_quick_gives_up(tiny_model_dir, capsys):
    assert cli.main(["sweep", "--preset", "pt_vs_lopt", "--quick", "--model", tiny_model_dir, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "quick trains 60 steps instead of 150" in err and "first 300 test examples" in err
    assert "can still land under no prompt on an unlucky seed" in err, "the measured quick low-rank miss is told"
    assert "quick runs this one at lr 0.01" in err and "collapsed" in err, "the preset's own quick knob and why"
    assert presets.get("pt_vs_lopt").specs(quick=True, hub=False)[0].knobs["lr"] == 0.01, "and its sweep runs at it"
    assert cli.main(["sweep", "--preset", "pt_vs_lopt", "--model", tiny_model_dir, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "quick trains" not in err and "quick runs this one" not in err
    assert "lr" not in presets.get("pt_vs_lopt").specs(hub=False)[0].knobs, "full keeps each method's default"


def test_the_two_model_preset_trains_the_other_embedded_model_beside_the_chosen_one(monkeypatch):
    from lopt_core.lm import embedded
    specs = presets.get("two_models").specs(model="smollm2-135m", quick=True, hub=False)
    assert [(s.model, s.task) for s in specs] == [("smollm2-135m", "sst2"), ("gemma3-270m", "sst2"),
                                                  ("smollm2-135m", "rte"), ("gemma3-270m", "rte")]
    assert {s.model for s in presets.get("two_models").specs(model="gemma3-270m", hub=False)} == \
        {"gemma3-270m", "smollm2-135m"}
    monkeypatch.setattr(embedded, "installed", lambda m: m.alias != "gemma3-270m")
    with pytest.raises(SweepError, match="also trains gemma3-270m, which is not installed: pip install"):
        presets.get("two_models").specs(model="smollm2-135m")


def test_two_models_are_read_side_by_side_never_pooled():
    """The same configurations on two models: one panel each on one score axis, and a reading that names the
    model beside each gap to prompt tuning."""
    from lopt_core.plots import figures as plots
    def rows(model, pt, l1):
        return [{"run_id": f"{model}-{m}", "state": "done", "model": model, "task": "sst2", "method": m, "n": 10,
                 "r": 2, "trainable_params": p, "accuracy": a, "zero_shot_accuracy": 0.7, "created": 1.0,
                 "config": {"seed": 0, "steps": 30}, "result": {"eval_examples": 300, "test_fingerprint": model}}
                for m, p, a in (("prompt_tuning", 5760, pt), ("lopt1", 1172, l1))]
    both = rows("smollm2-135m", 0.85, 0.80) + rows("gemma3-270m", 0.75, 0.74)
    fig = plots.tradeoff_figure(both)
    assert [a.text for a in fig.layout.annotations[:2]] == ["gemma3-270m", "smollm2-135m"]
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 4, "four configurations, none pooled"
    assert len([t for t in fig.data if t.name == "Pareto frontier"]) == 2, "a frontier per model"
    line = next(x for x in readings.read_runs(both)["lines"] if x.startswith("LoPT-1 n=10 r=2 against prompt tuning"))
    assert "-1.0 points on sst2 (gemma3-270m)" in line and "-5.0 points on sst2 (smollm2-135m)" in line
