"""Plot builders: pure functions of store rows and metric lists."""
from __future__ import annotations

from lopt_core.plots import figures as plots


def _row(rid, method, n, r, params, acc, state="done"):
    return {"run_id": f"2025-{rid}", "method": method, "n": n, "r": r, "trainable_params": params, "accuracy": acc,
            "zero_shot_accuracy": 0.5, "state": state, "model": "m", "task": "sst2",
            "config": {"steps": 10, "batch_size": 8, "lr": None, "seed": 0}}


ROWS = [_row("a", "prompt_tuning", 20, 5, 11520, 0.80), _row("b", "lopt1", 20, 2, 1192, 0.78),
        _row("c", "lopt1", 20, 8, 4768, 0.79), _row("d", "lopt2", 20, 4, 4608, 0.70),
        _row("e", "ulpt", 20, 4, 1232, 0.81), _row("f", "lopt1", 20, 4, 2384, None, state="failed")]


def test_pareto_front():
    assert plots.pareto_front([(10, 0.5), (5, 0.6), (20, 0.7), (30, 0.65)]) == [(5, 0.6), (20, 0.7)]
    assert plots.pareto_front([]) == []


def test_tradeoff_log_x_colours_hover_and_frontier():
    fig = plots.tradeoff_figure(ROWS)
    assert fig.layout.xaxis.type == "log"
    markers = [t for t in fig.data if t.mode == "markers"]
    assert {t.name for t in markers} == {"Prompt tuning", "LoPT-1", "LoPT-2", "ULPT"}
    assert len({t.marker.color for t in markers}) == 4
    assert sum(len(t.x) for t in markers) == 5  # the failed run is left out
    assert "n=20 r=2" in "".join(markers[1].text + markers[0].text)
    front = [t for t in fig.data if t.name == "Pareto frontier"][0]
    assert list(front.x) == [1192, 1232] and list(front.y) == [0.78, 0.81]
    assert "no finished runs" in plots.tradeoff_figure([]).layout.annotations[0].text


def test_accuracy_vs_r_and_curves():
    fig = plots.accuracy_vs_r_figure(ROWS)
    assert "n = 20" in fig.layout.title.text
    lopt1 = [t for t in fig.data if t.name == "LoPT-1"][0]
    assert list(lopt1.x) == [2, 8]
    assert any("Prompt tuning" in (a.text or "") for a in fig.layout.annotations)
    assert "no low-rank" in plots.accuracy_vs_r_figure(ROWS, n=99).layout.annotations[0].text
    series = [{"name": "A", "loss": [(1, 0.9), (2, 0.7)], "accuracy": [(2, 0.6)], "total_steps": 4, "zero_shot": 0.5},
              {"name": "B", "loss": [(1, 1.0)], "accuracy": [], "total_steps": 4}]
    fig = plots.curves_figure(series)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2 and lines[0].line.color != lines[1].line.color
    assert "no curve yet" in plots.curves_figure([]).layout.annotations[0].text


def _loss_only(points, total=150, live=False, zero_shot=None):
    return [{"name": "A", "loss": points, "accuracy": [], "total_steps": total, "zero_shot": zero_shot, "live": live}]


def test_curves_first_loss_point_is_visible():
    fig = plots.curves_figure(_loss_only([(1, 0.9)]))
    shown = [t for t in fig.data if list(t.x) == [1] and "markers" in (t.mode or "")]
    assert shown, [(t.mode, t.x) for t in fig.data]


def test_curves_x_axis_spans_the_steps_done():
    stopped = plots.curves_figure(_loss_only([(s, 1 / s) for s in range(1, 13)]))
    lo, hi = stopped.layout.xaxis.range
    assert lo <= 1 and 12 <= hi <= 13, hi  # a stopped run at step 12 of 150 fills the axis
    assert tuple(stopped.layout.xaxis2.range) == (lo, hi)
    live = plots.curves_figure(_loss_only([(s, 1 / s) for s in range(1, 13)], live=True))
    assert 12 < live.layout.xaxis.range[1] <= 150  # a running run gets some headroom, never the whole plan


def test_a_long_curve_is_thinned_to_what_a_page_can_show_keeping_its_ends():
    steps = [(s, 1 / s) for s in range(1, 50_001)]  # a 50,000-step run: every tick sent all of it
    fig = plots.curves_figure(_loss_only(steps))
    line = next(t for t in fig.data if t.x and len(t.x) > 1)
    assert len(line.x) <= plots.MAX_CURVE_POINTS
    assert line.x[0] == 1 and line.x[-1] == 50_000 and line.y[-1] == 1 / 50_000
    assert list(line.x) == sorted(line.x) and fig.layout.xaxis.range[1] >= 50_000
    short = plots.curves_figure(_loss_only(steps[:300]))
    assert len(next(t for t in short.data if t.x and len(t.x) > 1).x) == 300  # a real run's curve is whole


def test_curves_accuracy_panel_before_the_first_evaluation():
    fig = plots.curves_figure(_loss_only([(1, 0.9), (2, 0.8)], zero_shot=0.5))
    assert [t for t in fig.data if t.xaxis == "x"]  # the loss panel is drawn
    assert [t for t in fig.data if t.xaxis == "x2"]  # plotly.js draws a panel's axes only with a trace in it
    assert tuple(fig.layout.yaxis2.range) == (0, 1.02) and fig.layout.xaxis2.range is not None
    assert any(s.y0 == 0.5 and s.yref == "y2" for s in fig.layout.shapes), fig.layout.shapes  # the no-prompt line
    assert any("first evaluation" in (a.text or "") for a in fig.layout.annotations)


# ---------------------------------------------------------------- plots that separate (issue: evidence)

def _seeded(rid, method, r, params, accs, zero=0.786, examples=872):
    """One configuration's runs, a seed each, scored on the same 872 examples."""
    return [{**_row(f"{rid}{s}", method, 20, r, params, a), "zero_shot_accuracy": zero,
             "config": {"steps": 150, "batch_size": 8, "lr": None, "seed": s},
             "result": {"eval_examples": examples, "test_fingerprint": "abc"}} for s, a in enumerate(accs)]


LIVE = _seeded("pt", "prompt_tuning", 1, 11520, [0.871, 0.865]) + _seeded("l1", "lopt1", 2, 1192, [0.842, 0.850])
ATLAS = _seeded("apt", "prompt_tuning", 1, 11520, [0.873, 0.869, 0.861]) + \
    _seeded("au", "ulpt", 2, 1192, [0.859, 0.851, 0.866])


def test_the_y_axis_fits_the_scores_not_zero_to_one():
    fig = plots.tradeoff_figure(LIVE, reference=ATLAS)
    lo, hi = fig.layout.yaxis.range
    ys = [y for t in fig.data if t.y is not None for y in t.y]
    assert lo <= min(ys) and max(ys) <= hi, "every point is on the plot"
    assert lo <= 0.786 <= hi, "the no-prompt line too"
    assert hi - lo < 0.25, f"a 9-point spread fills the plot, not a sliver of a 0-1 axis: {lo:.3f}..{hi:.3f}"
    by_r = plots.accuracy_vs_r_figure(LIVE + _seeded("l5", "lopt1", 5, 2980, [0.86, 0.87]), reference=ATLAS)
    assert by_r.layout.yaxis.range[1] - by_r.layout.yaxis.range[0] < 0.25


def test_each_method_keeps_its_colour_and_marker_and_the_atlas_is_lighter():
    fig = plots.tradeoff_figure(LIVE, reference=ATLAS)
    live = {t.name: t for t in fig.data if t.legendgroup != plots.ATLAS and t.mode == "markers"}
    atlas = {t.name: t for t in fig.data if t.legendgroup == plots.ATLAS}
    assert set(live) == {"Prompt tuning", "LoPT-1"} and set(atlas) == {"atlas: Prompt tuning", "atlas: ULPT"}
    symbols = {t.marker.symbol for t in live.values()} | {atlas["atlas: ULPT"].marker.symbol}
    assert len(symbols) == 3, "three methods, three markers"
    pt, apt = live["Prompt tuning"], atlas["atlas: Prompt tuning"]
    assert apt.marker.symbol == pt.marker.symbol == plots.method_symbol("prompt_tuning")
    assert pt.marker.color == plots.method_color("prompt_tuning") != apt.marker.color == plots.lighter(pt.marker.color)
    assert plots.lighter("#000000") == "#8C8C8C" and plots.lighter("#FFFFFF") == "#FFFFFF"


def test_no_prompt_is_drawn_and_hover_names_seeds_and_test_size():
    for fig in (plots.tradeoff_figure(LIVE), plots.tradeoff_figure([], reference=ATLAS),
                plots.accuracy_vs_r_figure(LIVE)):
        lines = [s for s in fig.layout.shapes if s.y0 == s.y1 == 0.786]
        assert lines, "the frozen model's score is on the plot"
    pt = next(t for t in plots.tradeoff_figure(LIVE).data if t.name == "Prompt tuning")
    assert "mean of 2 seeds (0, 1): 0.868 ± 0.004" in pt.text[0] and "on 872 test examples" in pt.text[0]
    au = next(t for t in plots.tradeoff_figure([], reference=ATLAS).data if t.name == "atlas: ULPT")
    assert au.text[0].startswith("atlas · ") and "3 seeds (0, 1, 2)" in au.text[0]
    assert au.error_y.array is not None and au.error_y.color == plots.lighter(plots.method_color("ulpt"))
