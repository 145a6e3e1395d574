"""The Learn page: every number against the methods' own formulas, the crossover rank where a low-rank method
stops being cheaper than the reference prompt, the chart, and the tab building in the app."""
from __future__ import annotations

import math

import gradio as gr
import pytest

from lopt_core.analysis import learn
from lopt_core.methods import METHODS

PROMPTS = {name: cls for name, cls in METHODS.items() if not cls.changes_model}


def test_parameter_table_matches_the_formulas():
    n, r, d = 20, 5, 576
    table = learn.parameter_table(n, r, d)
    assert [row["method"] for row in table] == list(METHODS)
    ref = learn.reference_class()
    assert ref.reference and not ref.has_rank
    by = {row["method"]: row for row in table}
    for name, cls in PROMPTS.items():
        row = by[name]
        assert row["count"] == cls.formula(n, r, d) and row["label"] == cls.label
        assert row["formula"] == cls.formula_text and row["color"] == cls.color
        assert row["ratio"] == pytest.approx(ref.formula(n, r, d) / cls.formula(n, r, d))
        assert row["uses_r"] == cls.has_rank
    assert by["lopt1"]["live"] == "5·(20 + 576)" and by["prompt_tuning"]["live"] == "20·576"
    assert by["ulpt"]["live"] == "20·5 + 2·576"
    for name, cls in METHODS.items():
        if cls.changes_model:  # counts that need the model's layers: none without a model
            assert by[name]["count"] is None and by[name]["note"]
    # a rank the method cannot take is flagged, not counted
    bad = {row["method"]: row for row in learn.parameter_table(4, 9, d)}
    assert bad["lopt1"]["count"] is None and "r ≤ 4" in bad["lopt1"]["note"]


def test_peft_counts_come_from_the_model(tiny_model_dir):
    from lopt_core.lm.models import model_width
    from lopt_core.training.runs import count_params
    d = model_width(tiny_model_dir)
    by = {row["method"]: row for row in learn.parameter_table(4, 2, d, tiny_model_dir)}
    for name, cls in METHODS.items():
        if cls.changes_model:
            assert by[name]["count"] == count_params(name, 4, 2, tiny_model_dir)


@pytest.mark.parametrize("n,d", [(20, 576), (10, 768), (100, 576), (4, 32)])
def test_crossover_rank(n, d):
    ref = learn.reference_class().formula(n, 1, d)
    for name, cls in PROMPTS.items():
        if not cls.has_rank:
            continue
        x = learn.crossover(cls, n, d)
        if x is None:  # never cheaper: not even at r = 1
            assert cls.formula(n, 1, d) >= ref, name
            continue
        below = [r for r in range(1, 2 * d) if r < x]
        assert all(cls.formula(n, r, d) < ref for r in below), name
        assert cls.formula(n, math.floor(x) + 1, d) >= ref, name
        rule = learn.crossover_rule(cls)
        if rule is not None:
            assert rule.value(n, d) == pytest.approx(x)
    assert learn.crossover(METHODS["lopt1"], n, d) == pytest.approx(n * d / (n + d))


def test_crossover_rule_reads_from_the_formula_text():
    rule = learn.crossover_rule(METHODS["lopt1"])
    assert rule is not None and rule.text in ("r < d·n/(d + n)", "r < n·d/(n + d)")
    assert rule.value(20, 576) == pytest.approx(20 * 576 / 596)
    assert learn.crossover_rule(learn.reference_class()) is None  # no rank
    for cls in METHODS.values():  # prose formulas ("... two small heads") give no rule, and no error
        rule = learn.crossover_rule(cls)
        assert rule is None or (cls.has_rank and " " not in cls.formula_text.replace(" + ", ""))


def test_figure_log_y_one_trace_per_method():
    fig = learn.figure(20, 5, 576)
    assert fig.layout.yaxis.type == "log"
    names = {t.name for t in fig.data}
    for cls in PROMPTS.values():
        assert cls.label in names
    lines = {t.name: t for t in fig.data}
    lo = lines[METHODS["lopt1"].label]
    assert list(lo.x)[:3] == [1, 2, 3] and list(lo.y)[:2] == [596, 1192]
    assert max(lo.x) == METHODS["lopt1"].max_rank(20, 576)
    pt = lines[learn.reference_class().label]
    assert set(pt.y) == {20 * 576}


def test_summary_markdown_has_live_numbers():
    md = learn.summary_markdown(20, 5, 576)
    assert "11,520" in md and "2,980" in md and "19.3" in md and "r < " in md


def test_tab_builds_and_updates():
    from lopt_core.ui import learn as tab
    with gr.Blocks():
        parts = tab.build(None)
    md, table, fig = parts["update"]("", 20, 5)
    assert "11,520" in md and "LoPT-1" in md
    assert fig.layout.yaxis.type == "log"
    assert len(table) == len(METHODS)


def test_app_has_the_learn_tab():
    import app
    from lopt_core.hosting.limits import limits
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui.common import AppContext
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        jobs = JobManager(f"{tmp}/runs.db", start=False)
        try:
            demo = app.build_app(AppContext(jobs=jobs, limits=limits()))
        finally:
            jobs.close()
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert "Learn" in [t.label for t in tabs]


def test_ratio_text():
    assert learn.ratio_text(3.94) == "3.9× fewer" and learn.ratio_text(0.5) == "2.0× more"
    assert learn.ratio_text(1.0) == "as many" and learn.ratio_text(None) == ""
    md = learn.summary_markdown(10, 5, 576)  # LoPT-2 at r = n/2 trains exactly n·d
    assert "(as many)" in md and "1.0×" not in md
