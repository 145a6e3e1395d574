"""Run store semantics and the CLI on a tiny model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lopt_core.config import RunConfig
from lopt_core.plots import figures as plots
from lopt_core.lm.models import ModelUnavailable, load_model
from lopt_core.store.sqlite import RunNotFound, Store

ROOT = Path(__file__).resolve().parent.parent


def test_store_lifecycle_and_dead_workers(tmp_path):
    s = Store(tmp_path / "runs.sqlite")
    s.create("a", RunConfig(method="lopt1"))
    s.create("b", RunConfig(method="ulpt"))
    s.update("a", state="running", pid=999_999_999)
    s.update("b", state="running", pid=os.getpid())
    s.add_metric("a", 1, "loss", 0.7)
    assert s.mark_dead_runs() == ["a"]
    assert s.get("a")["state"] == "interrupted" and "died" in s.get("a")["error"]
    assert s.get("b")["state"] == "running"
    s.request_stop("b")
    assert s.stop_requested("b") and not s.stop_requested("a")
    s.delete("a")
    with pytest.raises(RunNotFound):
        s.get("a")
    assert s.metrics("a") == [] and [r["run_id"] for r in s.list()] == ["b"]
    with pytest.raises(AssertionError, match="bad state"):
        s.update("b", state="exploded")


def test_a_progress_line_reads_a_long_runs_last_steps_only(tmp_path):
    """run_progress read every loss point of a run at every tick; it needs the last ten, in step order."""
    from lopt_core.jobs.manager import run_progress
    s = Store(tmp_path / "runs.sqlite")
    s.create("a", RunConfig(method="lopt1", steps=5000))
    s.update("a", state="running", pid=os.getpid())
    s.add_metric_rows([("a", step, "loss", 1 / step, 0.1, 8.0) for step in range(1, 3001)])
    with s._conn() as c:  # one second a step
        c.execute("UPDATE metrics SET t = 1000.0 + step")
    assert [m["step"] for m in s.metrics("a", "loss", last=10)] == list(range(2991, 3001))
    assert len(s.metrics("a", "loss")) == 3000 and s.metrics("a", "accuracy", last=10) == []
    reads = []
    metrics = s.metrics
    s.metrics = lambda *a, **k: reads.append(k.get("last")) or metrics(*a, **k)
    p = run_progress(s, "a")
    assert p["step"] == 3000 and abs(p["eta_s"] - 2000.0) < 1e-6
    assert None not in reads, "every read of the progress line is bounded"


def test_a_long_curve_is_thinned_in_sql_keeping_its_ends(tmp_path):
    """A Train tick read every loss point of a 50,000-step run to draw 1,000 of them."""
    s = Store(tmp_path / "runs.sqlite")
    s.create("a", RunConfig(method="lopt1", steps=50_000))
    s.add_metric_rows([("a", step, "loss", 1 / step, 0.1, 8.0) for step in range(1, 50_001)])
    s.add_metric_rows([("a", step, "accuracy", step / 50_000, None, None) for step in (25_000, 50_000)])
    pts = s.curve("a", "loss", 1000)
    assert 900 <= len(pts) <= 1000 and pts[0] == (1, 1.0) and pts[-1] == (50_000, 1 / 50_000)
    assert plots.thin(pts) == pts  # the figure draws what the store picked, not half of it
    assert [p[0] for p in pts] == sorted(p[0] for p in pts) and all(v == 1 / st for st, v in pts)
    assert s.curve("a", "accuracy", 1000) == [(25_000, 0.5), (50_000, 1.0)]  # a short curve is whole
    assert s.curve("gone", "loss", 1000) == []


def test_unknown_model_offline_says_what_is_available():
    with pytest.raises(ModelUnavailable, match="not available offline; offline you can use: smollm2-135m"):
        load_model("someone/not-a-real-model")


def _cli(*args, env_home):
    env = {**os.environ, "LOPT_HOME": str(env_home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lopt_core", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_train_json_then_list_and_eval(tiny_model_dir, sentiment_csv, lopt_home):
    p = _cli("train", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv),
             "--method", "lopt1", "--n", "4", "--r", "2", "--steps", "3", "--eval-every", "0", "--json",
             env_home=lopt_home)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    for key in ("run_id", "model", "task", "method", "n", "r", "trainable_params", "accuracy",
                "zero_shot_accuracy", "train_seconds", "artifact_dir"):
        assert key in res, key
    assert res["trainable_params"] == 2 * (4 + 32)
    listed = json.loads(_cli("list", "--json", env_home=lopt_home).stdout)
    assert [r["run_id"] for r in listed] == [res["run_id"]] and listed[0]["state"] == "done"
    ev = json.loads(_cli("eval", "--run", res["run_id"], "--json", env_home=lopt_home).stdout)
    assert ev["accuracy"] == res["accuracy"]
    g = _cli("generate", "--run", res["run_id"], "--text", "a fine film", "--max-new-tokens", "3", "--json",
             env_home=lopt_home)
    assert g.returncode == 0, g.stderr
    cols = json.loads(g.stdout.strip().splitlines()[-1])
    assert [c["title"].split(" ")[0] for c in cols] == ["No", "LoPT-1"]
    assert all("a fine film" in c["input"] for c in cols)
    probs = cols[1]["probs"]
    assert probs is not None and abs(sum(probs.values()) - 1) < 1e-4
    bad = _cli("generate", "--run", "nope", "--text", "x", env_home=lopt_home)
    assert bad.returncode == 2 and "run nope no longer exists" in bad.stderr


def test_cli_params_and_errors(tiny_model_dir, lopt_home):
    p = _cli("params", "--model", tiny_model_dir, "--method", "lopt2", "--n", "10", "--r", "3", env_home=lopt_home)
    assert p.returncode == 0 and p.stdout.strip() == str(2 * 3 * 32)
    bad = _cli("train", "--model", tiny_model_dir, "--method", "lopt1", "--n", "0", env_home=lopt_home)
    assert bad.returncode == 2 and "n must be between 1 and 512" in bad.stderr
    bad = _cli("eval", "--run", "nope", env_home=lopt_home)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr
