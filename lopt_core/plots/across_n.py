"""Views across the prompt length n: score against n at a fixed rank, and an n × r heat map of one method.

The LoPT paper's ablation asks whether a longer prompt helps at a fixed rank; these views answer it from the
runs a user has (the n sweep preset makes them). Both take store rows and draw one test set, as every figure here.
"""
from __future__ import annotations

import plotly.graph_objects as go

from lopt_core.analysis.aggregate import Point, metric_name, one_test_set, points
from lopt_core.lm.models import model_width
from lopt_core.methods import METHODS, method_color, method_label, method_symbol, reference_method
from lopt_core.plots.figures import (ATLAS, _error_y, _hover, _layout, _method_order, _no_prompt, _note, _span,
                                     _why, empty_figure, fit_range, lighter)


def _common_r(pts: list[Point]) -> int | None:
    counts: dict[int, int] = {}
    for p in pts:
        if p.r is not None:
            counts[p.r] = counts.get(p.r, 0) + 1
    return max(counts, key=lambda k: (counts[k], -k)) if counts else None


def _along_n(pts: list[Point], r: int | None) -> list[Point]:
    """The prompt methods' points at rank r (methods without a rank at every n)."""
    return [p for p in pts if p.method in METHODS and not METHODS[p.method].changes_model and (p.r is None or p.r == r)]


def accuracy_vs_n_figure(rows: list[dict], r: int | None = None, title: str | None = None,
                         reference: list[dict] | None = None) -> go.Figure:
    """Score against n, one line per method: low-rank methods at rank r (default: the most common), methods
    without a rank (prompt tuning) at every n; seeds pooled as mean ± std; no prompt as a dotted line. The
    atlas's n sweep (`reference`, the same task and model) in each method's lighter colour, dotted."""
    pts, hidden = one_test_set(points(rows))
    ref = [p for p in points(reference or []) if not pts or (p.task, p.model) == (pts[0].task, pts[0].model)]
    if r is None:  # the runs' most common rank; the atlas's where the runs span one n only
        r = _common_r(pts) if len({p.n for p in pts}) > 1 else _common_r(ref)
    shown, ref_shown = _along_n(pts, r), _along_n(ref, r)
    ref_shown = [p for p in ref_shown if len({q.n for q in ref_shown if q.method == p.method}) > 1]
    title = title or (f"{metric_name(rows or reference or []).capitalize()} vs prompt length n"
                      + (f" at r = {r}" if r else ""))
    if len({p.n for p in shown}) < 2 and not ref_shown:  # the rank in the title would speak of nothing drawn
        return empty_figure("train at two or more n to see this<br>(guided experiment: Longer prompts)",
                            f"{metric_name(rows or reference or []).capitalize()} vs prompt length n")
    fig = go.Figure()
    for layer, ps_all in ((ATLAS, ref_shown), ("", shown)):
        for method in sorted({p.method for p in ps_all}, key=_method_order):
            ps = sorted((p for p in ps_all if p.method == method), key=lambda p: p.n)
            color = lighter(method_color(method)) if layer else method_color(method)
            name = method_label(method) + ("" if not METHODS[method].has_rank or method == reference_method()
                                           else f" r={r}")
            fig.add_trace(go.Scatter(x=[p.n for p in ps], y=[p.mean for p in ps], mode="lines+markers",
                                     name=f"{layer}: {name}" if layer else name, legendgroup=layer or None,
                                     line=dict(color=color, dash="dot" if layer else None, width=2),
                                     error_y=_error_y(ps, color if layer else None),
                                     marker=dict(size=8 if layer else 10, color=color, symbol=method_symbol(method)),
                                     text=[_hover(p, f"{layer} · " if layer else "") for p in ps],
                                     hovertemplate="%{text}<extra></extra>"))
    ys = _span(shown) + _span(ref_shown)
    zero = _no_prompt(pts, ref)
    if zero is not None:
        fig.add_hline(y=zero, line=dict(dash="dot", color="#888"), annotation_text=f"no prompt {zero:.3f}",
                      annotation_position="bottom right")
        ys.append(zero)
    if hidden:
        _note(fig, f"only the newest run's test set; {hidden} other test set{'s' if hidden > 1 else ''} left out "
                   f"({_why(rows)})")
    ns = sorted({p.n for p in shown + ref_shown})
    fig.update_xaxes(title_text="prompt length n", type="log" if ns[-1] / ns[0] > 8 else "linear",
                     tickvals=ns)
    fig.update_yaxes(title_text=metric_name(rows or reference or []), range=fit_range(ys))
    return _layout(fig, title, height=380)


def heatmap_figure(rows: list[dict], method: str | None = None, reference: list[dict] | None = None) -> go.Figure:
    """An n × r grid of one low-rank method's mean score (text: score and trainable parameters), with the
    crossover drawn: the largest r at each n where the method still trains fewer parameters than the
    reference prompt of the same n (from the methods' own formulas at the model's width). Where the runs do
    not fill a grid, the atlas's (`reference`) fills it, titled as the atlas's."""
    pts, _ = one_test_set(points(rows))
    if not _is_grid(pts) and _is_grid(points(reference or [])):
        pts, atlas = points(reference or []), True
    else:
        atlas = False
    ranked = [p for p in pts if p.r is not None and p.method in METHODS and METHODS[p.method].has_rank]
    if method is None and ranked:
        counts: dict[str, int] = {}
        for p in ranked:
            counts[p.method] = counts.get(p.method, 0) + 1
        method = max(counts, key=lambda m: (counts[m], -_method_order(m)))
    grid = [p for p in ranked if p.method == method]
    title = (f"{ATLAS}: " if atlas else "") + \
        f"{method_label(method) if method else 'Low-rank'} {metric_name(rows or reference or [])} over n × r"
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
                               texttemplate="%{text}", colorscale="Viridis",
                               colorbar=dict(title=metric_name(rows or reference or [])),
                               hovertemplate="n=%{x}, r=%{y}: %{z:.3f}<extra></extra>"))
    if over:
        _note(fig, f"≥ PT: as many parameters as {method_label(reference_method()).lower()} of the same n, or more "
                   f"(past the crossover)")
    fig.update_xaxes(title_text="prompt length n", type="category")
    fig.update_yaxes(title_text="rank r", type="category")
    return _layout(fig, title, height=380)


def _is_grid(pts: list[Point]) -> bool:
    """Some low-rank method was trained at two or more n and two or more r."""
    by: dict[str, tuple[set, set]] = {}
    for p in pts:
        if p.r is not None and p.method in METHODS and METHODS[p.method].has_rank:
            ns, rs = by.setdefault(p.method, (set(), set()))
            ns.add(p.n)
            rs.add(p.r)
    return any(len(ns) > 1 and len(rs) > 1 for ns, rs in by.values())
