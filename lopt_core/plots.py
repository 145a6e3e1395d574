"""Plotly figures for the app: training curves, the rank trade-off plot (with its Pareto frontier), accuracy vs r.

Every function takes plain data (store rows and metric lists) and returns a plotly Figure; nothing here trains.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

# one fixed colour per method, so a method looks the same in every plot
METHOD_COLORS = {"prompt_tuning": "#636EFA", "lopt1": "#EF553B", "lopt2": "#00CC96", "ulpt": "#AB63FA",
                 "lopa": "#FFA15A", "lora": "#19D3F3", "prefix": "#FF6692"}
_FALLBACK = ["#B6E880", "#FF97FF", "#FECB52", "#8C564B", "#7F7F7F"]
RUN_COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]


def method_label(method: str) -> str:
    from .methods import METHODS
    return METHODS[method].label if method in METHODS else method


def method_color(method: str) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _FALLBACK[sum(map(ord, method)) % len(_FALLBACK)]


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


def curves_figure(series: list[dict], title: str = "Training curves",
                  empty: str = "no curve yet: the first points appear after the first training step") -> go.Figure:
    """Loss (left) and evaluation accuracy (right) of one or several runs.

    series: [{"name": str, "loss": [(step, value)], "accuracy": [(step, value)], "total_steps": int | None,
              "zero_shot": float | None}]
    """
    if not series or not any(s["loss"] or s["accuracy"] for s in series):
        return empty_figure(empty, title)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "evaluation accuracy"),
                        horizontal_spacing=0.1)
    total = max([s.get("total_steps") or 0 for s in series] + [1])
    for i, s in enumerate(series):
        color = s.get("color") or RUN_COLORS[i % len(RUN_COLORS)]
        if s["loss"]:
            x, y = zip(*s["loss"])
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=s["name"], legendgroup=s["name"],
                                     line=dict(color=color, width=2),
                                     hovertemplate="step %{x}<br>loss %{y:.4f}<extra>" + s["name"] + "</extra>"),
                          row=1, col=1)
        if s["accuracy"]:
            x, y = zip(*s["accuracy"])
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=s["name"], legendgroup=s["name"],
                                     showlegend=not s["loss"], line=dict(color=color, width=2),
                                     hovertemplate="step %{x}<br>accuracy %{y:.3f}<extra>" + s["name"] + "</extra>"),
                          row=1, col=2)
        if s.get("zero_shot") is not None and len(series) == 1:
            fig.add_hline(y=s["zero_shot"], line=dict(dash="dot", color="#888"), row=1, col=2,
                          annotation_text=f"no prompt {s['zero_shot']:.2f}", annotation_position="bottom right")
    fig.update_xaxes(title_text="step", range=[0, total * 1.02], row=1, col=1)
    fig.update_xaxes(title_text="step", range=[0, total * 1.02], row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return _layout(fig, title)


def series_from_store(store, run_ids: list[str]) -> list[dict]:
    out = []
    for i, rid in enumerate(run_ids):
        try:
            row = store.get(rid)
        except KeyError:
            continue
        out.append({"name": run_name(row), "total_steps": row["config"].get("steps"),
                    "zero_shot": row.get("zero_shot_accuracy"), "color": RUN_COLORS[i % len(RUN_COLORS)],
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


def _hover(row: dict) -> str:
    c = row.get("config") or {}
    lr = c.get("lr")
    return (f"<b>{method_label(row['method'])}</b> · {row['run_id']}<br>"
            f"model {row.get('model')} · task {row.get('task')}<br>"
            f"n={row['n']} r={row['r']} · steps {c.get('steps')} · batch {c.get('batch_size')} · "
            f"lr {'default' if lr is None else lr} · seed {c.get('seed')}<br>"
            f"trainable {row['trainable_params']:,} · accuracy {row['accuracy']:.3f}"
            + (f" (no prompt {row['zero_shot_accuracy']:.3f})" if row.get("zero_shot_accuracy") is not None else ""))


def scored(rows: list[dict]) -> list[dict]:
    """Runs that can be placed on the trade-off plot: an accuracy and a parameter count."""
    return [r for r in rows if r.get("accuracy") is not None and r.get("trainable_params")
            and r.get("state") in ("done", "stopped")]


def tradeoff_figure(rows: list[dict], title: str = "Accuracy vs trainable parameters") -> go.Figure:
    """Accuracy against trainable parameters (log x), one colour per method, the Pareto frontier drawn."""
    rows = scored(rows)
    if not rows:
        return empty_figure("no finished runs yet: train a few methods and ranks to fill this plot", title)
    fig = go.Figure()
    for method in sorted({r["method"] for r in rows}, key=lambda m: list(METHOD_COLORS).index(m)
                         if m in METHOD_COLORS else 99):
        rs = [r for r in rows if r["method"] == method]
        fig.add_trace(go.Scatter(
            x=[r["trainable_params"] for r in rs], y=[r["accuracy"] for r in rs], mode="markers",
            name=method_label(method), marker=dict(size=11, color=method_color(method), line=dict(width=1, color="#333")),
            text=[_hover(r) for r in rs], hovertemplate="%{text}<extra></extra>",
            customdata=[r["run_id"] for r in rs]))
    front = pareto_front([(r["trainable_params"], r["accuracy"]) for r in rows])
    if front:
        xs, ys = zip(*front)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto frontier", line=dict(color="#222", dash="dash",
                                 shape="hv", width=1.5), hoverinfo="skip"))
    zs = [r["zero_shot_accuracy"] for r in rows if r.get("zero_shot_accuracy") is not None]
    if zs and len({(r["model"], r["task"]) for r in rows}) == 1:
        fig.add_hline(y=zs[-1], line=dict(dash="dot", color="#888"), annotation_text="no prompt",
                      annotation_position="bottom right")
    fig.update_xaxes(type="log", title_text="trainable parameters (log scale)")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return _layout(fig, title, height=420)


def accuracy_vs_r_figure(rows: list[dict], n: int | None = None, title: str | None = None) -> go.Figure:
    """Accuracy against rank r at a fixed prompt length n, one line per low-rank method; prompt tuning at the
    same n as a reference line. n defaults to the most common n among the ranked runs."""
    from .methods import METHODS
    rows = scored(rows)
    ranked = [r for r in rows if r["method"] != "prompt_tuning" and r["method"] != "prefix"]
    if n is None and ranked:
        counts = {}
        for r in ranked:
            counts[r["n"]] = counts.get(r["n"], 0) + 1
        n = max(counts, key=lambda k: (counts[k], k))
    title = title or (f"Accuracy vs rank r at n = {n}" if n is not None else "Accuracy vs rank r")
    ranked = [r for r in ranked if r["n"] == n]
    if not ranked:
        return empty_figure("no low-rank runs at this n yet: train LoPT-1/LoPT-2/ULPT at a few ranks", title)
    fig = go.Figure()
    for method in sorted({r["method"] for r in ranked}):
        rs = sorted((r for r in ranked if r["method"] == method), key=lambda r: r["r"])
        fig.add_trace(go.Scatter(x=[r["r"] for r in rs], y=[r["accuracy"] for r in rs], mode="lines+markers",
                                 name=method_label(method), line=dict(color=method_color(method)),
                                 marker=dict(size=9), text=[_hover(r) for r in rs],
                                 hovertemplate="%{text}<extra></extra>"))
    pt = [r for r in rows if r["method"] == "prompt_tuning" and r["n"] == n]
    if pt:
        best = max(pt, key=lambda r: r["accuracy"])
        fig.add_hline(y=best["accuracy"], line=dict(dash="dash", color=method_color("prompt_tuning")),
                      annotation_text=f"{METHODS['prompt_tuning'].label} (n={n})", annotation_position="top left")
    fig.update_xaxes(title_text="rank r", type="log" if max(r["r"] for r in ranked) > 16 else "linear")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return _layout(fig, title, height=380)
