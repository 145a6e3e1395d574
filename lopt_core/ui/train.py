"""Train tab: pick model/task/method/n/r and knobs, see the parameter count live, queue runs, watch curves."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import gradio as gr

from .. import paths, plots
from ..config import ConfigError, RunConfig
from ..hosting import HostingError
from ..jobs import run_progress
from ..runs import count_params
from ..methods import METHODS
from .common import AppContext, default_model, fmt_seconds, method_choices, model_choices, run_choices, \
    runs_dataframe, task_choices



# ---------------------------------------------------------------- pure helpers (tested through the app)

def param_readout(model: str, method: str, n, r) -> str:
    try:
        n, r = int(n), int(r)
        k = count_params(method, n, r, model)
        pt = count_params("prompt_tuning", n, r, model)
    except Exception as e:  # an unavailable model or an impossible shape: say so, never crash
        return f"<div class='lopt-readout'>parameter count unavailable: {e}</div>"
    label = METHODS[method].label
    if method == "prompt_tuning":
        rel = "the reference: one trainable vector per prompt token"
    elif k < pt:
        rel = f"<b>{pt / k:.1f}× fewer</b> than prompt tuning ({pt:,})"
    else:
        rel = f"<b>{k / pt:.1f}× more</b> than prompt tuning ({pt:,})"
    return (f"<div class='lopt-readout'><span class='lopt-big'>{k:,}</span> trainable · {rel}"
            f"<br><small>{label}: {METHODS[method].formula_text}, n={n}" + (f", r={r}" if METHODS[method].has_rank else "")
            + "</small></div>")


def _int(v, name: str, required: bool = True):
    if v is None or (isinstance(v, str) and v.strip() == ""):
        if required:
            raise ConfigError(f"{name} is required")
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {v!r}") from None
    if f != int(f):
        raise ConfigError(f"{name} must be a whole number, got {v!r}")
    return int(f)


def parse_lr(text) -> float | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return float(str(text).strip())
    except ValueError:
        raise ConfigError(f"learning rate must be a number such as 0.03, or blank for the method's default; "
                          f"got {text!r}") from None


def keep_upload(path: str, limits) -> str:
    """Copy an uploaded file out of Gradio's temporary cache so the worker (and a rerun) can read it later."""
    limits.check_upload(path)
    dst = paths.home() / "uploads" / f"{uuid.uuid4().hex[:8]}-{Path(path).name}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dst)
    return str(dst)


def build_config(ctx: AppContext, model, task, method, n, r, steps, batch_size, lr, eval_every, seed, eval_size,
                 upload, text_col, text_b_col, label_col) -> RunConfig:
    if not model:
        raise ConfigError("choose a model")
    if not task:
        raise ConfigError("choose a task")
    if method not in METHODS:
        raise ConfigError(f"choose a method ({', '.join(METHODS)})")
    kw = dict(model=str(model).strip(), task=task, method=method, n=_int(n, "prompt length n"),
              r=_int(r, "rank r"), steps=_int(steps, "steps"), batch_size=_int(batch_size, "batch size"),
              lr=parse_lr(lr), eval_every=_int(eval_every, "eval every"), seed=_int(seed, "seed"),
              eval_size=_int(eval_size, "eval examples"))
    if task == "file":
        if not upload:
            raise ConfigError("upload a CSV or JSONL file first (task 'Upload your own CSV/JSONL')")
        kw.update(data_file=keep_upload(upload if isinstance(upload, str) else upload.name, ctx.limits),
                  text_column=(text_col or "text").strip(), label_column=(label_col or "label").strip(),
                  text_b_column=(text_b_col or "").strip() or None)
    return RunConfig(**kw)


def progress_html(p: dict | None) -> str:
    if not p:
        return "<div class='lopt-progress-text'>No run yet. Press <b>Train</b>.</div>"
    pct = 100 * p["fraction"]
    bits = [f"<b>{p['phase']}</b>", f"step {p['step']}/{p['total']}"]
    if p["examples_per_s"]:
        bits.append(f"{p['examples_per_s']:.1f} examples/s")
    if p["eta_s"] is not None:
        bits.append(f"ETA {fmt_seconds(p['eta_s'])}")
    if p["accuracy"] is not None:
        bits.append(f"accuracy {p['accuracy']:.3f}")
    cls = {"failed": "bad", "interrupted": "bad", "stopped": "warn", "done": "ok"}.get(p["state"], "")
    return (f"<div class='lopt-progress {cls}'><div class='lopt-bar' style='width:{pct:.1f}%'></div></div>"
            f"<div class='lopt-progress-text' id='lopt-progress-text'>{p['run_id']} · {' · '.join(bits)}</div>")


# ---------------------------------------------------------------- the tab

def build(ctx: AppContext):
    store, jobs = ctx.store, ctx.jobs
    d = RunConfig()
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            model = gr.Dropdown(model_choices(ctx.limits), value=default_model(ctx.limits), label="Model",
                                allow_custom_value=ctx.limits.allowed_models is None,
                                info="offline ✓ = works with no network; or type a local model folder")
            task = gr.Dropdown(task_choices(), value="sst2", label="Task")
            with gr.Group(visible=False) as file_box:
                upload = gr.File(label="CSV / TSV / JSONL file", file_types=[".csv", ".tsv", ".jsonl", ".json"],
                                 type="filepath")
                with gr.Row():
                    text_col = gr.Textbox("text", label="text column")
                    text_b_col = gr.Textbox("", label="second text column (pairs, optional)")
                    label_col = gr.Textbox("label", label="label column")
            method = gr.Dropdown(method_choices(), value="lopt1", label="Method")
            n = gr.Slider(1, 100, value=d.n, step=1, label="prompt length n (virtual tokens)")
            r = gr.Slider(1, 64, value=d.r, step=1, label="rank r")
            readout = gr.HTML(param_readout(default_model(ctx.limits), "lopt1", d.n, d.r), elem_id="lopt-readout")
            with gr.Accordion("Training settings", open=False):
                with gr.Row():
                    steps = gr.Number(min(d.steps, ctx.limits.max_steps or d.steps), label="steps", precision=0,
                                      minimum=1, maximum=ctx.limits.max_steps)
                    batch_size = gr.Number(d.batch_size, label="batch size", precision=0, minimum=1)
                    lr = gr.Textbox("", label="learning rate", placeholder=f"blank = method default "
                                    f"({METHODS['lopt1'].default_lr:g})")
                with gr.Row():
                    eval_every = gr.Number(d.eval_every, label="evaluate every (steps, 0 = end only)", precision=0,
                                           minimum=0)
                    eval_size = gr.Number(d.eval_size, label="eval examples (0 = all)", precision=0, minimum=0)
                    seed = gr.Number(d.seed, label="seed", precision=0, minimum=0)
            with gr.Row():
                train_btn = gr.Button("Train", variant="primary", elem_id="lopt-train")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="lopt-stop")
            status = gr.Markdown("", elem_id="lopt-status")
        with gr.Column(scale=3, min_width=420):
            watch = gr.Dropdown(run_choices(store.list()), value=None, label="Run shown", elem_id="lopt-watch",
                                allow_custom_value=True)
            progress = gr.HTML(progress_html(None), elem_id="lopt-progress")
            error = gr.Markdown("", elem_id="lopt-error")
            curves = gr.Plot(plots.curves_figure([]), label="Live curves", elem_id="lopt-curves")
            queue = gr.Dataframe(runs_dataframe([]), label="Queue and recent runs", interactive=False, max_height=260,
                                 elem_id="lopt-queue")
    last = gr.State(None)
    timer = gr.Timer(1.0)

    # ---- callbacks
    def on_method(m, model_, n_, r_):
        return (gr.update(interactive=METHODS[m].has_rank),
                gr.update(placeholder=f"blank = method default ({METHODS[m].default_lr:g})"),
                param_readout(model_, m, n_, r_))

    method.change(on_method, [method, model, n, r], [r, lr, readout], api_name=False)
    for i, comp in enumerate((model, n, r)):
        comp.change(param_readout, [model, method, n, r], readout, api_name="params" if i == 0 else False,
                    show_progress="hidden")
    task.change(lambda t: gr.update(visible=t == "file"), task, file_box, api_name=False)

    def on_train(model, task, method, n, r, steps, batch_size, lr, eval_every, seed, eval_size, upload, text_column,
                 text_b_column, label_column):
        try:
            cfg = build_config(ctx, model, task, method, n, r, steps, batch_size, lr, eval_every, seed, eval_size,
                               upload, text_column, text_b_column, label_column)
            run_id = jobs.submit(cfg)
        except (ConfigError, HostingError, ValueError, OSError) as e:
            gr.Warning(str(e))
            return f"⚠️ **Not started:** {e}", gr.skip()
        ahead = len([q for q in jobs.queued() if q != run_id])
        note = f" ({ahead} run(s) ahead in the queue)" if ahead else ""
        return (f"Queued **{run_id}**{note}.",
                gr.update(choices=run_choices(store.list()), value=run_id))

    train_btn.click(on_train, [model, task, method, n, r, steps, batch_size, lr, eval_every, seed, eval_size,
                               upload, text_col, text_b_col, label_col], [status, watch], api_name="train")

    def on_stop(run_id):
        if not run_id:
            return "Nothing to stop: no run is shown."
        try:
            return jobs.stop(run_id)
        except KeyError as e:
            return f"⚠️ {e}"

    stop_btn.click(on_stop, watch, status, api_name="stop")

    def on_tick(run_id, last_sig):
        rows = store.list()
        table = runs_dataframe(rows[-12:])
        if not run_id:
            return gr.skip(), progress_html(None), "", table, last_sig, gr.skip()
        try:
            p = run_progress(store, run_id)
        except KeyError:
            return plots.curves_figure([]), progress_html(None), "", table, None, gr.skip()
        row = next((x for x in rows if x["run_id"] == run_id), None)
        n_acc = len(store.metrics(run_id, "accuracy"))
        sig = (run_id, p["step"], n_acc, p["state"])
        fig = gr.skip() if sig == last_sig else plots.curves_figure(plots.series_from_store(store, [run_id]),
                                                                     title=plots.run_name(row) if row else "")
        err = ""
        if p["state"] in ("failed", "interrupted") and p["error"]:
            err = f"**Run {p['state']}:** {p['error']}"
        # the run list's labels carry each run's state: relabel when the shown run's state changes
        relabel = last_sig is not None and last_sig[0] == run_id and last_sig[3] != p["state"]
        choices = gr.update(choices=run_choices(rows)) if relabel else gr.skip()
        return fig, progress_html(p), err, table, sig, choices

    timer.tick(on_tick, [watch, last], [curves, progress, error, queue, last, watch], api_name=False,
               show_progress="hidden")
    watch.change(lambda rid: on_tick(rid, None)[:5], watch, [curves, progress, error, queue, last], api_name="watch",
                 show_progress="hidden")
    return {"watch": watch}
