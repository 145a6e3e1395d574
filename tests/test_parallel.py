"""The runs in parallel coordinates (issue 20, a tracker's view): one line per scored run over method, n, r,
learning rate and seed to its score; a message when there is too little to draw."""
from __future__ import annotations

from lopt_core.methods import METHODS
from lopt_core.plots.parallel import parallel_figure

D = 576


def _row(rid, method="lopt1", n=20, r=2, lr=0.03, seed=0, acc=0.8):
    return {"run_id": rid, "state": "done", "model": "m", "task": "sst2", "method": method, "n": n, "r": r,
            "trainable_params": METHODS[method].formula(n, r, D), "accuracy": acc, "created": 0.0,
            "config": {"seed": seed}, "result": {"eval_examples": 8, "lr": lr, "metric": "accuracy"}}


def test_parallel_coordinates_one_line_per_run():
    rows = [_row("a", acc=0.8), _row("b", seed=1, acc=0.82, lr=0.003),
            _row("c", method="prompt_tuning", n=10, lr=0.3, acc=0.7), {**_row("d"), "accuracy": None}]
    fig = parallel_figure(rows)
    dims = {d.label: d for d in fig.data[0].dimensions}
    assert list(dims) == ["method", "n", "r", "learning rate (log)", "seed", "accuracy"]
    assert list(dims["method"].ticktext) == [METHODS["lopt1"].label, METHODS["prompt_tuning"].label]
    assert list(dims["method"].values) == [0, 0, 1]  # the unscored run is left out
    assert list(dims["n"].values) == [20, 20, 10] and list(dims["seed"].values) == [0, 1, 0]
    assert list(dims["r"].values) == [2, 2, 0] and "–" in dims["r"].ticktext  # no rank: its own tick
    assert [round(v, 6) for v in dims["learning rate (log)"].values] == [-1.522879, -2.522879, -0.522879]
    assert list(dims["learning rate (log)"].ticktext) == ["0.003", "0.03", "0.3"]
    assert list(dims["accuracy"].values) == [0.8, 0.82, 0.7] == list(fig.data[0].line.color)


def test_parallel_coordinates_plain_lr_when_it_does_not_vary_and_a_message_when_too_few():
    fig = parallel_figure([_row("a"), _row("b", seed=1, acc=0.9)])
    assert "learning rate" in [d.label for d in fig.data[0].dimensions]
    empty = parallel_figure([_row("a")])
    assert not empty.data and "at least two scored runs" in empty.layout.annotations[0].text


def test_one_score_axis_holds_one_test_set_only():
    """Two models (or tasks) are never drawn on one score axis: the newest run's test set, the others named."""
    from lopt_core.plots.parallel import parallel_figure
    base = {"state": "done", "task": "sst2", "n": 10, "r": 2, "trainable_params": 100, "zero_shot_accuracy": 0.5,
            "config": {"seed": None, "lr": 0.01}}
    rows = [{**base, "run_id": f"{m}-{i}", "model": m, "method": "lopt1", "accuracy": 0.6 + i / 10,
             "created": float(i), "result": {"eval_examples": 300, "test_fingerprint": m}}
            for i, m in enumerate(["smollm2-135m", "smollm2-135m", "gemma3-270m", "gemma3-270m"])]
    fig = parallel_figure(rows)
    assert [round(v, 3) for v in fig.data[0].dimensions[-1].values] == [0.8, 0.9], "gemma: the newest test set"
    assert "1 other left out" in fig.layout.title.text
