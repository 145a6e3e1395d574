"""Views across the prompt length n: score against n at a fixed rank, and an n × r heat map of one method.

The LoPT paper's ablation asks whether a longer prompt helps at a fixed rank; these views answer it from the
runs a user has (the n sweep preset makes them). Both take store rows and draw one test set, as every figure here.
"""
from __future__ import annotations

import plotly.graph_objects as go

from lopt_core.analysis.aggregate import Point, metric_name, one_test_set, points
from lopt_core.lm.models import model_width
from lopt_core.methods import METHODS, method_color, method_label, reference_method
from lopt_core.plots.figures import _error_y, _hover, _layout, _method_order, _note, empty_figure

MARKERS = ["circle", "square", "diamond", "triangle-up", "x", "star", "hexagon", "cross"]


def _fit(values: list[float], pad: float = 0.03) -> list[float]:
    """A y range that fits the data (scores in [0, 1]) with a little room."""
    lo, hi = min(values), max(values)
    return [max(0.0, lo - pad), min(1.02, hi + pad)]


def _common_r(pts: list[Point]) -> int | None:
    counts: dict[int, int] = {}
    for p in pts:
        if p.r is not None:
            counts[p.r] = counts.get(p.r, 0) + 1
    return max(counts, key=lambda k: (counts[k], -k)) if counts else None


def accuracy_vs_n_figure(rows: list[dict], r: int | None = None, title: str | None = None) -> go.Figure:
    """Score against n, one line per method: low-rank methods at rank r (default: the most common), methods
    without a rank (prompt tuning) at every n; seeds pooled as mean ± std; no prompt as a dotted line."""
    pts, hidden = one_test_set(points(rows))
    r = r if r is not None else _common_r(pts)
    shown = [p for p in pts if p.method in METHODS and not METHODS[p.method].changes_model
             and (p.r is None or p.r == r)]
    title = title or (f"{metric_name(rows).capitalize()} vs prompt length n" + (f" at r = {r}" if r else ""))
    if len({p.n for p in shown}) < 2:
        return empty_figure("train at two or more n to see this<br>(guided experiment: Longer prompts)", title)
    fig = go.Figure()
    for i, method in enumerate(sorted({p.method for p in shown}, key=_method_order)):
        ps = sorted((p for p in shown if p.method == method), key=lambda p: p.n)
        fig.add_trace(go.Scatter(x=[p.n for p in ps], y=[p.mean for p in ps], mode="lines+markers",
                                 name=method_label(method) + ("" if METHODS[method].has_rank is False or
                                                              method == reference_method() else f" r={r}"),
                                 line=dict(color=method_color(method)), error_y=_error_y(ps),
                                 marker=dict(size=9, symbol=MARKERS[i % len(MARKERS)]),
                                 text=[_hover(p) for p in ps], hovertemplate="%{text}<extra></extra>"))
    zs = [p.zero_shot for p in pts if p.zero_shot is not None]
    ys = [p.mean + p.std for p in shown] + [p.mean - p.std for p in shown] + zs[-1:]
    if zs:
        fig.add_hline(y=zs[-1], line=dict(dash="dot", color="#888"), annotation_text=f"no prompt {zs[-1]:.3f}",
                      annotation_position="bottom right")
    if hidden:
        _note(fig, f"only runs on {pts[0].task}; {hidden} other test set{'s' if hidden > 1 else ''} left out")
    ns = sorted({p.n for p in shown})
    fig.update_xaxes(title_text="prompt length n", type="log" if ns[-1] / ns[0] > 8 else "linear",
                     tickvals=ns)
    fig.update_yaxes(title_text=metric_name(rows), range=_fit(ys))
    return _layout(fig, title, height=380)


def heatmap_figure(rows: list[dict], method: str | None = None) -> go.Figure:
    """An n × r grid of one low-rank method's mean score (text: score and trainable parameters), with the
    crossover drawn: the largest r at each n where the method still trains fewer parameters than the
    reference prompt of the same n (from the methods' own formulas at the model's width)."""
    pts, _ = one_test_set(points(rows))
    ranked = [p for p in pts if p.r is not None and p.method in METHODS and METHODS[p.method].has_rank]
    if method is None and ranked:
        counts: dict[str, int] = {}
        for p in ranked:
            counts[p.method] = counts.get(p.method, 0) + 1
        method = max(counts, key=lambda m: (counts[m], -_method_order(m)))
    grid = [p for p in ranked if p.method == method]
    title = f"{method_label(method) if method else 'Low-rank'} {metric_name(rows)} over n × r"
    if len({p.n for p in grid}) < 2 or len({p.r for p in grid}) < 2:
        return empty_figure("train one low-rank method at two or more n<br>and two or more r to fill this grid", title)
    ns, rs = sorted({p.n for p in grid}), sorted({p.r for p in grid})
    at = {(p.n, p.r): p for p in grid}
    ref_params = {p.n: p.trainable_params for p in pts if p.method == reference_method()}
    try:  # the reference prompt's count at each n from its own formula, where it was not trained
        d = model_width(grid[0].model)
        ref_params = {n: METHODS[reference_method()].formula(n, 1, d) for n in ns} | ref_params
    except Exception:  # noqa: BLE001  (the model's width cannot be read here: trained reference runs only)
        pass
    over = {k for k, p in at.items() if k[0] in ref_params and p.trainable_params >= ref_params[k[0]]}
    z = [[at[(n, r)].mean if (n, r) in at else None for n in ns] for r in rs]
    text = [[(f"{at[(n, r)].mean:.3f}<br>{at[(n, r)].trainable_params:,} p" + ("<br>≥ PT" if (n, r) in over else ""))
             if (n, r) in at else "" for n in ns] for r in rs]
    fig = go.Figure(go.Heatmap(x=[str(n) for n in ns], y=[str(r) for r in rs], z=z, text=text,
                               texttemplate="%{text}", colorscale="Viridis", colorbar=dict(title=metric_name(rows)),
                               hovertemplate="n=%{x}, r=%{y}: %{z:.3f}<extra></extra>"))
    if over:
        _note(fig, f"≥ PT: as many parameters as {method_label(reference_method()).lower()} of the same n, or more "
                   f"(past the crossover)")
    fig.update_xaxes(title_text="prompt length n", type="category")
    fig.update_yaxes(title_text="rank r", type="category")
    return _layout(fig, title, height=380)
