"""The Train tab as a classroom uses it (issue 9): page loads show the live run, evaluation has progress, the
status follows the run, numbers and shapes are checked with messages that name the field, and the settings
travel in the page's link. Fast: the tab's pure functions and its handlers, called in-process."""
from __future__ import annotations

import html

import gradio as gr
import pytest

from lopt_core.config import ConfigError, RunConfig
from lopt_core.methods import METHODS
from lopt_core.ui import train as tab


@pytest.fixture
def ctx(tmp_path):
    from lopt_core.hosting.limits import limits
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui.common import AppContext
    jobs = JobManager(tmp_path / "runs.db", start=False)
    yield AppContext(jobs=jobs, limits=limits())
    jobs.close()


@pytest.fixture
def built(ctx):
    with gr.Blocks() as demo:
        parts = tab.build(ctx)
    return demo, parts


def load_page(parts, query: dict | None = None) -> dict:
    """Run the tab's page-load handler as Gradio would for a page opened at ?query; outputs by component."""
    fn, inputs, outputs = parts["load"]
    assert inputs == []
    return dict(zip(outputs, fn(request=gr.Request(query_params=query or {}))))


# ---------------------------------------------------------------- 1. every page load shows the runs

def _row(rid, state, created):
    return {"run_id": rid, "state": state, "created": created}


def test_active_run_prefers_running_then_newest_queued_then_latest():
    assert tab.active_run([]) is None
    rows = [_row("old", "done", 1), _row("q1", "queued", 2), _row("q2", "queued", 3), _row("new", "failed", 4)]
    assert tab.active_run(rows) == "q2"
    assert tab.active_run(rows + [_row("run", "running", 0.5)]) == "run"
    assert tab.active_run([_row("a", "done", 1), _row("b", "stopped", 2)]) == "b"


def test_page_load_selects_the_running_run_and_fills_the_queue(ctx, built):
    _, parts = built
    for rid, state in (("r-done", "done"), ("r-run", "running"), ("r-queued", "queued")):
        ctx.store.create(rid, RunConfig(method="lopt1"), state=state)
    out = load_page(parts)
    picker = out[parts["watch"]]
    assert picker["value"] == "r-run"
    assert {v for _, v in picker["choices"]} == {"r-done", "r-run", "r-queued"}
    table = out[parts["queue"]]
    assert set(table["run"]) == {"r-done", "r-run", "r-queued"}


# ---------------------------------------------------------------- 3. the final evaluation has its own progress

P = dict(run_id="r1", state="running", phase="running", step=40, total=150, fraction=40 / 150, examples_per_s=12.5,
         eta_s=90, error=None, accuracy=None)


def test_progress_during_evaluation_counts_examples():
    p = {**P, "phase": "evaluating", "step": 150, "fraction": 120 / 872, "eta_s": 30, "eval_done": 120,
         "eval_total": 872}
    text = tab.progress_html(p)
    assert "evaluating 120/872 examples" in text and "width:13.8%" in text and "ETA 0:30" in text
    training = tab.progress_html({**P, "eval_done": None, "eval_total": None})
    assert "step 40/150" in training and "examples" in training and "evaluating" not in training
    assert "step 40/150" in tab.progress_html(P)  # today's dict, without the evaluation keys


# ---------------------------------------------------------------- 4. the status follows the present

def test_run_outcome_replaces_a_stop_request_with_what_happened():
    p = {**P, "step": 12}
    assert tab.run_outcome({**p, "phase": "stopping after this step"}) is None  # nothing new yet
    evaluating = tab.run_outcome({**p, "phase": "evaluating the stopped prompt"})
    assert "stopped at step 12" in evaluating and "evaluating" in evaluating
    done = tab.run_outcome({**p, "state": "stopped", "phase": "stopped", "accuracy": 0.8125})
    assert "r1" in done and "stopped at step 12" in done and "accuracy 0.812" in done
    assert "no accuracy" in tab.run_outcome({**p, "state": "stopped", "phase": "stopped"})
    failed = tab.run_outcome({**p, "state": "failed", "phase": "failed", "error": "out of memory"})
    assert "failed" in failed and "out of memory" in failed


def test_editing_any_setting_clears_the_status(built):
    demo, parts = built
    status = parts["status"]
    for name, comp in parts["settings"].items():
        clears = [f for f in demo.fns.values()
                  if (comp._id, "input") in [tuple(t) for t in f.targets] and status in f.outputs]
        assert clears, f"editing {name} leaves an old status in place"
        # an edit sent while the r slider's bound moves must reach follow(), which clamps r, unrefused
        assert all(f.preprocess is False for f in clears), name


# ---------------------------------------------------------------- 5. numbers checked by us, naming the field

ARGS = dict(model="smollm2-135m", task="sst2", method="lopt1", n=20, r=5, steps=150, batch_size=8, lr="",
            eval_every=50, seed=0, eval_size=300, upload=None, text_col="text", text_b_col="", label_col="label")


@pytest.mark.parametrize("field,bad,message", [
    ("steps", 0, "steps must be at least 1, got 0"), ("batch_size", 0, "batch size must be at least 1, got 0"),
    ("eval_every", -1, "eval every must be at least 0, got -1"), ("eval_size", -5, "eval examples must be at least 0"),
    ("seed", -1, "seed must be at least 0, got -1"), ("n", 0, "prompt length n must be at least 1, got 0"),
    ("r", 0, "rank r must be at least 1, got 0")])
def test_out_of_range_numbers_name_the_field(field, bad, message):
    with pytest.raises(ConfigError, match=message):
        tab.build_config(None, **{**ARGS, field: bad})


def test_number_boxes_leave_range_checks_to_us(built):
    """gr.Number's own minimum answers 'Value 0 is less than minimum value 1', naming no field."""
    _, parts = built
    for name in ("steps", "batch_size", "eval_every", "eval_size", "seed"):
        box = parts["settings"][name]
        assert box.minimum is None and box.maximum is None, name


# ---------------------------------------------------------------- 6. the readout and the r slider know the method

def test_max_rank_is_a_fact_on_the_method():
    assert METHODS["lopt1"].max_rank(4, 32) == 4 and METHODS["lopt1"].max_rank(100, 576) == 100
    assert METHODS["lopt2"].max_rank(4, 32) == 32 and METHODS["ulpt"].max_rank(20, 576) == 64


def test_readout_shows_the_runs_own_error_for_an_impossible_shape(tiny_model_dir):
    from lopt_core.training.checks import check_method
    with pytest.raises(ConfigError) as e:
        check_method(RunConfig(model=tiny_model_dir, method="lopt1", n=4, r=5))
    text = tab.param_readout(tiny_model_dir, "lopt1", 4, 5)
    assert html.escape(str(e.value)) in text and "trainable" not in text
    assert "trainable" in tab.param_readout(tiny_model_dir, "lopt1", 4, 4)
    assert "r=" not in tab.param_readout(tiny_model_dir, "prompt_tuning", 4, 9)


def test_rank_slider_follows_the_method_and_n(tiny_model_dir):
    lopt1 = tab.rank_slider(tiny_model_dir, "lopt1", 4, 10)
    assert lopt1["maximum"] == 4 and lopt1["value"] == 4 and lopt1["visible"] is True
    lopt2 = tab.rank_slider(tiny_model_dir, "lopt2", 4, 10)  # LoPT-2: r <= d = 32 on the tiny model
    assert lopt2["maximum"] == 32 and lopt2["value"] == 10
    assert tab.rank_slider(tiny_model_dir, "prompt_tuning", 4, 10)["visible"] is False


# ---------------------------------------------------------------- 7. the settings travel in the page link

def test_page_load_applies_a_share_link(built):
    _, parts = built
    s = parts["settings"]
    out = load_page(parts, {"method": "ulpt", "n": "10", "r": "3", "steps": "40", "lr": "0.05"})
    assert out[s["method"]]["value"] == "ulpt" and out[s["n"]]["value"] == 10 and out[s["r"]]["value"] == 3
    assert out[s["steps"]]["value"] == 40 and out[s["lr"]]["value"] == "0.05"
    assert "n=10, r=3" in out[parts["readout"]] and out[s["r"]]["maximum"] == 64
    assert "method=ulpt&n=10&r=3&steps=40" in out[parts["share_query"]]
    assert out[parts["status"]] == ""


def test_page_load_of_a_bad_link_says_which_parameter(built):
    _, parts = built
    s = parts["settings"]
    out = load_page(parts, {"method": "lopt9", "n": "abc", "steps": "12"})
    msg = out[parts["status"]]
    assert "method=lopt9" in msg and "n=abc" in msg and "default" in msg
    assert out[s["steps"]]["value"] == 12 and out[s["method"]]["value"] == "lopt1"


def test_share_link_follows_the_settings(built):
    _, parts = built
    query, line = tab.share_outputs("smollm2-135m", "sst2", "lopt1", 4, 2, 6, 2, "", 3, 8, 0)
    assert query == "model=smollm2-135m&task=sst2&method=lopt1&n=4&r=2&steps=6&batch_size=2&eval_every=3" \
                    "&eval_size=8&seed=0"
    assert f"(?{query})" in line and "Link to these settings" in line


@pytest.mark.parametrize("field,bad,msg", [
    ("steps", 2.7, "steps must be a whole number, got 2.7"), ("n", 2.5, "prompt length n must be a whole number"),
    ("seed", 2**70, "seed must be at most 4,294,967,295"), ("batch_size", "8.5", "batch size must be a whole number"),
])
def test_a_non_whole_or_huge_number_is_refused_naming_its_field(field, bad, msg):
    """Every number box alike: 2.7 steps is not rounded to 3 while n=2.5 is refused; a 70-bit seed is named."""
    with pytest.raises(ConfigError, match=msg):
        tab.build_config(None, **{**ARGS, field: bad})


def test_the_model_picker_shows_each_models_licence():
    from lopt_core.ui.train import model_line
    assert "licence: Apache-2.0 (SmolLM2)" in model_line("smollm2-135m") and "instruct" in model_line("smollm2-135m")
    gemma = model_line("gemma3-270m")
    assert "Gemma Terms of Use" in gemma and "base" in gemma
    assert "model card" in model_line("some/hub-model"), "a model not embedded: where its licence is stated"
