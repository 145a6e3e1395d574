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


def test_curves_accuracy_panel_before_the_first_evaluation():
    fig = plots.curves_figure(_loss_only([(1, 0.9), (2, 0.8)], zero_shot=0.5))
    assert [t for t in fig.data if t.xaxis == "x"]  # the loss panel is drawn
    assert [t for t in fig.data if t.xaxis == "x2"]  # plotly.js draws a panel's axes only with a trace in it
    assert tuple(fig.layout.yaxis2.range) == (0, 1.02) and fig.layout.xaxis2.range is not None
    assert any(s.y0 == 0.5 and s.yref == "y2" for s in fig.layout.shapes), fig.layout.shapes  # the no-prompt line
    assert any("first evaluation" in (a.text or "") for a in fig.layout.annotations)
