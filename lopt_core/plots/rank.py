"""Figures for the rank views: prompt spectra overlaid, and the truncation curve beside runs trained at those
ranks. Plain data in (spectrum.Spectrum, truncation results, store rows), plotly figures out."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lopt_core.plots.figures import RUN_COLORS, _layout, empty_figure, method_color, method_label


def spectrum_figure(specs: list, title: str = "Singular values of trained prompts") -> go.Figure:
    """Normalised singular values s_i / s_1 against i (log y), one line per run."""
    if not specs:
        return empty_figure("choose finished prompt runs above to see their spectra", title)
    fig = go.Figure()
    for i, s in enumerate(specs):
        ys = [max(v, 1e-12) for v in s.normalised]  # log axis: exact zeros drawn at the floor
        name = f"{s.label} · {s.run_id[-6:]} (rank {s.numerical_rank}, eff. {s.effective_rank:.1f})"
        fig.add_trace(go.Scatter(
            x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers", name=name,
            line=dict(color=RUN_COLORS[i % len(RUN_COLORS)], width=2), marker=dict(size=6),
            hovertemplate="i=%{x}<br>s_i / s_1 = %{y:.3g}<extra>" + name + "</extra>"))
    fig.update_xaxes(title_text="singular value index i")
    fig.update_yaxes(title_text="s_i / s_1 (log scale)", type="log", exponentformat="power")
    return _layout(fig, title, height=400)


def truncation_figure(result: dict | None, trained: list[dict] | None = None,
                      title: str = "Truncation curve: accuracy of the top-k singular directions") -> go.Figure:
    """Left: accuracy against k; right: against the parameters a rank-k factorisation needs (k(n+d)), with the
    full prompt (n*d) and runs *trained* at rank r (their own trainable count) on the same axes."""
    if not result:
        return empty_figure("choose a finished prompt run and press Compute", title)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy vs kept rank k", "accuracy vs parameters"),
                        horizontal_spacing=0.1)
    pts = result["points"]
    color = method_color(result["method"])
    name = f"truncated {method_label(result['method'])} n={result['n']} · {result['run_id'][-6:]}"
    hover = "k=%{customdata}<br>accuracy %{y:.3f}<extra>truncated</extra>"
    ks, accs, params = [p["k"] for p in pts], [p["accuracy"] for p in pts], [p["params"] for p in pts]
    fig.add_trace(go.Scatter(x=ks, y=accs, mode="lines+markers", name=name, line=dict(color=color, width=2),
                             customdata=ks, hovertemplate=hover), row=1, col=1)
    fig.add_trace(go.Scatter(x=params, y=accs, mode="lines+markers", name=name, showlegend=False,
                             line=dict(color=color, width=2), customdata=ks, hovertemplate=hover), row=1, col=2)
    full = result["full_accuracy"]
    fig.add_hline(y=full, line=dict(dash="dash", color="#444"), row=1, col=1,
                  annotation_text=f"full prompt {full:.3f}", annotation_position="bottom right")
    fig.add_hline(y=full, line=dict(dash="dash", color="#444"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[result["prompt_params"]], y=[full], mode="markers", name="full prompt (n·d)",
                             marker=dict(size=11, symbol="star", color="#444")), row=1, col=2)
    for method in sorted({r["method"] for r in trained or []}):
        rows = sorted((r for r in trained if r["method"] == method), key=lambda r: r["r"])
        text = [f"{method_label(method)} trained at r={r['r']} · {r['run_id'][-6:]}<br>accuracy {r['accuracy']:.3f} "
                f"on {(r.get('result') or {}).get('eval_examples', '?')} examples" for r in rows]
        for col, xs in ((1, [r["r"] for r in rows]), (2, [r["trainable_params"] for r in rows])):
            fig.add_trace(go.Scatter(x=xs, y=[r["accuracy"] for r in rows], mode="markers",
                                     name=f"{method_label(method)} trained at rank r", showlegend=col == 1,
                                     legendgroup=method, marker=dict(size=11, symbol="diamond",
                                                                     color=method_color(method),
                                                                     line=dict(width=1, color="#222")),
                                     text=text, hovertemplate="%{text}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="kept rank k (or trained rank r)", row=1, col=1)
    fig.update_xaxes(title_text="parameters (log scale)", type="log", row=1, col=2)
    fig.update_yaxes(title_text=f"accuracy ({result['eval_examples']} test examples)", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return _layout(fig, title, height=420)
