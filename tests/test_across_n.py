"""Views across n (plots/across_n.py): score against n at a fixed rank, and the n × r grid of one method."""
from __future__ import annotations

from lopt_core.plots import across_n
from lopt_core.sweeps import presets


def _row(method, n, r, acc, params, seed=0, zs=0.70):
    return {"run_id": f"{method}-{n}-{r}-{seed}", "state": "done", "model": "smollm2-135m", "task": "sst2",
            "method": method, "n": n, "r": r, "trainable_params": params, "accuracy": acc, "zero_shot_accuracy": zs,
            "config": {"method": method, "n": n, "r": r, "seed": seed, "steps": 150, "task": "sst2"},
            "result": {"eval_examples": 872, "data_source": "offline"}}


def test_score_against_n_draws_a_line_per_method_at_the_rank_asked():
    rows = [_row("prompt_tuning", n, 5, 0.80 + n / 1000, n * 576) for n in (5, 10, 20, 50)] + \
           [_row("lopt1", n, r, 0.78 + n / 1000 + r / 100, r * (n + 576)) for n in (5, 10, 20, 50) for r in (2, 5)]
    fig = across_n.accuracy_vs_n_figure(rows, r=2)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"Prompt tuning", "LoPT-1 r=2"}
    assert list(by_name["LoPT-1 r=2"].x) == [5, 10, 20, 50]
    assert list(by_name["LoPT-1 r=2"].y) == [0.78 + n / 1000 + 0.02 for n in (5, 10, 20, 50)]
    lo, hi = fig.layout.yaxis.range
    assert 0.6 < lo < 0.70 and 0.83 < hi < 0.9, "the axis fits the data and the no-prompt line, not 0-1"
    assert "no prompt 0.700" in [a.text for a in fig.layout.annotations]
    assert across_n.accuracy_vs_n_figure(rows[:1]).layout.annotations[0].text.startswith("train at two or more")


def test_the_n_by_r_grid_marks_cells_past_the_crossover():
    rows = [_row("lopt1", n, r, 0.8, r * (n + 576)) for n in (5, 20) for r in (2, 10)]
    fig = across_n.heatmap_figure(rows)
    heat = fig.data[0]
    assert list(heat.x) == ["5", "20"] and list(heat.y) == ["2", "10"]
    # LoPT-1 at n=5, r=10 trains 5,810 > prompt tuning's 5 x 576 = 2,880: past the crossover; n=20, r=2 is not
    assert "≥ PT" in heat.text[1][0] and "≥ PT" not in heat.text[0][1]
    assert "1,192 p" in heat.text[0][1]


def test_the_longer_prompts_preset_varies_n_at_rank_2():
    spec = presets.get("longer_prompts").specs(model="smollm2-135m", quick=True)[0]
    assert spec.n == [5, 10, 20, 50] and spec.r == [2] and len(spec.configs()) == 12


def test_the_atlas_n_sweep_fills_the_views_on_a_first_visit():
    """No runs of one's own: the atlas's n sweep (lighter, dotted, each method's marker) fills score-vs-n and,
    with the rank sweep at n=20, the n × r grid, titled as the atlas's."""
    from lopt_core.plots import figures
    atlas = [_row(m, n, 2, 0.80 + n / 1000, n * 10, seed=s) for m in ("prompt_tuning", "lopt1", "ulpt")
             for n in (5, 10, 20, 50) for s in (0, 1)] + [_row("lopt1", 20, r, 0.8, 10) for r in (1, 5)]
    fig = across_n.accuracy_vs_n_figure([], reference=atlas)
    names = {t.name for t in fig.data}
    assert names == {"atlas: Prompt tuning", "atlas: LoPT-1 r=2", "atlas: ULPT r=2"}
    lopt1 = next(t for t in fig.data if t.name == "atlas: LoPT-1 r=2")
    assert lopt1.line.dash == "dot" and lopt1.marker.color == figures.lighter(figures.method_color("lopt1"))
    assert lopt1.marker.symbol == figures.method_symbol("lopt1") and list(lopt1.x) == [5, 10, 20, 50]
    mine = [_row("lopt1", n, 2, 0.7, n * 10, zs=0.70) for n in (5, 50)]
    with_mine = {t.name for t in across_n.accuracy_vs_n_figure(mine, reference=atlas).data}
    assert "LoPT-1 r=2" in with_mine and "atlas: LoPT-1 r=2" in with_mine, "the user's own line beside the atlas's"
    heat = across_n.heatmap_figure([], reference=atlas)
    assert heat.layout.title.text.startswith("atlas: LoPT-1") and list(heat.data[0].x) == ["5", "10", "20", "50"]


def test_no_runs_and_no_atlas_give_the_empty_views():
    for fig in (across_n.accuracy_vs_n_figure([]), across_n.heatmap_figure([]),
                across_n.accuracy_vs_n_figure([], reference=None)):
        assert fig.layout.annotations[0].text.startswith("train")
