"""Parallel coordinates: every scored run as one line across method, n, r, learning rate and seed to its score.

Why: the trade-off plots pool seeds and fix one knob at a time; a tracker's researcher also wants to see at a
glance which settings the good runs share, and how far seeds alone move a score. Plain data in (store-like
rows), a Figure out.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from lopt_core.analysis.aggregate import has_rank, metric_name, scored, test_set_key
from lopt_core.methods import method_label
from lopt_core.plots.figures import empty_figure

TITLE = "Runs across settings"
NO_RANK = 0  # where r sits for a method without rank, ticked "–"


def _lr(row: dict) -> float | None:
    """The learning rate the run trained with: its result's (the method default resolved), else its config's."""
    lr = (row.get("result") or {}).get("lr")
    return lr if lr is not None else (row.get("config") or {}).get("lr")


def _ticked(values: list, text=str) -> dict:
    """A numeric dimension with a tick at each value present."""
    ticks = sorted(set(values))
    return dict(values=values, tickvals=ticks, ticktext=[text(v) for v in ticks])


def parallel_figure(rows: list[dict], title: str = TITLE) -> go.Figure:
    """One line per scored run over method (categorical), n, r, lr (log10 when it varies) and seed, to its score;
    coloured by score. Fewer than two scored runs: a message instead."""
    runs = scored(rows)
    if len(runs) < 2:
        return empty_figure("parallel coordinates need at least two scored runs", title)
    newest = max(runs, key=lambda r: r.get("created") or 0.0)
    key = lambda r: test_set_key(r, pooled=True)  # noqa: E731  (a file's seeds split alike: one set, pooled)
    hidden = len({key(r) for r in runs}) - 1
    runs = [r for r in runs if key(r) == key(newest)]  # one score axis: one test set's (one task, one model)
    if hidden:
        title += f" · the newest run's test set only ({hidden} other{'s' if hidden > 1 else ''} left out)"
    if len(runs) < 2:
        return empty_figure("parallel coordinates need two scored runs on one test set", title)
    metric = metric_name(runs)
    methods = sorted({r["method"] for r in runs})
    lrs = [_lr(r) for r in runs]
    dims = [dict(label="method", values=[methods.index(r["method"]) for r in runs],
                 tickvals=list(range(len(methods))), ticktext=[method_label(m) for m in methods]),
            dict(label="n", **_ticked([r["n"] for r in runs])),
            dict(label="r", **_ticked([r["r"] if has_rank(r["method"]) else NO_RANK for r in runs],
                                      lambda v: "–" if v == NO_RANK else str(v)))]
    if all(lr is not None and lr > 0 for lr in lrs) and len(set(lrs)) > 1:  # log scale: equal ratios, equal gaps
        logs = [math.log10(lr) for lr in lrs]
        dims.append(dict(label="learning rate (log)", values=logs, tickvals=sorted(set(logs)),
                         ticktext=[f"{10 ** v:.2g}" for v in sorted(set(logs))]))
    elif all(lr is not None for lr in lrs):
        dims.append(dict(label="learning rate", **_ticked(lrs, lambda v: f"{v:.2g}")))
    seeds = [(r.get("config") or {}).get("seed") or 0 for r in runs]
    dims.append(dict(label="seed", **_ticked(seeds)))
    scores = [float(r["accuracy"]) for r in runs]
    dims.append(dict(label=metric, values=scores))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=dict(color=scores, colorscale="Viridis", showscale=True,
                                                            colorbar=dict(title=metric))))
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), height=380, template="plotly_white",
                      margin=dict(l=110, r=40, t=80, b=30))
    return fig
