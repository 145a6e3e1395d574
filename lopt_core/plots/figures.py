"""Plotly figures for the app: training curves, the rank trade-off plot (with its Pareto frontier), accuracy vs r.

Every function takes plain data (store rows and metric lists) and returns a plotly Figure; nothing here trains.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lopt_core.lm.models import canonical
from lopt_core.methods import METHODS, method_color, method_label, method_symbol, reference_method  # noqa: F401  (re-exported)
from lopt_core.analysis.aggregate import Point, fmt_acc, metric_name, metric_of, one_test_set, points, scored  # noqa: F401  (scored: the runs a plot can place)

RUN_COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]
ATLAS = "atlas"          # the shipped reference layer's name in legends and hovers
ATLAS_LIGHTNESS = 0.55   # how far the atlas layer's colours are mixed toward white


def lighter(color: str, amount: float = ATLAS_LIGHTNESS) -> str:
    """`color` ("#RRGGBB") mixed with white: the atlas layer keeps each method's colour, told apart by lightness."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02X}" for c in rgb)


def fit_range(values: list[float], pad: float = 0.02) -> list[float]:
    """A y range for scores in [0, 1] that fits the data: the spread fills the plot, with a little room (at
    least 2 points on each side, so one configuration alone is not a line on the frame)."""
    if not values:
        return [0, 1.02]
    lo, hi = min(values), max(values)
    room = max(pad, 0.08 * (hi - lo))
    return [max(0.0, lo - room), min(1.02, hi + room)]


def _span(pts: list[Point]) -> list[float]:
    """Every y a set of points reaches: its means and the ends of their error bars."""
    return [v for p in pts for v in (p.mean - p.std, p.mean + p.std)]


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), height=height,
                      margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.22),
                      hovermode="closest")
    return fig


def empty_figure(message: str, title: str = "") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=300)


def run_name(row: dict) -> str:
    return f"{method_label(row['method'])} n={row['n']} r={row['r']} · {row['run_id'][-6:]}"


FEW_POINTS = 5  # a curve with this many points or fewer gets markers: one point on a line alone is invisible


def curves_figure(series: list[dict], title: str = "Training curves",
                  empty: str = "no curve yet: the first points appear after the first training step") -> go.Figure:
    """Loss (left) and evaluation accuracy (right) of one or several runs.

    series: [{"name": str, "loss": [(step, value)], "accuracy": [(step, value)], "total_steps": int | None,
              "zero_shot": float | None, "live": bool (optional: still training, so leave room ahead)}]
    The step axis spans the steps done, not the steps planned, so a short or stopped run fills the plot; the
    accuracy panel keeps its axes and no-prompt line before the first evaluation, so the layout never jumps.
    """
    if not series or not any(s["loss"] or s["accuracy"] for s in series):
        return empty_figure(empty, title)
    metrics = {s.get("metric", "accuracy") for s in series}
    metric = metrics.pop() if len(metrics) == 1 else "score"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", f"evaluation {metric}"),
                        horizontal_spacing=0.1)
    for i, s in enumerate(series):
        color = s.get("color") or RUN_COLORS[i % len(RUN_COLORS)]
        for key, col, fmt in (("loss", 1, ".4f"), ("accuracy", 2, ".3f")):
            if s[key]:
                _curve(fig, s, key, col, fmt, color, markers=key == "accuracy")
        if s.get("zero_shot") is not None and len(series) == 1:
            fig.add_hline(y=s["zero_shot"], line=dict(dash="dot", color="#888"), row=1, col=2,
                          exclude_empty_subplots=False, annotation_text=f"no prompt {s['zero_shot']:.2f}",
                          annotation_position="bottom right")
    if not any(s["accuracy"] for s in series):  # an empty trace makes plotly draw the panel's axes
        fig.add_trace(go.Scatter(x=[], y=[], showlegend=False, hoverinfo="skip"), row=1, col=2)
        fig.add_annotation(text=f"{metric} appears after the first evaluation", showarrow=False, x=0.5, y=0.12,
                           xref="x2 domain", yref="y2 domain", font=dict(size=12, color="#888"))
    steps = _step_range(series)
    fig.update_xaxes(title_text="step", range=steps, row=1, col=1)
    fig.update_xaxes(title_text="step", range=steps, row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return _layout(fig, title)


MAX_CURVE_POINTS = 1000  # a longer curve is drawn from every k-th point and its last: a page can't show more


def thin(points: list, at_most: int = MAX_CURVE_POINTS) -> list:
    """At most `at_most` of `points`, evenly strided, always with the first and the last (Store.curve picks the
    same in SQL, so a stored curve arrives thinned and passes through here untouched)."""
    if len(points) <= at_most:
        return list(points)
    kept = list(points[::math.ceil(len(points) / (at_most - 1))])
    return kept if kept[-1] == points[-1] else kept + [points[-1]]


def _curve(fig: go.Figure, s: dict, key: str, col: int, fmt: str, color: str, markers: bool) -> None:
    """One run's loss or accuracy line (thinned: a 100,000-step run sends 1,000 points a tick, not all); with a
    separate markers trace while the line has few points."""
    x, y = zip(*thin(s[key]))
    hover = "step %{x}<br>" + key + " %{y:" + fmt + "}<extra>" + s["name"] + "</extra>"
    first = key == "loss" or not s["loss"]  # one legend entry per run
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if markers else "lines", name=s["name"],
                             legendgroup=s["name"], showlegend=first, line=dict(color=color, width=2),
                             hovertemplate=hover), row=1, col=col)
    if not markers and len(x) <= FEW_POINTS:
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=s["name"], legendgroup=s["name"], showlegend=False,
                                 marker=dict(color=color, size=7), hovertemplate=hover), row=1, col=col)


def _step_range(series: list[dict]) -> list[float]:
    """0 to the last step done; a live run gets a quarter more (at most up to its planned steps) to grow into."""
    done = max(step for s in series for step, _ in s["loss"] + s["accuracy"])
    right = done
    planned = max([s.get("total_steps") or 0 for s in series if s.get("live")] + [0])
    if planned > done:
        right = min(planned, max(done + 2, math.ceil(done * 1.25)))
    return [0, right + max(0.5, right * 0.02)]


def series_from_store(store, run_ids: list[str]) -> list[dict]:
    out = []
    for i, rid in enumerate(run_ids):
        try:
            row = store.get(rid)
        except KeyError:
            continue
        out.append({"name": run_name(row), "total_steps": row["config"].get("steps"),
                    "zero_shot": row.get("zero_shot_accuracy"), "color": RUN_COLORS[i % len(RUN_COLORS)],
                    "metric": metric_of(row),
                    "loss": store.curve(rid, "loss", MAX_CURVE_POINTS),
                    "accuracy": store.curve(rid, "accuracy", MAX_CURVE_POINTS)})
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (fewer parameters AND higher accuracy), by parameters."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _hover(p: Point, prefix: str = "") -> str:
    """The configuration, its seeds and what they scored, and on how many test examples."""
    c = p.config
    lr = c.get("lr")
    metric = metric_of({"task": p.task, "config": c})
    seeds = ", ".join(str(x) for x in p.seed_list)
    score = (f"mean of {p.seeds} seeds ({seeds}): {fmt_acc(p)}" if p.seeds > 1
             else f"{metric} {p.mean:.3f} (seed {seeds or c.get('seed')})")
    on = f" on {p.examples:,} test examples" if p.examples else ""
    return (f"{prefix}<b>{p.label}</b><br>model {p.model} · task {p.task}<br>"
            f"steps {c.get('steps')} · batch {c.get('batch_size')} · lr {'default' if lr is None else lr}<br>"
            f"trainable {p.trainable_params:,} · {score}{on}"
            + (f"<br>no prompt {p.zero_shot:.3f}" if p.zero_shot is not None else "")
            + f"<br>{len(p.run_ids)} run(s): {', '.join(rid[-6:] for rid in p.run_ids[:4])}")


def _error_y(pts: list[Point], color: str | None = None) -> dict | None:
    """± one standard deviation over seeds, where some point has more than one seed."""
    if not any(p.seeds > 1 for p in pts):
        return None
    return dict(type="data", array=[p.std for p in pts], visible=True, thickness=1.2, width=4,
                **({"color": color} if color else {}))


def _method_order(method: str) -> int:
    return list(METHODS).index(method) if method in METHODS else 99


def tradeoff_figure(rows: list[dict], title: str = "Score vs trainable parameters",
                    reference: list[dict] | None = None) -> go.Figure:
    """Score against trainable parameters (log x), each method its own colour and marker, seeds pooled as
    mean ± std; the y axis fits the data. The Pareto frontier and the no-prompt line are drawn only when every
    point was measured on the same test examples. `reference`: the atlas's rows of the same task and model,
    drawn in each method's lighter colour (one legend entry hides them all)."""
    pts, ref = points(rows), points(reference or [])
    if not pts and not ref:
        return empty_figure("no finished runs yet: train a few methods and ranks to fill this plot", title)
    if len({canonical(p.model) for p in pts}) > 1:
        return _tradeoff_by_model(rows, title)
    fig = go.Figure()
    _atlas_markers(fig, ref)
    for method in sorted({p.method for p in pts}, key=_method_order):
        ps = [p for p in pts if p.method == method]
        fig.add_trace(go.Scatter(
            x=[p.trainable_params for p in ps], y=[p.mean for p in ps], mode="markers", name=method_label(method),
            error_y=_error_y(ps), marker=dict(size=12, color=method_color(method), symbol=method_symbol(method),
                                              line=dict(width=1, color="#333")),
            text=[_hover(p) for p in ps], hovertemplate="%{text}<extra></extra>",
            customdata=[p.run_ids[0] for p in ps]))
    sets = {p.test_set for p in pts}
    ys = _span(pts) + _span(ref)
    if len(sets) == 1:
        front = pareto_front([(p.trainable_params, p.mean) for p in pts])
        xs, fy = zip(*front)
        fig.add_trace(go.Scatter(x=xs, y=fy, mode="lines", name="Pareto frontier", line=dict(color="#222", dash="dash",
                                 shape="hv", width=1.5), hoverinfo="skip"))
    elif len(sets) > 1:
        _note(fig, f"no frontier: the runs were scored on different test sets ({_why(rows)})")
    zero = _no_prompt(pts if len(sets) == 1 else [], ref)
    if zero is not None:
        fig.add_hline(y=zero, line=dict(dash="dot", color="#888"), annotation_text=f"no prompt {zero:.3f}",
                      annotation_position="bottom right")
        ys.append(zero)
    fig.update_xaxes(type="log", title_text="trainable parameters (log scale)")
    pooled = any(p.seeds > 1 for p in pts + ref)
    fig.update_yaxes(title_text=metric_name(rows or reference or []) + (" (mean ± std over seeds)" if pooled else ""),
                     range=fit_range(ys))
    _layout(fig, title, height=440)
    if ref:  # the atlas's legend group has a title line: the legend starts lower, clear of the axis title
        fig.update_layout(legend=dict(y=-0.28), margin=dict(b=60))
    return fig


def _why(rows: list[dict]) -> str:
    """Why the runs' test sets differ, and what to do about it, for a figure's note."""
    from lopt_core.analysis import shared_examples
    why = shared_examples.describe(rows) or "different test examples"
    return why + (": compare on the shared examples" if "are shared" in why else ": choose one task and model")


def _tradeoff_by_model(rows: list[dict], title: str) -> go.Figure:
    """One panel per model, side by side on one score axis: runs of two models are never pooled nor joined by
    a frontier; each panel has its own frontier (within one test set) and its own no-prompt line."""
    pts = points(rows)
    models = sorted({canonical(p.model) for p in pts})
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True, subplot_titles=models,
                        horizontal_spacing=0.06)
    seen, ys = set(), _span(pts)
    for col, model in enumerate(models, start=1):
        mine = [p for p in pts if canonical(p.model) == model]
        for method in sorted({p.method for p in mine}, key=_method_order):
            ps = [p for p in mine if p.method == method]
            fig.add_trace(go.Scatter(
                x=[p.trainable_params for p in ps], y=[p.mean for p in ps], mode="markers", name=method_label(method),
                legendgroup=method, showlegend=method not in seen, error_y=_error_y(ps),
                marker=dict(size=12, color=method_color(method), symbol=method_symbol(method),
                            line=dict(width=1, color="#333")),
                text=[_hover(p) for p in ps], hovertemplate="%{text}<extra></extra>"), row=1, col=col)
            seen.add(method)
        if len({p.test_set for p in mine}) == 1:
            xs, fy = zip(*pareto_front([(p.trainable_params, p.mean) for p in mine]))
            fig.add_trace(go.Scatter(x=xs, y=fy, mode="lines", name="Pareto frontier", legendgroup="frontier",
                                     showlegend=col == 1, line=dict(color="#222", dash="dash", shape="hv", width=1.5),
                                     hoverinfo="skip"), row=1, col=col)
            zero = _no_prompt(mine, [])
            if zero is not None:
                fig.add_hline(y=zero, line=dict(dash="dot", color="#888"), row=1, col=col,
                              annotation_text=f"no prompt {zero:.3f}", annotation_position="bottom right")
                ys.append(zero)
        fig.update_xaxes(type="log", title_text="trainable parameters (log)", row=1, col=col)
    fig.update_yaxes(title_text=metric_name(rows), range=fit_range(ys), row=1, col=1)
    return _layout(fig, f"{title} · one panel per model", height=440)


def _no_prompt(pts: list[Point], ref: list[Point]) -> float | None:
    """The frozen model's score on the shown test set: the runs' own, else the atlas's."""
    zs = [p.zero_shot for p in pts if p.zero_shot is not None] or [p.zero_shot for p in ref if p.zero_shot is not None]
    return zs[-1] if zs else None


def _note(fig: go.Figure, text: str) -> None:
    """A small red note in the figure's lower left: what the figure leaves out, and why."""
    fig.add_annotation(text=text, showarrow=False, x=0.01, y=0.02, xref="paper", yref="paper", xanchor="left",
                       font=dict(size=11, color="#a33"))


def _atlas_markers(fig: go.Figure, ref: list[Point]) -> None:
    """The atlas's configurations: each method's marker in its lighter colour, one legend group for all."""
    for i, method in enumerate(sorted({p.method for p in ref}, key=_method_order)):
        ps = [p for p in ref if p.method == method]
        light = lighter(method_color(method))
        fig.add_trace(go.Scatter(
            x=[p.trainable_params for p in ps], y=[p.mean for p in ps], mode="markers", error_y=_error_y(ps, light),
            name=f"{ATLAS}: {method_label(method)}", legendgroup=ATLAS, showlegend=True,
            legendgrouptitle=dict(text=f"{ATLAS} ({ps[0].task}, {ps[0].model})") if i == 0 else None,
            marker=dict(size=11, color=light, symbol=method_symbol(method), line=dict(width=1, color="#999")),
            text=[_hover(p, f"{ATLAS} · ") for p in ps], hovertemplate="%{text}<extra></extra>"))


def accuracy_vs_r_figure(rows: list[dict], n: int | None = None, title: str | None = None,
                         reference: list[dict] | None = None) -> go.Figure:
    """Accuracy against rank r at a fixed prompt length n, one line per low-rank method (seeds pooled as
    mean ± std); the reference prompt (prompt tuning) at the same n and no prompt as horizontal lines; the
    atlas's lines in each method's lighter colour. n defaults to the most common n among the ranked runs. Lines
    never join test sets: when the runs span several, the newest run's test set is drawn and the figure says
    what it left out; the atlas is drawn only beside runs of its own task and model."""
    pts, hidden = one_test_set(points(rows))
    ref = [p for p in points(reference or []) if not pts or (p.task, canonical(p.model)) ==
           (pts[0].task, canonical(pts[0].model))]
    ranked = [p for p in pts if p.r is not None]
    if n is None:
        pool = ranked or [p for p in ref if p.r is not None]
        if pool:
            counts: dict[int, int] = {}
            for p in pool:
                counts[p.n] = counts.get(p.n, 0) + 1
            n = max(counts, key=lambda k: (counts[k], k))
    title = title or (f"Accuracy vs rank r at n = {n}" if n is not None else "Accuracy vs rank r")
    if hidden:
        title += f" · {pts[0].task} on {pts[0].model}"
    ranked = [p for p in ranked if p.n == n]
    ref_ranked = [p for p in ref if p.r is not None and p.n == n]
    if not ranked and not ref_ranked:
        ranked_methods = "/".join(c.label for c in METHODS.values() if c.has_rank and not c.changes_model)
        return empty_figure(f"no low-rank runs at this n yet: train {ranked_methods} at a few ranks", title)
    fig = go.Figure()
    for method in sorted({p.method for p in ref_ranked}, key=_method_order):
        ps = sorted((p for p in ref_ranked if p.method == method), key=lambda p: p.r)
        light = lighter(method_color(method))
        fig.add_trace(go.Scatter(x=[p.r for p in ps], y=[p.mean for p in ps], mode="lines+markers",
                                 name=f"{ATLAS}: {method_label(method)}", legendgroup=ATLAS, showlegend=True,
                                 line=dict(color=light, dash="dot", width=2),
                                 marker=dict(size=8, color=light, symbol=method_symbol(method)),
                                 error_y=_error_y(ps, light), text=[_hover(p, f"{ATLAS} · ") for p in ps],
                                 hovertemplate="%{text}<extra></extra>"))
    for method in sorted({p.method for p in ranked}, key=_method_order):
        ps = sorted((p for p in ranked if p.method == method), key=lambda p: p.r)
        fig.add_trace(go.Scatter(x=[p.r for p in ps], y=[p.mean for p in ps], mode="lines+markers",
                                 name=method_label(method), line=dict(color=method_color(method)),
                                 error_y=_error_y(ps), marker=dict(size=10, symbol=method_symbol(method)),
                                 text=[_hover(p) for p in ps], hovertemplate="%{text}<extra></extra>"))
    ys = _span(ranked) + _span(ref_ranked)
    own = [p for p in pts if p.method in METHODS and p.method == reference_method() and p.n == n]
    refs, source = (own, "") if own else ([p for p in ref if p.method == reference_method() and p.n == n], f"{ATLAS}: ")
    if refs:
        best = max(refs, key=lambda p: p.mean)
        fig.add_hline(y=best.mean, line=dict(dash="dash", color=method_color(best.method) if own else
                                             lighter(method_color(best.method))),
                      annotation_text=f"{source}{method_label(best.method)} (n={n}) {fmt_acc(best)}",
                      annotation_position="top left")
        ys.append(best.mean)
    zero = _no_prompt(pts, ref)
    if zero is not None:
        fig.add_hline(y=zero, line=dict(dash="dot", color="#888"), annotation_text=f"no prompt {zero:.3f}",
                      annotation_position="bottom right")
        ys.append(zero)
    if hidden:
        _note(fig, f"only the newest run's test set; {hidden} other test set{'s' if hidden > 1 else ''} left out "
                   f"({_why(rows)})")
    rs = [p.r for p in ranked + ref_ranked]
    fig.update_xaxes(title_text="rank r", type="log" if max(rs) > 16 else "linear")
    fig.update_yaxes(title_text=metric_name(rows or reference or []), range=fit_range(ys))
    return _layout(fig, title, height=380)
