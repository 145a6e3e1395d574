"""Compare, Runs and Generate as a classroom uses them (issue 9): one task at a time on the Compare plots,
frontiers only across the same test examples, the atlas only beside its own task and model,
stopped runs labelled honestly, readable run details. Fast: pure functions and the tabs' handlers, in-process."""
from __future__ import annotations

import json

import gradio as gr
import pytest

from lopt_core.analysis import aggregate
from lopt_core.plots import figures as plots
from lopt_core.sweeps import results_file
from lopt_core.config import RunConfig
from lopt_core.methods import METHODS

D = 576  # the offline default's width: parameter counts below follow the methods' formulas at this d


@pytest.fixture
def ctx(tmp_path):
    from lopt_core.hosting.limits import limits
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui.common import AppContext
    jobs = JobManager(tmp_path / "runs.db", start=False)
    yield AppContext(jobs=jobs, limits=limits())
    jobs.close()


def add_run(store, rid, task="sst2", method="lopt1", n=4, r=2, acc=0.8, seed=0, data_file=None, state="done",
            model="smollm2-135m", n_eval=8, steps_done=10, source=None) -> str:
    cfg = RunConfig(model=model, task=task, method=method, n=n, r=r, seed=seed, data_file=data_file, eval_size=n_eval,
                    steps=10)
    store.create(rid, cfg, state="running")
    src = source or (f"file: {data_file}" if task == "file" else "offline")
    store.update(rid, state=state, accuracy=acc, trainable_params=METHODS[method].formula(n, r, D),
                 zero_shot_accuracy=0.5, steps_done=steps_done, train_seconds=12.3,
                 result={"eval_examples": n_eval if acc is not None else None, "data_source": src,
                         "steps_done": steps_done, "lr": 0.03})
    return rid


def _row(rid, task="sst2", method="lopt1", n=4, r=2, acc=0.8, seed=0, created=0.0, **cfg):
    return {"run_id": rid, "state": "done", "model": "m", "task": task, "method": method, "n": n, "r": r,
            "trainable_params": METHODS[method].formula(n, r, D), "accuracy": acc, "zero_shot_accuracy": 0.5,
            "created": created, "config": {"seed": seed, "steps": 10, **cfg},
            "result": {"eval_examples": 8, "data_source": "file: data.csv" if task == "file" else "offline"}}


def _traces(fig, pred):
    return [t for t in fig.data if pred(t)]


def _reference_traces(fig):
    return _traces(fig, lambda t: t.legendgroup == "atlas" or (t.name or "").startswith("atlas"))


# ---------------------------------------------------------------- 1. Compare: one task, one test set

def test_file_runs_seeded_splits_are_different_test_sets():
    """A user file's 60/40 split is drawn with the run's seed: seeds measure on different examples."""
    a = _row("a", task="file", seed=0, data_file="/u/data.csv")
    b = _row("b", task="file", seed=1, data_file="/u/data.csv")
    assert aggregate.test_set_key(a) != aggregate.test_set_key(b)
    assert aggregate.test_set_key(a) == aggregate.test_set_key({**b, "config": {**b["config"], "seed": 0}})
    # the seeds still pool into one configuration (mean ± std) ...
    pts = aggregate.points([a, b])
    assert len(pts) == 1 and pts[0].seeds == 2
    # ... but a configuration pooled over seeds 0 and 1 was not measured on seed 0's examples alone
    c = _row("c", task="file", method="prompt_tuning", seed=0, data_file="/u/data.csv")
    fig = plots.tradeoff_figure([a, b, c])
    assert not _traces(fig, lambda t: t.name == "Pareto frontier")
    # sst2's test set does not depend on the seed: seeds pool and the frontier stays
    sst = [_row("s0", seed=0), _row("s1", seed=1, acc=0.7), _row("s2", method="prompt_tuning")]
    assert _traces(plots.tradeoff_figure(sst), lambda t: t.name == "Pareto frontier")


def test_task_label_and_default_task():
    rows = [_row("a", created=1), _row("b", task="file", data_file="/u/x1-reviews.csv", created=2),
            {**_row("c", task="rte", created=3), "accuracy": None, "state": "running"}]
    assert aggregate.task_label(rows[1]) == "file:x1-reviews.csv"
    assert aggregate.task_label(rows[0]) == "sst2"
    assert aggregate.default_task(rows) == "file:x1-reviews.csv"  # the newest run with an accuracy
    assert aggregate.default_task([]) is None
    assert aggregate.default_task([], fallback="sst2") == "sst2"
    assert [r["run_id"] for r in aggregate.filter_rows(rows, "sst2", aggregate.ALL)] == ["a"]
    assert len(aggregate.filter_rows(rows, aggregate.ALL, aggregate.ALL)) == 3


def test_accuracy_vs_r_never_mixes_test_sets():
    rows = [_row("s1", r=1, acc=0.7, created=1), _row("s2", r=2, acc=0.8, created=2),
            _row("f1", task="file", r=1, acc=0.6, created=3, data_file="/u/d.csv"),
            _row("f2", task="file", r=2, acc=0.9, created=4, data_file="/u/d.csv")]
    fig = plots.accuracy_vs_r_figure(rows)
    lines = _traces(fig, lambda t: t.name == "LoPT-1")
    assert len(lines) == 1 and list(lines[0].y) == [0.6, 0.9]  # the newest run's test set only
    notes = " ".join(a.text or "" for a in fig.layout.annotations) + (fig.layout.title.text or "")
    assert "file:d.csv" in notes and "other test set" in notes
    # one test set: no note
    fig = plots.accuracy_vs_r_figure(rows[:2])
    assert not any("other test set" in (a.text or "") for a in fig.layout.annotations)


def test_reference_only_beside_its_own_task_and_model():
    ref_rows = [r for r in results_file.atlas_rows() if r["task"] == "sst2"]
    assert ref_rows, f"the shipped atlas has no SST-2 sweep: {results_file.ATLAS}"
    task, model = ref_rows[0]["task"], ref_rows[0]["model"]
    mine = [_row("a", task=task)]
    mine[0]["model"] = model
    assert aggregate.matching_reference(ref_rows, task, model, mine)
    assert aggregate.matching_reference(ref_rows, task, aggregate.ALL, mine)  # every shown run is on its model
    assert not aggregate.matching_reference(ref_rows, aggregate.ALL, aggregate.ALL, mine)
    assert not aggregate.matching_reference(ref_rows, "file:d.csv", model, mine)
    assert not aggregate.matching_reference(ref_rows, task, "other-model", [])
    other = [{**mine[0], "model": "gpt2"}]
    assert not aggregate.matching_reference(ref_rows, task, aggregate.ALL, other)


def _compare(ctx):
    from lopt_core.ui import compare
    with gr.Blocks():
        fn, ins, outs = compare.build(ctx)["refresh"]
    return fn


def _names(fig):
    return {t.name for t in fig.data}


def test_compare_offers_the_shared_examples_and_rescores_what_is_missing(ctx):
    """Quick runs on the first 8 test examples and a full one on 16: the page names the cause, compares on the
    shared 8 when asked, and offers to re-score a run that kept no per-example results."""
    store = ctx.store
    for rid, method, bits in (("q-pt", "prompt_tuning", "11110000"), ("q-l1", "lopt1", "11000000"),
                              ("f-l1", "lopt1", "1111111100000000")):
        add_run(store, rid, method=method, n=20, n_eval=len(bits), acc=bits.count("1") / len(bits))
        store.update(rid, result={**store.get(rid)["result"], "correct": bits})
    on_refresh = _compare(ctx)
    out = on_refresh("sst2", aggregate.ALL, None, [], True, False)
    assert "8 vs 16 examples of sst2" in out[11] and "on shared test examples" in out[11]
    assert not _traces(out[4], lambda t: t.name == "Pareto frontier"), "two test sets: no frontier"
    out = on_refresh("sst2", aggregate.ALL, None, [], True, True)
    assert out[11].startswith("Scored on the test examples the runs share") and not out[12]["visible"]
    assert _traces(out[4], lambda t: t.name == "Pareto frontier"), "one test set now: the frontier is back"
    lopt1 = sorted(out[7][out[7]["method"] == "LoPT-1"]["accuracy (mean ± std)"])
    assert lopt1 == ["0.250", "1.000"], "the full run re-scored on the first 8 of its 16 (11111111)"

    add_run(store, "old", method="ulpt", n=20, n_eval=16, acc=0.5)  # kept no per-example results
    out = on_refresh("sst2", aggregate.ALL, None, [], True, True)
    assert "1 run(s) recorded no per-example results" in out[11] and out[12]["visible"]
    from lopt_core.ui import compare
    with gr.Blocks():
        on_rescore = compare.build(ctx)["rescore"]
    said = on_rescore("sst2", aggregate.ALL)
    assert said.startswith("Queued 0 re-scoring(s)") and "old: " in said, "saved nothing: refused, and named"


def test_compare_defaults_to_the_newest_scored_runs_task(ctx, tmp_path):
    store = ctx.store
    add_run(store, "s-pt", method="prompt_tuning", n=20, acc=0.80)
    add_run(store, "s-l1", n=20, r=2, acc=0.78)  # n = 20: the atlas's, so its lines are on accuracy vs r
    data = str(tmp_path / "ab12cd34-reviews.csv")
    add_run(store, "f-l1", task="file", data_file=data, r=1, acc=0.60)
    add_run(store, "f-l2", task="file", data_file=data, r=2, acc=0.70)
    add_run(store, "f-run", task="file", data_file=data, acc=None, state="running")
    on_refresh = _compare(ctx)

    task, model, n_fixed, table, tradeoff, by_r, overlay, configs, by_n, heat, coords, note, rescore = on_refresh(
        None, aggregate.ALL, None, [], True)
    assert task["value"] == "file:ab12cd34-reviews.csv"
    assert aggregate.ALL in task["choices"] and "sst2" in task["choices"]
    assert set(table["run"]) == {"f-l1", "f-l2", "f-run"}
    pts = _traces(tradeoff, lambda t: t.mode == "markers")
    assert sum(len(t.x) for t in pts) == 2
    assert _traces(tradeoff, lambda t: t.name == "Pareto frontier")
    assert not _reference_traces(tradeoff) and not _reference_traces(by_r)  # a file is not SST-2
    assert set(configs["task"]) == {"file:ab12cd34-reviews.csv"}
    assert list(coords.data[0].dimensions[0].values) == [0, 0]  # parallel coordinates: the two scored runs shown

    # "(all)" stays a choice; two test sets: no frontier, and no reference sweep
    out = on_refresh(aggregate.ALL, aggregate.ALL, None, [], True)
    assert out[0]["value"] == aggregate.ALL
    assert not _traces(out[4], lambda t: t.name == "Pareto frontier")
    assert not _reference_traces(out[4]) and not _reference_traces(out[5])

    # the atlas's own task and model: its layer is back
    if results_file.atlas_rows():
        out = on_refresh("sst2", aggregate.ALL, None, [], True)
        assert set(out[3]["run"]) == {"s-pt", "s-l1"}
        assert _reference_traces(out[4]) and _reference_traces(out[5])
        assert not _reference_traces(on_refresh("sst2", aggregate.ALL, None, [], False)[4])  # hidden on request


# ---------------------------------------------------------------- 2. stopped runs are labelled honestly

def test_run_choices_label_a_stopped_run_without_accuracy():
    from lopt_core.ui.common import run_choices
    stopped = {**_row("s", method="prompt_tuning", n=20, r=5, created=1), "state": "stopped", "accuracy": None,
               "steps_done": 12}
    done = {**_row("d", created=2, acc=0.81234), "steps_done": 10}
    labels = dict((v, k) for k, v in run_choices([stopped, done]))
    assert "stopped at step 12 · not evaluated" in labels["s"] and "None" not in labels["s"]
    assert "r=" not in labels["s"]  # prompt tuning has no rank
    assert "done · acc 0.812" in labels["d"] and "r=2" in labels["d"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_model_dir):
    """Two short runs on the tiny model, in their own store: SST-2 (then marked stopped before any evaluation)
    and a small CSV file task."""
    import os
    import random
    from lopt_core.training.runs import run_and_record
    from lopt_core.store.sqlite import Store
    from helpers import tiny_cfg
    home = tmp_path_factory.mktemp("views-home")
    rng, lines = random.Random(0), ["text,label"]
    for i in range(40):
        lab = i % 2
        lines.append(f"\"this film is {rng.choice(['great', 'superb'] if lab else ['awful', 'dull'])}\","
                     f"{'pos' if lab else 'neg'}")
    csv = home / "reviews.csv"
    csv.write_text("\n".join(lines) + "\n")
    old = os.environ.get("LOPT_HOME")
    os.environ["LOPT_HOME"] = str(home)
    try:
        store = Store(home / "runs.sqlite")
        sst = run_and_record(tiny_cfg(tiny_model_dir, steps=2), store=store)["run_id"]
        store.update(sst, state="stopped", accuracy=None, steps_done=1)
        f = run_and_record(tiny_cfg(tiny_model_dir, task="file", data_file=str(csv), steps=2), store=store)["run_id"]
    finally:
        if old is None:
            os.environ.pop("LOPT_HOME", None)
        else:
            os.environ["LOPT_HOME"] = old
    return store, sst, f


def test_generate_titles_a_stopped_run_without_accuracy(tiny_runs):
    from lopt_core.analysis.side_by_side import PromptBank, generate_columns
    store, stopped, _ = tiny_runs
    cols = generate_columns(store, PromptBank(), [stopped], "a fine film", True, 2)
    title = cols[1]["title"]
    assert "stopped at step 1 · not evaluated" in title and "None" not in title, title


# ---------------------------------------------------------------- 4. run details read as a summary

def test_run_summary_reads_as_a_summary():
    from lopt_core.analysis.run_summary import summary_markdown, summary_text
    lopt = {**_row("20250101-lopt1-abc", n=20, r=5, acc=0.812345), "steps_done": 150, "train_seconds": 125.4,
            "zero_shot_accuracy": 0.786, "error": None, "sweep_id": "sweep-1",
            "config": {"seed": 3, "steps": 150, "lr": None, "method": "lopt1", "n": 20, "r": 5},
            "result": {"eval_examples": 300, "lr": 0.03, "steps_done": 150}}
    md = summary_markdown(lopt)
    assert "0.812 on 300 test examples" in md and "0.812345" not in md
    assert "r·(n + d)" in md and "LoPT-1" in md and "| r | 5 |" in md
    assert "150 / 150" in md and "sweep-1" in md and "0.786" in md and "2 min 05 s" in md and "| seed | 3 |" in md
    assert "0.03" in md
    pt = {**lopt, "method": "prompt_tuning", "r": 1, "trainable_params": 11520,
          "config": {**lopt["config"], "method": "prompt_tuning"}}
    assert "| r |" not in summary_markdown(pt) and "n·d" in summary_markdown(pt)
    stopped = {**lopt, "state": "stopped", "accuracy": None, "steps_done": 12, "sweep_id": None,
               "result": {"eval_examples": None, "steps_done": 12}}
    md = summary_markdown(stopped)
    assert "stopped at step 12 of 150" in md and "not evaluated" in md and "None" not in md and "sweep" not in md
    failed = {**stopped, "state": "failed", "error": "RuntimeError: out of memory"}
    assert "failed: RuntimeError: out of memory" in summary_markdown(failed)
    text = summary_text(lopt)
    assert "accuracy" in text and "0.812 on 300 test examples" in text and "|" not in text
    file_run = {**lopt, "task": "file", "config": {**lopt["config"], "task": "file",
                                                    "data_file": "/h/uploads/ab12cd34-reviews.csv"}}
    assert "reviews.csv" in summary_markdown(file_run)


def test_runs_tab_shows_the_summary_and_keeps_the_raw_record(ctx):
    from lopt_core.ui import runs
    add_run(ctx.store, "r-stopped", acc=None, state="stopped", steps_done=3)
    with gr.Blocks():
        parts = runs.build(ctx)
    choice, details = parts["on_refresh"]("r-stopped")
    assert isinstance(details, str) and "stopped at step 3" in details and "{" not in details
    assert isinstance(parts["details"], gr.Markdown)
    raw = parts["raw"]
    assert isinstance(raw, gr.JSON)
    assert json.loads(json.dumps(parts["on_raw"]("r-stopped")))["run_id"] == "r-stopped"


# ---------------------------------------------------------------- 3. generation under a file's template

def test_generate_under_a_files_template_shows_what_the_model_did(tiny_runs, monkeypatch):
    """Measured on the offline default: a prompt trained 12 steps on a small review CSV makes greedy decoding
    under the file's template 'Text: …\\nAnswer:' give twenty line breaks, which the output box shows as empty
    (training ranks only the label words' logits, so the most likely token overall can be a line break or
    the end of the text). The column must say what happened instead of showing a blank box."""
    from lopt_core.lm import engine
    from lopt_core.analysis import side_by_side
    store, _, file_run = tiny_runs
    bank = side_by_side.PromptBank()
    cols = side_by_side.generate_columns(store, bank, [file_run], "a fine film", True, 3)
    assert [c["input"] for c in cols] == ["Text: a fine film\nAnswer:"] * 2  # the file's own template
    assert set(cols[1]["probs"]) == {"neg", "pos"}
    assert all(c["output"].strip() for c in cols)

    monkeypatch.setattr(engine, "generate", lambda *a, **k: "\n" * 20)
    cols = side_by_side.generate_columns(store, bank, [file_run], "a fine film", True, 20)
    out = cols[1]["output"]
    assert out.strip() and "20 line breaks" in out and "label words" in out, out

    monkeypatch.setattr(engine, "generate", lambda *a, **k: "")
    out = side_by_side.generate_columns(store, bank, [file_run], "a fine film", True, 20)[1]["output"]
    assert out.startswith("(") and ("ended at once" in out or "special tokens" in out), out


def test_blank_output_notes(smol_tokenizer):
    from lopt_core.analysis.side_by_side import shown_output
    tok = smol_tokenizer
    assert shown_output("good", None, tok) == "good"
    assert "ended at once" in shown_output("", tok.eos_token_id, tok) and tok.eos_token in \
        shown_output("", tok.eos_token_id, tok)
    special = next(i for i in tok.all_special_ids if i != tok.eos_token_id)
    assert "only special tokens" in shown_output("", special, tok)
    assert "2 spaces" in shown_output("  ", None, tok)
    assert "label words" in shown_output("", tok.eos_token_id, tok, trained=True)
    assert "label words" not in shown_output("", tok.eos_token_id, tok, trained=False)
    assert "sampled" in shown_output("", None, tok)


def test_a_number_as_a_sweep_id_is_a_message_not_an_error(lopt_home):
    """An API client that sends 5 where a sweep id belongs gets the page's own answer, not a bare 'Error'."""
    from lopt_core.jobs.manager import JobManager
    from lopt_core.hosting import limits as hosting
    from lopt_core.ui import sweep as tab
    from lopt_core.ui.common import AppContext
    jobs = JobManager(start=False)
    try:
        with gr.Blocks():
            parts = tab.build(AppContext(jobs=jobs, limits=hosting.Limits(allowed_models=None)))
        assert "no sweep '5'" in parts["stop"](5) and "no sweep '5'" in parts["resume"](5)
    finally:
        jobs.close()
