"""Plotly figures for the app: training curves, the rank trade-off plot (with its Pareto frontier), accuracy vs r.

Every function takes plain data (store rows and metric lists) and returns a plotly Figure; nothing here trains.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lopt_core.lm.models import canonical
from lopt_core.methods import METHODS, method_color, method_label, reference_method  # noqa: F401  (re-exported)
from lopt_core.analysis.aggregate import Point, fmt_acc, metric_name, metric_of, one_test_set, points, scored  # noqa: F401  (scored: the runs a plot can place)

RUN_COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]
REFERENCE_COLOR = "#A0A0A0"


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), height=height, template="plotly_white",
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


def _curve(fig: go.Figure, s: dict, key: str, col: int, fmt: str, color: str, markers: bool) -> None:
    """One run's loss or accuracy line; with a separate markers trace while the line has few points."""
    x, y = zip(*s[key])
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
                    "loss": [(m["step"], m["value"]) for m in store.metrics(rid, "loss")],
                    "accuracy": [(m["step"], m["value"]) for m in store.metrics(rid, "accuracy")]})
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
    c = p.config
    lr = c.get("lr")
    seeds = f"mean of {p.seeds} seeds: {fmt_acc(p)}" if p.seeds > 1 else f"accuracy {p.mean:.3f} (seed {c.get('seed')})"
    return (f"{prefix}<b>{p.label}</b><br>model {p.model} · task {p.task}<br>"
            f"steps {c.get('steps')} · batch {c.get('batch_size')} · lr {'default' if lr is None else lr}<br>"
            f"trainable {p.trainable_params:,} · {seeds}"
            + (f"<br>no prompt {p.zero_shot:.3f}" if p.zero_shot is not None else "")
            + f"<br>{len(p.run_ids)} run(s): {', '.join(rid[-6:] for rid in p.run_ids[:4])}")


def _error_y(pts: list[Point]) -> dict | None:
    if not any(p.seeds > 1 for p in pts):
        return None
    return dict(type="data", array=[p.std for p in pts], visible=True, thickness=1.2, width=4)


def _method_order(method: str) -> int:
    return list(METHODS).index(method) if method in METHODS else 99


def tradeoff_figure(rows: list[dict], title: str = "Accuracy vs trainable parameters",
                    reference: list[dict] | None = None) -> go.Figure:
    """Accuracy against trainable parameters (log x), one colour per method, seeds pooled as mean ± std.
    The Pareto frontier is drawn only when every point was measured on the same test examples. `reference`:
    rows of a reference sweep, drawn as a grey layer (click its legend entry to hide it)."""
    pts, ref = points(rows), points(reference or [])
    if not pts and not ref:
        return empty_figure("no finished runs yet: train a few methods and ranks to fill this plot", title)
    fig = go.Figure()
    _reference_markers(fig, ref)
    for method in sorted({p.method for p in pts}, key=_method_order):
        ps = [p for p in pts if p.method == method]
        fig.add_trace(go.Scatter(
            x=[p.trainable_params for p in ps], y=[p.mean for p in ps], mode="markers", name=method_label(method),
            error_y=_error_y(ps), marker=dict(size=11, color=method_color(method), line=dict(width=1, color="#333")),
            text=[_hover(p) for p in ps], hovertemplate="%{text}<extra></extra>",
            customdata=[p.run_ids[0] for p in ps]))
    sets = {p.test_set for p in pts}
    if len(sets) == 1:
        front = pareto_front([(p.trainable_params, p.mean) for p in pts])
        xs, ys = zip(*front)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto frontier", line=dict(color="#222", dash="dash",
                                 shape="hv", width=1.5), hoverinfo="skip"))
        zs = [p.zero_shot for p in pts if p.zero_shot is not None]
        if zs:
            fig.add_hline(y=zs[-1], line=dict(dash="dot", color="#888"), annotation_text="no prompt",
                          annotation_position="bottom right")
    elif len(sets) > 1:
        _note(fig, f"runs measured on {len(sets)} different sets of test examples: no frontier "
                   f"(choose one task and model)")
    fig.update_xaxes(type="log", title_text="trainable parameters (log scale)")
    fig.update_yaxes(title_text=metric_name(rows) + (" (mean ± std over seeds)" if any(p.seeds > 1 for p in pts)
                                                     else ""),
                     range=[0, 1.02])
    return _layout(fig, title, height=420)


def _note(fig: go.Figure, text: str) -> None:
    """A small red note in the figure's lower left: what the figure leaves out, and why."""
    fig.add_annotation(text=text, showarrow=False, x=0.01, y=0.02, xref="paper", yref="paper", xanchor="left",
                       font=dict(size=11, color="#a33"))


def _reference_markers(fig: go.Figure, ref: list[Point]) -> None:
    if not ref:
        return
    fig.add_trace(go.Scatter(
        x=[p.trainable_params for p in ref], y=[p.mean for p in ref], mode="markers", error_y=_error_y(ref),
        name=f"reference sweep ({ref[0].task}, {ref[0].model})", legendgroup="reference", showlegend=True,
        marker=dict(size=10, color=REFERENCE_COLOR, symbol="circle-open", line=dict(width=2, color=REFERENCE_COLOR)),
        opacity=0.8, text=[_hover(p, "reference sweep · ") for p in ref], hovertemplate="%{text}<extra></extra>"))


def accuracy_vs_r_figure(rows: list[dict], n: int | None = None, title: str | None = None,
                         reference: list[dict] | None = None) -> go.Figure:
    """Accuracy against rank r at a fixed prompt length n, one line per low-rank method (seeds pooled as
    mean ± std); the reference prompt (prompt tuning) at the same n as a horizontal line; a reference sweep's
    lines in grey. n defaults to the most common n among the ranked runs. Lines never join test sets: when
    the runs span several, the newest run's test set is drawn and the figure says what it left out; the
    reference sweep is drawn only beside runs of its own task and model."""
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
        fig.add_trace(go.Scatter(x=[p.r for p in ps], y=[p.mean for p in ps], mode="lines+markers",
                                 name=f"reference: {method_label(method)}", legendgroup="reference", showlegend=True,
                                 line=dict(color=REFERENCE_COLOR, dash="dot", width=1.5), marker=dict(size=6),
                                 error_y=_error_y(ps), opacity=0.8, text=[_hover(p, "reference sweep · ") for p in ps],
                                 hovertemplate="%{text}<extra></extra>"))
    for method in sorted({p.method for p in ranked}, key=_method_order):
        ps = sorted((p for p in ranked if p.method == method), key=lambda p: p.r)
        fig.add_trace(go.Scatter(x=[p.r for p in ps], y=[p.mean for p in ps], mode="lines+markers",
                                 name=method_label(method), line=dict(color=method_color(method)),
                                 error_y=_error_y(ps), marker=dict(size=9), text=[_hover(p) for p in ps],
                                 hovertemplate="%{text}<extra></extra>"))
    refs = [p for p in pts if p.method in METHODS and p.method == reference_method() and p.n == n]
    if refs:
        best = max(refs, key=lambda p: p.mean)
        fig.add_hline(y=best.mean, line=dict(dash="dash", color=method_color(best.method)),
                      annotation_text=f"{method_label(best.method)} (n={n}) {fmt_acc(best)}",
                      annotation_position="top left")
    if hidden:
        _note(fig, f"only runs on {pts[0].task} ({pts[0].model}); {hidden} other test set"
                   f"{'s' if hidden > 1 else ''} left out: choose one task and model")
    rs = [p.r for p in ranked + ref_ranked]
    fig.update_xaxes(title_text="rank r", type="log" if max(rs) > 16 else "linear")
    fig.update_yaxes(title_text=metric_name(rows), range=[0, 1.02])
    return _layout(fig, title, height=380)
