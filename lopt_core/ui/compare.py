"""Compare tab: the runs table, overlaid curves, the rank trade-off plot and accuracy vs r."""
from __future__ import annotations

import gradio as gr

from .. import plots
from .common import AppContext, asset_text, run_choices, runs_dataframe

ALL = "(all)"
OVERLAY_HINT = "choose runs above to overlay their loss and accuracy curves"


def _filter(rows, task, model):
    return [r for r in rows if (task in (None, ALL) or r["task"] == task) and (model in (None, ALL) or r["model"] == model)]


def build(ctx: AppContext):
    store = ctx.store
    gr.Markdown(asset_text("compare.md"))
    with gr.Row():
        task = gr.Dropdown([ALL], value=ALL, label="task", scale=1)
        model = gr.Dropdown([ALL], value=ALL, label="model", scale=1)
        n_fixed = gr.Dropdown([], value=None, label="n for accuracy vs r (blank = most common)", scale=1,
                              allow_custom_value=True)
        refresh = gr.Button("Refresh", scale=0, elem_id="lopt-compare-refresh")
    table = gr.Dataframe(runs_dataframe([]), label="All runs", interactive=False, max_height=320,
                         elem_id="lopt-runs-table")
    with gr.Row():
        tradeoff = gr.Plot(plots.tradeoff_figure([]), label="Trade-off", elem_id="lopt-tradeoff")
        by_r = gr.Plot(plots.accuracy_vs_r_figure([]), label="Accuracy vs r", elem_id="lopt-by-r")
    overlay_sel = gr.Dropdown([], value=[], multiselect=True, label="Overlay the curves of these runs", allow_custom_value=True,
                              elem_id="lopt-overlay-select")
    overlay = gr.Plot(plots.curves_figure([], title="Overlaid curves", empty=OVERLAY_HINT), label="Overlay", elem_id="lopt-overlay")

    def on_refresh(task_, model_, n_, sel):
        rows = store.list()
        tasks = sorted({r["task"] for r in rows})
        models = sorted({r["model"] for r in rows})
        shown = _filter(rows, task_, model_)
        ns = sorted({r["n"] for r in plots.scored(shown)})
        n_val = int(n_) if n_ not in (None, "") and int(n_) in ns else None
        ids = {r["run_id"] for r in rows}
        sel = [s for s in (sel or []) if s in ids]
        return (gr.update(choices=[ALL] + tasks), gr.update(choices=[ALL] + models),
                gr.update(choices=ns, value=n_val), runs_dataframe(shown), plots.tradeoff_figure(shown),
                plots.accuracy_vs_r_figure(shown, n=n_val), gr.update(choices=run_choices(rows), value=sel))

    outs = [task, model, n_fixed, table, tradeoff, by_r, overlay_sel]
    ins = [task, model, n_fixed, overlay_sel]
    refresh.click(on_refresh, ins, outs, api_name="compare")
    for c in (task, model, n_fixed):
        c.input(on_refresh, ins, outs, api_name=False)

    def on_overlay(sel):
        sel = list(sel or [])[:8]
        return plots.curves_figure(plots.series_from_store(store, sel), title="Overlaid curves", empty=OVERLAY_HINT)

    overlay_sel.change(on_overlay, overlay_sel, overlay, api_name="overlay")
    return {"refresh": (on_refresh, ins, outs)}
