"""Runs tab: details of one run, evaluate it now, delete it, download its artifact folder, export a PEFT adapter,
run it again."""
from __future__ import annotations

import time

import gradio as gr

from lopt_core.jobs import analyses
from lopt_core.hosting import downloads
from lopt_core.config import ConfigError
from lopt_core.analysis.run_summary import summary_markdown
from lopt_core.hosting.safe_errors import scrub, shown_record, ui_error
from lopt_core.ui.common import STATUS_TICK_S, AppContext, asset_text, fmt_seconds, run_choices
from lopt_core.errors import LoptError


def _forgetting(on_deleted):
    """A deleted run's downloads and exports go with it (downloads.forget), then the caller's own hook."""
    def forget(run_id):
        downloads.forget(run_id)
        if on_deleted:
            on_deleted(run_id)
    return forget


def build(ctx: AppContext, on_deleted=None):
    store, jobs = ctx.store, ctx.jobs
    on_deleted = _forgetting(on_deleted)
    gr.Markdown(asset_text("runs.md"))
    with gr.Row():
        run = gr.Dropdown([], value=None, label="Run", scale=4, elem_id="lopt-runs-select",
                          allow_custom_value=True)
        refresh = gr.Button("Refresh", scale=0)
    with gr.Row():
        download = gr.Button("Download artifact folder (.zip)")
        export = gr.Button("Export PEFT prompt-tuning adapter (.zip)")
        evaluate = gr.Button("Evaluate now", elem_id="lopt-runs-evaluate")
        rerun = gr.Button("Run again with the same settings")
        delete = gr.Button("Delete run", variant="stop")
    status = gr.Markdown("", elem_id="lopt-runs-status")
    file = gr.Markdown("", elem_id="lopt-runs-file")  # a one-time link (hosting/links.py), never a served path
    details = gr.Markdown("", elem_id="lopt-runs-details")
    with gr.Accordion("Raw record (JSON)", open=False):
        raw = gr.JSON(label="run record as stored", elem_id="lopt-runs-raw")

    def _row(run_id, who, action=None):
        """The run, when this visitor may see it (and, given an action, change it): JobManager.run_for."""
        try:
            return jobs.run_for(run_id, who, action)
        except LoptError as e:
            raise ui_error(e) from None

    def _get(run_id, who):
        try:
            r = store.get(run_id) if run_id else None
        except KeyError:
            return None
        return r if r is not None and who.sees(r) else None

    def on_select(run_id, token=None, request: gr.Request = None):
        r = _get(run_id, ctx.visitor(request, token))
        return summary_markdown(r) if r else ""

    def on_raw(run_id, token=None, request: gr.Request = None):
        r = _get(run_id, ctx.visitor(request, token))
        return None if r is None else shown_record({k: r.get(k) for k in (
            "run_id", "state", "error", "model", "task", "method", "n", "r", "trainable_params", "accuracy",
            "zero_shot_accuracy", "train_seconds", "steps_done", "artifact_dir", "sweep_id", "config", "result")},
            getattr(ctx.limits, "public", False))  # no server path on a public host

    def on_refresh(run_id, token=None, request: gr.Request = None):
        rows = ctx.runs(request, token)
        ids = {r["run_id"] for r in rows}
        value = run_id if run_id in ids else None
        return gr.update(choices=run_choices(rows), value=value), on_select(value, token, request)

    refresh.click(on_refresh, ctx.inputs(run), [run, details], api_name="runs")
    run.change(on_select, ctx.inputs(run), details, api_name=False)
    details.change(on_raw, ctx.inputs(run), raw, api_name=False)  # the raw record follows the summary

    def on_download(run_id, token=None, request: gr.Request = None):
        try:
            zipped = jobs.download(run_id, ctx.visitor(request, token))
            return ctx.link_to(zipped, request), f"Artifact folder of {run_id} zipped."
        except LoptError as e:
            raise ui_error(e) from None

    def on_export(run_id, token=None, request: gr.Request = None):
        try:
            zipped = jobs.export(run_id, ctx.visitor(request, token))
            link = ctx.link_to(zipped, request)
        except LoptError as e:
            raise ui_error(e) from None
        return link, (f"PEFT adapter written: unzip, then "
                      f"`PeftModel.from_pretrained(base_model, '{run_id}-peft')`.")

    def on_delete(run_id, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        _row(run_id, who)
        try:  # its row, its artifact folder, its upload if the last user (ValueError: NotYours, still running)
            said = jobs.delete(run_id, who)
        except (ValueError, KeyError) as e:
            raise ui_error(e) from None
        if on_deleted:
            on_deleted(run_id)
        choice, det = on_refresh(None, token, request)
        return choice, det, said, ""

    def on_rerun(run_id, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        _row(run_id, who)
        try:
            new = jobs.rerun(run_id, who)
        except (LoptError, ValueError, KeyError) as e:  # KeyError: deleted meanwhile
            raise ui_error(e) from None
        return f"Queued {new} with the settings of {run_id}; watch it in the Train tab."

    def on_evaluate(run_id, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        _row(run_id, who)
        try:
            aid = jobs.submit_analysis("evaluate", run_id, who=who)
        except (analyses.AnalysisError, ConfigError, KeyError) as e:
            raise ui_error(e) from None
        return f"Evaluating {run_id} in the background ({aid}); its accuracy appears here when it is done."

    def evaluation_status(run_id, token=None, request: gr.Request = None):
        """While an 'evaluate now' job of the shown run is under way: its progress; when it ends: the summary."""
        seen = run_id and _get(run_id, ctx.visitor(request, token)) is not None  # another's reads as none
        found = store.list_analyses(run_id=run_id, kind="evaluate") if seen else []
        if not found or found[-1]["state"] not in ("queued", "running") and found[-1]["updated"] < time.time() - 3:
            return gr.skip(), gr.skip()
        a, p = found[-1], analyses.progress(found[-1])
        if a["state"] == "queued":
            return f"Evaluation of {run_id} queued: it starts when no other job is running.", gr.skip()
        if a["state"] == "running":
            eta = f" · ETA {fmt_seconds(p['eta_s'])}" if p["eta_s"] is not None else ""
            return f"Evaluating {run_id}: {p['done']}/{p['total'] or '?'} test examples{eta}", gr.skip()
        if a["state"] == "done":
            return (f"Evaluated {run_id}: accuracy {a['result']['accuracy']:.3f} on "
                    f"{a['result']['eval_examples']} examples (recorded)."), on_select(run_id, token, request)
        return f"⚠️ Evaluation of {run_id} {a['state']}: {scrub(a.get('error'))}", gr.skip()

    evaluate.click(on_evaluate, ctx.inputs(run), status, api_name="evaluate")
    timer = gr.Timer(STATUS_TICK_S, active=False)  # ticks only while this tab is shown (app.py)
    timer.tick(evaluation_status, ctx.inputs(run), [status, details], api_name=False, show_progress="hidden")
    download.click(on_download, ctx.inputs(run), [file, status], api_name="download")
    export.click(on_export, ctx.inputs(run), [file, status], api_name="export")
    delete.click(on_delete, ctx.inputs(run), [run, details, status, file], api_name="delete")
    rerun.click(on_rerun, ctx.inputs(run), status, api_name="rerun")
    return {"run": run, "on_refresh": on_refresh, "timer": timer, "details": details, "raw": raw, "on_raw": on_raw}
