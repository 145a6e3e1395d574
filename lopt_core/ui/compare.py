"""Compare tab: the runs table, configurations with seeds pooled (both exported as CSV by a one-time link),
overlaid curves, the rank trade-off plot, score vs r and vs n, the n × r grid and the runs in parallel
coordinates, with the shipped atlas as a lighter layer beside runs of its own task and model. The task filter
opens on one task (the newest scored run's, else the atlas's first); "(all)" stays a choice."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from lopt_core.analysis import aggregate, shared_examples, tables
from lopt_core.errors import LoptError
from lopt_core.hosting import downloads
from lopt_core.hosting.safe_errors import ui_error, user_message
from lopt_core.plots import figures as plots
from lopt_core.plots import across_n, parallel
from lopt_core.sweeps import results_file
from lopt_core.ui.common import AppContext, asset_text, reference_rows, run_choices, runs_dataframe

ALL = aggregate.ALL
OVERLAY_HINT = "choose runs above to overlay their loss and accuracy curves"
POINT_COLUMNS = ["method", "n", "r", "trainable params", "accuracy (mean ± std)", "seeds", "task"]


def _row_or_empty(store, run_id) -> dict:
    try:
        return store.get(run_id)
    except KeyError:
        return {}


def shared_view(rows: list[dict], on: bool) -> tuple[list[dict], str, list[dict]]:
    """(the rows the plots draw, a note, the runs left out): as stored, with an offer where their test sets
    differ only in size; or re-scored on the test examples they share (analysis/shared_examples)."""
    why = shared_examples.describe(rows)
    if not on:
        offer = "are shared" in (why or "")
        return rows, (f"The runs were scored on different test sets ({why}): tick **on shared test examples** to "
                      f"compare them on the same ones." if offer else ""), []
    out, left = shared_examples.on_shared(rows)
    if not left:
        return out, "Scored on the test examples the runs share." if why else "", []
    names = ", ".join(r["run_id"][-6:] for r in left[:6]) + (" …" if len(left) > 6 else "")
    return out, (f"Scored on the test examples the runs share; {len(left)} run(s) recorded no per-example results "
                 f"and are left out ({names}): re-scoring evaluates them again in the background."), left


def points_dataframe(rows: list[dict]) -> pd.DataFrame:
    """One row per configuration, its seeds pooled."""
    recs = [{"method": plots.method_label(p.method), "n": p.n, "r": "" if p.r is None else p.r,
             "trainable params": p.trainable_params, "accuracy (mean ± std)": aggregate.fmt_acc(p), "seeds": p.seeds,
             "task": p.task} for p in aggregate.points(rows)]
    return pd.DataFrame(recs, columns=POINT_COLUMNS)


def build(ctx: AppContext):
    store = ctx.store
    gr.Markdown(asset_text("compare.md"))
    with gr.Row():
        task = gr.Dropdown([ALL], value=None, label="task", scale=1, elem_id="lopt-compare-task")
        model = gr.Dropdown([ALL], value=ALL, label="model", scale=1)
        n_fixed = gr.Dropdown([], value=None, label="n for accuracy vs r (blank = most common)", scale=1,
                              allow_custom_value=True)
        show_ref = gr.Checkbox(True, label="show the atlas", scale=0, min_width=180,
                               info=(f"shipped reference runs ({results_file.atlas_machine()})" if results_file.first_task()
                                     else "no atlas file in this build"), elem_id="lopt-show-reference")
        shared = gr.Checkbox(False, label="on shared test examples", scale=0, min_width=180,
                             info="re-score runs of one split on the test examples they all share",
                             elem_id="lopt-shared-examples")
        refresh = gr.Button("Refresh", scale=0, elem_id="lopt-compare-refresh")
        export = gr.Button("Export CSV", scale=0, elem_id="lopt-compare-export")
    export_link = gr.Markdown("", elem_id="lopt-compare-export-link")  # a one-time link (hosting/links.py)
    with gr.Row():
        shared_note = gr.Markdown("", elem_id="lopt-shared-note")
        rescore = gr.Button("Re-score the runs left out", visible=False, scale=0, elem_id="lopt-rescore")
    table = gr.Dataframe(runs_dataframe([]), label="All runs", interactive=False, max_height=320,
                         elem_id="lopt-runs-table")
    ref0 = reference_rows(True, results_file.first_task())
    with gr.Row():
        tradeoff = gr.Plot(plots.tradeoff_figure([], reference=ref0), label="Trade-off", elem_id="lopt-tradeoff")
        by_r = gr.Plot(plots.accuracy_vs_r_figure([], reference=ref0), label="Accuracy vs r", elem_id="lopt-by-r")
    with gr.Row():
        by_n = gr.Plot(across_n.accuracy_vs_n_figure([], reference=ref0), label="Score vs n", elem_id="lopt-by-n")
        heat = gr.Plot(across_n.heatmap_figure([], reference=ref0), label="n × r", elem_id="lopt-heat")
    configs = gr.Dataframe(points_dataframe([]), label="Configurations (seeds pooled)", interactive=False,
                           max_height=320, elem_id="lopt-configs-table")
    coords = gr.Plot(parallel.parallel_figure([]), label="Parallel coordinates", elem_id="lopt-parallel")
    overlay_sel = gr.Dropdown([], value=[], multiselect=True, label="Overlay the curves of these runs", allow_custom_value=True,
                              elem_id="lopt-overlay-select")
    overlay = gr.Plot(plots.curves_figure([], title="Overlaid curves", empty=OVERLAY_HINT), label="Overlay", elem_id="lopt-overlay")

    def on_refresh(task_, model_, n_, sel, show_=True, shared_=False, token=None, request: gr.Request = None):
        rows = ctx.runs(request, token)
        tasks = sorted({aggregate.task_label(r) for r in rows})
        models = sorted({r["model"] for r in rows})
        if task_ != ALL and task_ not in tasks + results_file.atlas_tasks():  # first look, or its runs are gone
            task_ = aggregate.default_task(rows, fallback=results_file.first_task())
        listed = aggregate.filter_rows(rows, task_, model_)
        shown, note, left = shared_view(listed, shared_)
        ref = reference_rows(show_, task_, model_, shown)
        ns = sorted({r["n"] for r in plots.scored(shown)})
        n_val = int(n_) if n_ not in (None, "") and int(n_) in ns else None
        ids = {r["run_id"] for r in rows}
        sel = [s for s in (sel or []) if s in ids]
        task_choices = sorted(set(tasks) | set(results_file.atlas_tasks()) | ({task_} - {None, ALL}))
        return (gr.update(choices=[ALL] + task_choices, value=task_),
                gr.update(choices=[ALL] + models),
                gr.update(choices=ns, value=n_val), runs_dataframe(listed), plots.tradeoff_figure(shown, reference=ref),
                plots.accuracy_vs_r_figure(shown, n=n_val, reference=ref), gr.update(choices=run_choices(rows), value=sel),
                points_dataframe(shown), across_n.accuracy_vs_n_figure(shown, reference=ref),
                across_n.heatmap_figure(shown, reference=ref), parallel.parallel_figure(shown), note,
                gr.update(visible=bool(left)))

    outs = [task, model, n_fixed, table, tradeoff, by_r, overlay_sel, configs, by_n, heat, coords, shared_note, rescore]
    ins = ctx.inputs(task, model, n_fixed, overlay_sel, show_ref, shared)
    refresh.click(on_refresh, ins, outs, api_name="compare")
    for c in (task, model, n_fixed, show_ref, shared):
        c.input(on_refresh, ins, outs, api_name=False)

    def on_rescore(task_, model_, token=None, request: gr.Request = None):
        """Queue an evaluation (which records per-example results) of each of this visitor's runs the shared
        view left out, once: a run whose evaluation is already queued or running is not queued again."""
        who = ctx.visitor(request, token)
        _, _, left = shared_view(aggregate.filter_rows(ctx.runs(request, token), task_, model_), True)
        busy = {a["run_id"] for a in store.list_analyses(kind="evaluate") if a["state"] in ("queued", "running")}
        queued, refused = 0, []
        for r in [r for r in left if who.owns(r) and r["run_id"] not in busy]:
            try:
                ctx.jobs.submit_analysis("evaluate", r["run_id"], {}, who)
                queued += 1
            except LoptError as e:
                refused.append(f"{r['run_id']}: {user_message(e)}")
        return (f"Queued {queued} re-scoring(s); press Refresh when they are done." +
                ("".join(f"<br>⚠️ {x}" for x in refused[:5])))

    rescore.click(on_rescore, ctx.inputs(task, model), shared_note, api_name="compare_rescore")

    def on_export(task_, model_, shared_=False, token=None, request: gr.Request = None):
        """runs.csv and configurations.csv of the runs this page shows (re-scored on shared examples where the page
        is), zipped, as a one-time link for this page."""
        shown = shared_view(aggregate.filter_rows(ctx.runs(request, token), task_, model_), shared_)[0]
        try:
            return ctx.link_to(downloads.zipped("tables", "compare", "lopt-tables",
                                                lambda folder: tables.write_tables(shown, folder)), request)
        except LoptError as e:
            raise ui_error(e) from None

    export.click(on_export, ctx.inputs(task, model, shared), export_link, api_name="compare_export")

    def on_overlay(sel, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        sel = [s for s in list(sel or [])[:8] if who.sees(_row_or_empty(store, s))]
        return plots.curves_figure(plots.series_from_store(store, sel), title="Overlaid curves", empty=OVERLAY_HINT)

    overlay_sel.change(on_overlay, ctx.inputs(overlay_sel), overlay, api_name="overlay")
    return {"refresh": (on_refresh, ins, outs), "export": on_export, "rescore": on_rescore}
