"""Rank tab: is a trained prompt low-rank? Spectra of several runs, the truncation curve (a background job) and
each prompt row's nearest tokens. Each view calls the same lopt_core function as its CLI command
(`spectrum`, `truncate`, `nearest`)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from lopt_core.jobs import analyses
from lopt_core.analysis import nearest, spectrum, truncate
from lopt_core.plots import rank as rank_plots
from lopt_core.config import ConfigError
from lopt_core.hosting.safe_errors import scrub, ui_error, user_message
from lopt_core.ui.common import STATUS_TICK_S, AppContext, asset_text, fmt_seconds, run_choices
from lopt_core.errors import LoptError

SPECTRUM_COLUMNS = ["run", "prompt", "n × d", "numerical rank", "effective rank", "energy in top 1", "energy in top 5"]


def spectrum_view(store, run_ids) -> tuple:
    """(figure, table, message) for the chosen runs; a run that cannot be analysed is named in the message."""
    specs, problems = [], []
    for rid in list(run_ids or [])[:8]:
        try:
            specs.append(spectrum.of_run(store.get(rid)))
        except (LoptError, KeyError) as e:
            problems.append(user_message(e))
    table = pd.DataFrame([{"run": s.run_id, "prompt": s.label, "n × d": f"{s.n} × {s.d}",
                           "numerical rank": s.numerical_rank, "effective rank": round(s.effective_rank, 3),
                           "energy in top 1": round(s.energy(1), 3), "energy in top 5": round(s.energy(5), 3)}
                          for s in specs], columns=SPECTRUM_COLUMNS)
    return rank_plots.spectrum_figure(specs), table, "\n".join(f"⚠️ {p}" for p in problems)


def _exists(store, run_id) -> bool:
    try:
        store.get(run_id)
        return True
    except KeyError:
        return False


def _visible(store, who, run_id) -> bool:
    try:
        return who.sees(store.get(run_id))
    except KeyError:
        return False


def truncation_status(a: dict | None) -> str:
    if a is None:
        return "No truncation curve for this run yet: choose ranks and press **Compute**."
    p = analyses.progress(a)
    if a["state"] == "queued":
        return f"{a['analysis_id']}: queued (it starts when no other job is running)"
    if a["state"] == "running":
        done = f"{p['done']}/{p['total']} evaluations of test examples" if p["total"] else "loading model and data"
        eta = f" · ETA {fmt_seconds(p['eta_s'])}" if p["eta_s"] is not None else ""
        return f"{a['analysis_id']}: running · {done}{eta}"
    if a["state"] == "done":
        r = a["result"]
        return (f"{a['analysis_id']}: done in {fmt_seconds(r['seconds'])} on {r['eval_examples']} test examples; "
                f"full prompt {r['full_accuracy']:.3f}")
    return f"⚠️ {a['analysis_id']}: {a['state']}: {scrub(a.get('error'))}"


def latest_truncation(store, run_id) -> dict | None:
    found = store.list_analyses(run_id=run_id, kind="truncate") if run_id else []
    return found[-1] if found else None


def build(ctx: AppContext):
    store, jobs = ctx.store, ctx.jobs
    gr.Markdown(asset_text("rank.md"))
    with gr.Row():
        refresh = gr.Button("Refresh run lists", scale=0, elem_id="lopt-rank-refresh")
    gr.Markdown("### Spectrum")
    spec_runs = gr.Dropdown([], value=[], multiselect=True, max_choices=8, allow_custom_value=True,
                            label="Runs to overlay (finished prompt runs)", elem_id="lopt-spectrum-runs")
    spec_msg = gr.Markdown("", elem_id="lopt-spectrum-msg")
    spec_fig = gr.Plot(rank_plots.spectrum_figure([]), elem_id="lopt-spectrum")
    spec_table = gr.Dataframe(pd.DataFrame(columns=SPECTRUM_COLUMNS), interactive=False, elem_id="lopt-spectrum-table")

    gr.Markdown("### Truncation curve")
    with gr.Row():
        trunc_run = gr.Dropdown([], value=None, label="Run", allow_custom_value=True, scale=3,
                                elem_id="lopt-trunc-run")
        ranks = gr.Textbox("", label="ranks k (blank: 1, 2, 3, 5, 8, … up to n)", scale=2, elem_id="lopt-trunc-ranks")
        eval_size = gr.Textbox(str(truncate.DEFAULT_EVAL_SIZE), label="test examples (0 = all)", scale=1,
                               elem_id="lopt-trunc-size")
        go = gr.Button("Compute", variant="primary", scale=0, elem_id="lopt-trunc-go")
    trunc_status = gr.Markdown(truncation_status(None), elem_id="lopt-trunc-status")
    trunc_fig = gr.Plot(rank_plots.truncation_figure(None), elem_id="lopt-trunc-fig")

    gr.Markdown("### Nearest tokens")
    with gr.Row():
        near_run = gr.Dropdown([], value=None, label="Run", allow_custom_value=True, scale=3, elem_id="lopt-near-run")
        k = gr.Slider(1, 10, value=5, step=1, label="tokens per row", scale=1)
        near_go = gr.Button("Show", scale=0, elem_id="lopt-near-go")
    near_table = gr.Dataframe(pd.DataFrame(), interactive=False, elem_id="lopt-near-table")
    timer = gr.Timer(STATUS_TICK_S, active=False)  # ticks only while this tab is shown (app.py)

    def on_refresh(sel, tr, nr, token=None, request: gr.Request = None):
        rows = truncate.prompt_runs(ctx.runs(request, token))
        ch = run_choices(rows)
        ids = {r["run_id"] for r in rows}
        keep = lambda v: v if v in ids else None  # noqa: E731
        return (gr.update(choices=ch, value=[s for s in (sel or []) if s in ids]), gr.update(choices=ch, value=keep(tr)),
                gr.update(choices=ch, value=keep(nr)))

    refresh.click(on_refresh, ctx.inputs(spec_runs, trunc_run, near_run), [spec_runs, trunc_run, near_run],
                  api_name="rank_runs")

    def seen(ids, token, request) -> list:
        """The run ids among `ids` this visitor may look at (another visitor's private run reads as missing)."""
        who = ctx.visitor(request, token)
        return [i for i in ids if _visible(store, who, i)]

    def on_spectrum(ids, token=None, request: gr.Request = None):
        return spectrum_view(store, seen(ids or [], token, request) + [i for i in ids or [] if not _exists(store, i)])

    spec_runs.change(on_spectrum, ctx.inputs(spec_runs), [spec_fig, spec_table, spec_msg], api_name="spectrum")

    def show_truncation(run_id, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        a = latest_truncation(store, run_id) if run_id and _visible(store, who, run_id) else None
        fig = gr.skip()
        if a is not None and a["state"] == "done":
            fig = rank_plots.truncation_figure(a["result"],
                                               truncate.trained_beside(who.visible(store.list()), a["result"]))
        elif a is None:
            fig = rank_plots.truncation_figure(None)
        return truncation_status(a), fig

    def on_compute(run_id, ranks_, size, token=None, request: gr.Request = None):
        if not run_id:
            raise gr.Error("choose a run first")
        try:
            n_eval = int(str(size).strip() or truncate.DEFAULT_EVAL_SIZE)
        except ValueError:
            raise gr.Error(f"test examples must be a whole number (0 = all), got {size!r}") from None
        try:
            jobs.submit_analysis("truncate", run_id, {"ranks": ranks_, "eval_size": n_eval},
                                 who=ctx.visitor(request, token))
        except (spectrum.AnalysisError, ConfigError, KeyError) as e:
            raise ui_error(e) from None
        return show_truncation(run_id, token, request)

    go.click(on_compute, ctx.inputs(trunc_run, ranks, eval_size), [trunc_status, trunc_fig], api_name="truncate")
    trunc_run.change(show_truncation, ctx.inputs(trunc_run), [trunc_status, trunc_fig], api_name=False)

    def on_tick(run_id, status_now, token=None, request: gr.Request = None):
        a = latest_truncation(store, run_id) if run_id and _visible(store, ctx.visitor(request, token), run_id) else None
        if a is None or (a["state"] not in ("queued", "running") and status_now == truncation_status(a)):
            return gr.skip(), gr.skip()
        return show_truncation(run_id, token, request)

    timer.tick(on_tick, ctx.inputs(trunc_run, trunc_status), [trunc_status, trunc_fig], api_name=False,
               show_progress="hidden")

    def on_nearest(run_id, k_, token=None, request: gr.Request = None):
        if not run_id:
            raise gr.Error("choose a run first")
        try:
            if not seen([run_id], token, request):
                raise KeyError(f"no run {run_id!r}")
            return pd.DataFrame(nearest.as_table(nearest.of_run(store.get(run_id), int(k_))))
        except (spectrum.AnalysisError, KeyError, ValueError) as e:
            raise ui_error(e) from None

    near_go.click(on_nearest, ctx.inputs(near_run, k), near_table, api_name="nearest")
    return {"timer": timer, "refresh": (on_refresh, ctx.inputs(spec_runs, trunc_run, near_run), [spec_runs, trunc_run, near_run])}
