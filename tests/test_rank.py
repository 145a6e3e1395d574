"""Seeing the rank, and stopped runs that count: spectrum, truncation curve, nearest tokens, evaluation after a
stop, evaluation progress, and the analysis jobs that run them (tiny random models: fast)."""
from __future__ import annotations

import json
import time

import pytest
import torch

from lopt_core.jobs import analyses
from lopt_core import cli
from lopt_core.analysis import nearest, spectrum, truncate
from lopt_core.config import RunConfig
from lopt_core.jobs.manager import JobManager, run_progress
from lopt_core.training.runs import evaluate_run, run_and_record
from lopt_core.store.sqlite import Store


def tiny_cfg(model: str, **kw) -> RunConfig:
    base = dict(model=model, task="sst2", method="lopt1", n=6, r=2, steps=3, batch_size=2, eval_every=0,
                eval_size=16, eval_batch_size=8, max_length=64, device="cpu")
    base.update(kw)
    return RunConfig(**base)


# ---------------------------------------------------------------- the numbers themselves

def test_spectrum_numbers_on_known_matrices():
    torch.manual_seed(0)
    A, B = torch.randn(8, 3), torch.randn(3, 40)
    s, rank, erank = spectrum.analyse(A @ B)  # rank 3 by construction
    assert rank == 3 and len(s) == 8 and s == sorted(s, reverse=True)
    assert 1.0 < erank < 3.0 + 1e-6
    s, rank, erank = spectrum.analyse(torch.eye(5, 12))  # flat spectrum: effective rank = min(n, d)
    assert rank == 5 and erank == pytest.approx(5.0)
    s, rank, erank = spectrum.analyse(torch.outer(torch.randn(6), torch.randn(10)))
    assert rank == 1 and erank == pytest.approx(1.0, abs=1e-5)


def test_truncation_is_the_best_rank_k_matrix():
    torch.manual_seed(1)
    P = torch.randn(7, 20)
    for k in (1, 3, 7):
        Pk = truncate.truncated(P, k)
        assert torch.linalg.matrix_rank(Pk) == k
    assert torch.allclose(truncate.truncated(P, 7), P, atol=1e-5)
    s = torch.linalg.svdvals(P)  # Eckart-Young: the error is the dropped singular values
    assert (P - truncate.truncated(P, 3)).norm() == pytest.approx(float(s[3:].norm()), rel=1e-4)
    assert truncate.parse_ranks("", 20, 576) == [1, 2, 3, 5, 8, 10, 15, 20]
    assert truncate.parse_ranks("5, 1,5", 20, 576) == [1, 5]
    for bad, msg in (("0", r"outside \[1, 20\]"), ("x", "'x' is not a whole number"), ("21", "outside")):
        with pytest.raises(spectrum.AnalysisError, match=msg):
            truncate.parse_ranks(bad, 20, 576)


def test_nearest_tokens_finds_the_rows_own_tokens(tiny_lm):
    E = tiny_lm.embeddings.detach()
    ids = [1000, 2345, 777]
    rows = nearest.nearest_tokens(E[ids] * 3.0, E, tiny_lm.tokenizer, k=3)  # scale does not change cosine
    for r, t in zip(rows, ids):
        text, cos = r["tokens"][0]
        assert text == tiny_lm.tokenizer.decode([t]) and cos == pytest.approx(1.0, abs=1e-5)
        assert r["tokens"][1][1] <= cos
    table = nearest.as_table(rows)
    assert table[0]["row"] == 0 and table[0]["cos 1"] == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------- stopped runs are evaluated

def test_a_stopped_run_is_evaluated_on_what_it_trained(tiny_model_dir):
    store = Store()
    cfg = tiny_cfg(tiny_model_dir, steps=50)
    rid = "stopped-run"
    store.create(rid, cfg, state="running")
    events = []

    def on_event(ev):
        events.append(ev)
        if ev["type"] == "step" and ev["step"] == 2:
            store.request_stop(rid)
    res = run_and_record(cfg, on_event, store=store, run_id=rid)
    row = store.get(rid)
    assert row["state"] == "stopped" and row["steps_done"] == 2
    assert row["accuracy"] is not None and res["evaluated_after_stop"]           # it reaches the plots
    assert [m["step"] for m in store.metrics(rid, "accuracy")] == [2]
    prog = [e for e in events if e["type"] == "eval_progress"]
    assert prog[0]["done"] == 0 and prog[-1]["done"] == prog[-1]["total"] == 16   # the evaluation's own progress
    assert row["eval_progress"] is None                                           # cleared when it ended


def test_stop_pressed_twice_skips_the_closing_evaluation_and_evaluate_now_records_it(tiny_model_dir):
    store = Store()
    cfg = tiny_cfg(tiny_model_dir, steps=50, eval_size=32)
    rid = "skipped"
    store.create(rid, cfg, state="running")

    def on_event(ev):
        if ev["type"] == "step" and ev["step"] == 1:
            store.request_stop(rid)
        if ev["type"] == "eval_progress" and ev["done"] == 8:
            assert store.request_stop(rid) == 2  # second press, mid-evaluation
    res = run_and_record(cfg, on_event, store=store, run_id=rid)
    assert res["state"] == "stopped" and res["accuracy"] is None and "evaluation_skipped" in res
    # "evaluate now", as the app's job and the CLI's `eval --record` run it
    out = evaluate_run(rid, store, record=True)
    row = store.get(rid)
    assert row["accuracy"] == out["accuracy"] and row["result"]["evaluated_later"]
    bits = row["result"]["correct"]  # per example, so it can be paired or compared on shared examples
    assert len(bits) == row["result"]["eval_examples"] and bits.count("1") / len(bits) == out["accuracy"]
    assert [m["step"] for m in store.metrics(rid, "accuracy")] == [1]
    saved = json.loads((__import__("pathlib").Path(row["artifact_dir"]) / "run.json").read_text())
    assert saved["result"]["accuracy"] == out["accuracy"]


def test_run_progress_reports_the_evaluation(tiny_model_dir):
    store = Store()
    cfg = tiny_cfg(tiny_model_dir, steps=10)
    store.create("r1", cfg, state="running")
    rec = store.recorder("r1")
    for s in range(1, 11):
        rec({"type": "step", "step": s, "loss": 1.0, "lr": 0.1, "examples_per_s": 2.0})
    rec({"type": "eval_progress", "step": 10, "done": 0, "total": 300})
    time.sleep(0.05)
    rec({"type": "eval_progress", "step": 10, "done": 120, "total": 300})
    p = run_progress(store, "r1")
    assert p["phase"] == "final evaluation" and (p["eval_done"], p["eval_total"]) == (120, 300)
    assert p["fraction"] == pytest.approx(0.4) and p["eta_s"] is not None and p["eta_s"] > 0
    store.request_stop("r1")
    assert run_progress(store, "r1")["phase"] == "evaluating the stopped prompt"
    rec({"type": "eval", "step": 10, "accuracy": 0.5})
    p = run_progress(store, "r1")
    assert p["eval_total"] is None and p["phase"] == "stopping after this step"


# ---------------------------------------------------------------- analyses: CLI and jobs print the same numbers

@pytest.fixture
def finished(tiny_model_dir):
    """A finished LoPT-1 (rank 2) run and a prompt-tuning run on the tiny model."""
    store = Store()
    ids = {}
    for method in ("lopt1", "prompt_tuning"):
        res = run_and_record(tiny_cfg(tiny_model_dir, method=method), store=store)
        ids[method] = res["run_id"]
    return store, ids


def test_spectrum_truncation_and_nearest_on_finished_runs(finished, capsys):
    store, ids = finished
    lo = spectrum.of_run(store.get(ids["lopt1"]))
    pt = spectrum.of_run(store.get(ids["prompt_tuning"]))
    assert lo.numerical_rank == 2 and lo.label == "LoPT-1 n=6 r=2"   # rank r by construction
    assert pt.numerical_rank == 6 and "r=" not in pt.label         # a free prompt: full rank
    assert cli.main(["spectrum", "--run", ids["lopt1"], ids["prompt_tuning"], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [p["numerical_rank"] for p in printed] == [2, 6]
    assert printed[1]["effective_rank"] == pytest.approx(pt.effective_rank)

    row = store.get(ids["lopt1"])
    curve = truncate.truncation_curve(row, "1,2", eval_size=16)
    by_k = {p["k"]: p["accuracy"] for p in curve["points"]}
    assert by_k[2] == curve["full_accuracy"] == row["accuracy"]    # a rank-2 prompt loses nothing at k=2
    assert curve["points"][0]["params"] == 1 * (6 + 32) and curve["eval_examples"] == 16
    assert cli.main(["truncate", "--run", ids["lopt1"], "--ranks", "1,2", "--eval-size", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["points"] == curve["points"]
    assert store.list_analyses(run_id=ids["lopt1"], kind="truncate")[0]["state"] == "done"

    assert cli.main(["nearest", "--run", ids["prompt_tuning"], "--k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and all(len(r["tokens"]) == 2 for r in rows)


def test_analysis_jobs_check_first_then_run_in_a_worker(finished, tiny_model_dir):
    store, ids = finished
    jm = JobManager(store.path, max_concurrent=1, poll_s=0.2, worker_threads=1)
    try:
        with pytest.raises(spectrum.AnalysisError, match="outside"):
            jm.submit_analysis("truncate", ids["lopt1"], {"ranks": "7"})
        with pytest.raises(spectrum.AnalysisError, match="unknown analysis"):
            jm.submit_analysis("fourier", ids["lopt1"])
        store.create("busy", tiny_cfg(tiny_model_dir), state="running")
        with pytest.raises(spectrum.AnalysisError, match="is running"):
            jm.submit_analysis("evaluate", "busy")
        store.delete("busy")
        assert store.list_analyses() == []                          # nothing was queued
        aid = jm.submit_analysis("truncate", ids["prompt_tuning"], {"ranks": "1,3", "eval_size": 8})
        a = jm.wait_analysis(aid, timeout=120)
        assert a["state"] == "done", a["error"]
        assert [p["k"] for p in a["result"]["points"]] == [1, 3] and a["result"]["eval_examples"] == 8
        prog = analyses.progress(a)
        assert prog["done"] == prog["total"] == 3 * 8               # k=1, k=3 and the full prompt
    finally:
        jm.close()


def test_peft_and_input_dependent_runs_are_refused_with_the_reason():
    for method, why in (("lora", "changes the model's weights"), ("lopa", "different prompt for every input")):
        row = {"run_id": "x", "method": method, "state": "done", "artifact_dir": "/nowhere", "n": 4, "r": 2}
        with pytest.raises(spectrum.AnalysisError, match=why):
            spectrum.of_run(row)


def test_evaluate_now_through_the_job_manager_and_show(tiny_model_dir, capsys):
    """A stopped run that skipped its evaluation gets one from the Runs tab's job; a stopped run is its own point
    on the plots (never pooled with finished runs of the same settings); `show` prints its summary."""
    from lopt_core.analysis import aggregate
    store = Store()
    cfg = tiny_cfg(tiny_model_dir, steps=50)
    store.create("s1", cfg, state="running")

    def on_event(ev):
        if ev["type"] == "step" and ev["step"] == 2:
            store.request_stop("s1")
            store.request_stop("s1")  # twice: no closing evaluation
    run_and_record(cfg, on_event, store=store, run_id="s1")
    assert store.get("s1")["accuracy"] is None
    jm = JobManager(store.path, max_concurrent=1, poll_s=0.2, worker_threads=1)
    try:
        a = jm.wait_analysis(jm.submit_analysis("evaluate", "s1"), timeout=120)
    finally:
        jm.close()
    assert a["state"] == "done" and store.get("s1")["accuracy"] == a["result"]["accuracy"]
    done = dict(store.get("s1"), run_id="d1", state="done", steps_done=50)
    pts = aggregate.points([store.get("s1"), done])
    assert len(pts) == 2 and pts[0].label == "LoPT-1 n=6 r=2 (stopped at step 2)" and pts[1].stopped_at is None
    assert cli.main(["show", "--run", "s1"]) == 0
    assert "stopped" in capsys.readouterr().out
