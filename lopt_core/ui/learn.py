"""Learn tab: what a soft prompt is, each method's formula at live n, r and d with its count, a chart of
parameters against r, and where low-rank methods stop being cheaper (numbers from lopt_core.analysis.learn)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from lopt_core.analysis import learn
from lopt_core.methods.base import RANK_CAP
from lopt_core.ui.common import asset_text, default_model, model_choices

COLUMNS = ["method", "formula", "with these numbers", "trainable params", "vs reference", "note"]


def table_dataframe(rows: list[dict]) -> pd.DataFrame:
    recs = [{"method": r["label"], "formula": r["formula"], "with these numbers": r["live"],
             "trainable params": "–" if r["count"] is None else f"{r['count']:,}",
             "vs reference": "reference" if r["reference"] else learn.ratio_text(r["ratio"]),
             "note": r["note"]} for r in rows]
    return pd.DataFrame(recs, columns=COLUMNS)


def view(model, n, r):
    """(Markdown, table, figure) for a model (blank: the offline default's d, no peft counts), n and r."""
    n, r = int(n), int(r)
    model = (model or "").strip() or None
    d, note = learn.model_d(model)
    if note:
        model = None
    md = learn.summary_markdown(n, r, d, model) + (f"\n\n⚠️ {note}" if note else "")
    return md, table_dataframe(learn.parameter_table(n, r, d, model)), learn.figure(n, r, d, model, RANK_CAP)


def build(ctx, tab=None):
    gr.Markdown(asset_text("learn.md"))
    with gr.Row():
        model = gr.Dropdown(model_choices(ctx.limits) if ctx else [], value=default_model(ctx.limits) if ctx else None,
                            label="model (its width is d)", allow_custom_value=True, scale=2,
                            elem_id="lopt-learn-model")
        n = gr.Slider(1, 128, value=20, step=1, label="n (prompt length)", scale=2, elem_id="lopt-learn-n")
        r = gr.Slider(1, RANK_CAP, value=5, step=1, label="r (rank)", scale=2, elem_id="lopt-learn-r")
    md0, table0, fig0 = view(None, 20, 5)  # no config read at start-up: the page fills in with its model on view
    summary = gr.Markdown(md0, elem_id="lopt-learn-summary")
    with gr.Row():
        chart = gr.Plot(fig0, label="Parameters against r", elem_id="lopt-learn-chart")
    table = gr.Dataframe(table0, label="Every method at these numbers", interactive=False, elem_id="lopt-learn-table")
    outs = [summary, table, chart]
    model.change(view, [model, n, r], outs, api_name="learn")
    for s in (n, r):
        s.release(view, [model, n, r], outs, api_name=False)
    if tab is not None:
        tab.select(view, [model, n, r], outs, api_name=False)
    return {"update": view, "model": model, "n": n, "r": r, "outputs": outs}
