"""Train tab: pick model/task/method/n/r and knobs, see the parameter count live, queue runs, watch curves."""
from __future__ import annotations

import html
import json
import time
from concurrent.futures import wait
from pathlib import Path

import gradio as gr

from lopt_core.data import label_words as words_mod, preview as preview_mod, uploads
from lopt_core.hosting import model_access, upload_cache
from lopt_core.lm import embedded
from lopt_core.plots import figures as plots
from lopt_core import share
from lopt_core.config import ConfigError, RunConfig
from lopt_core.choices import Precision, values
from lopt_core.jobs.manager import run_progress
from lopt_core.lm import precision as precision_mod
from lopt_core.training.checks import Checked, check, check_method
from lopt_core.methods import METHODS, default_method, reference_method
from lopt_core.training.runs import count_params
from lopt_core.hosting.safe_errors import scrub, user_message
from lopt_core.store.sqlite import FINAL
from lopt_core.data.tasks import TaskError
from lopt_core.ui.shared_reads import SharedReads
from lopt_core.ui.common import (AppContext, atlas_figure, default_model, fmt_seconds, method_choices, model_choices,
                                  model_picker_args, run_choices, runs_dataframe, task_choices)
from lopt_core.errors import LoptError


# ---------------------------------------------------------------- pure helpers (tested in tests/test_ui_train.py)

_int = share.whole_number  # the Sweep tab reads its boxes the same way
parse_lr = share.parse_lr
REFERENCE = reference_method()  # counts are read against it
SHARED_TTL_S = 0.5  # what one page's tick read (runs, progress, curves) serves the others that ask this soon
CURVE_EVERY_S = 3.0  # a training run's curves are redrawn at most this often (progress every tick); an evaluation,
                     # a new state or another run shown redraws at once. Each redraw is a figure per watching page.


def model_line(model: str) -> str:
    """The chosen model's facts and licence, small, under the picker (lm/embedded.describe_name)."""
    return f"<small>{embedded.describe_name(model)}</small>"


def precision_line(model: str) -> str:
    """What auto means for this model on this machine, from the cached measurement (never measures here)."""
    try:
        v = precision_mod.decide(str(model).strip(), "auto", "auto", measure_now=False)
    except Exception:  # an unknown model: the readout above says why
        return ""
    if v is None:
        return "auto: not measured on this machine yet; the first run times fp32 against bf16 (a few seconds)"
    return f"auto → **{v.precision}** ({v.reason.removeprefix('auto: ')})"


def param_readout(model: str, method: str, n: int, r: int, limits=None) -> str:
    """Trainable parameters beside prompt tuning's; for an impossible shape (LoPT-1 with r > n) the message the
    run itself would fail with, from the method's own shape check, instead of a count for a run that cannot be.
    Given the host's limits, a model the host does not allow is named and never looked up (model_access)."""
    try:
        n, r = int(n), int(r)
        model = model_access.check(limits, model)
        check_method(RunConfig(model=str(model).strip(), method=method, n=n, r=r))
        k = count_params(method, n, r, model)
        pt = count_params(REFERENCE, n, r, model)
    except ConfigError as e:
        return f"<div class='lopt-readout'>⚠️ {html.escape(str(e))}</div>"
    except Exception as e:  # an unavailable model: say so (no server path), never crash
        return f"<div class='lopt-readout'>parameter count unavailable: {html.escape(user_message(e))}</div>"
    cls = METHODS[method]
    if cls.reference:
        rel = "the reference: one trainable vector per prompt token"
    elif k < pt:
        rel = f"<b>{pt / k:.1f}× fewer</b> than {METHODS[REFERENCE].label.lower()} ({pt:,})"
    else:
        rel = f"<b>{k / pt:.1f}× more</b> than {METHODS[REFERENCE].label.lower()} ({pt:,})"
    return (f"<div class='lopt-readout'><span class='lopt-big'>{k:,}</span> trainable · {rel}"
            f"<br><small>{cls.label}: {cls.formula_text}, n={n}" + (f", r={r}" if cls.has_rank else "")
            + "</small></div>")


def rank_slider(model: str, method: str, n, r) -> dict:
    """The r slider for this method and n: hidden where r plays no part, its maximum the method's own bound on
    this model (LoPT-1: r <= n), its value kept inside that bound."""
    cls = METHODS[method]
    try:
        top = share.rank_limit(method, int(n), model)
        value = min(max(1, int(r)), top)
    except (TypeError, ValueError):  # a half-typed n: leave the slider be
        return gr.update(visible=cls.has_rank)
    return gr.update(visible=cls.has_rank, maximum=top, value=value)


def active_run(rows: list[dict]) -> str | None:
    """The run a freshly opened page shows: the one training now, else the newest queued, else the latest."""
    for wanted in (("running",), ("queued",), None):
        pool = [r for r in rows if wanted is None or r["state"] in wanted]
        if pool:
            return max(pool, key=lambda r: r["created"])["run_id"]
    return None


def run_outcome(p: dict) -> str | None:
    """What the status line says about a run it spoke of (queued it, asked it to stop) once the run has moved
    on: how it ended, or that a stopped run's prompt is being evaluated; None while there is nothing new."""
    rid, at = p["run_id"], f"step {p['step']}/{p['total']}"
    if p["state"] == "running":
        return f"**{rid}** stopped at {at}; evaluating what it trained…" \
            if str(p["phase"]).startswith("evaluating the stopped") else None
    if p["state"] not in FINAL:
        return None
    if p["state"] in ("failed", "interrupted"):
        return f"**{rid}** {p['state']} at {at}: {scrub(p['error']) or 'no reason was recorded'}"
    metric = p.get("metric", "accuracy")
    acc = f"{metric} {p['accuracy']:.3f}" if p["accuracy"] is not None else \
        f"no {metric} (it ended before an evaluation)"
    return f"**{rid}** {'finished' if p['state'] == 'done' else 'stopped'} at {at}; {acc}"


def share_outputs(*values) -> tuple[str, str]:
    """The settings (in share.KEYS order) as a link's query, and the 'Link to these settings' line."""
    query = share.settings_to_query(dict(zip(share.KEYS, values)))
    return query, f"[Link to these settings](?{query}) · the address bar holds it too"


def link_settings(query, defaults: dict, limits) -> tuple[dict | None, str]:
    """The settings a page link asks for (None when it names none), and a status line naming its bad parameters."""
    if not any(k in share.KEYS for k in dict(query)):
        return None, ""
    settings, errors = share.settings_from_query(query, defaults, allowed_models=limits.allowed_models,
                                                 max_steps=limits.max_steps)
    if not errors:
        return settings, ""
    return settings, ("⚠️ **This link has settings that cannot be used**; their defaults are shown instead: "
                      + "; ".join(errors))


def follow(values: dict, limits=None) -> tuple:
    """What the settings (share.KEYS names) imply elsewhere in the form: the r slider (bound, visibility, value
    clamped), the learning rate's hint, the parameter readout, the link's query and its line. Given the host's
    limits, a model it does not allow is never looked up."""
    try:
        model_access.check(limits, values["model"])
        bound = rank_slider(values["model"], values["method"], values["n"], values["r"])
    except ConfigError:  # a model this host does not allow: its width is not read, the slider left be
        bound = gr.update(visible=METHODS[values["method"]].has_rank)
    values = {**values, "r": bound.get("value", values["r"])}
    hint = gr.update(placeholder=f"blank = method default ({METHODS[values['method']].default_lr:g})")
    return (bound, hint, param_readout(values["model"], values["method"], values["n"], values["r"], limits),
            *share_outputs(*(values[k] for k in share.KEYS)))


def form_defaults(limits) -> dict:
    """The Train form's first values, by share.KEYS name."""
    d = RunConfig()
    return dict(model=default_model(limits), task="sst2", method=default_method(), n=d.n, r=d.r,
                steps=min(d.steps, limits.max_steps or d.steps), batch_size=d.batch_size, lr="",
                eval_every=d.eval_every, eval_size=d.eval_size, seed=d.seed)


def upload_path(upload) -> tuple[str, str]:
    """(path of the uploaded file on the server, the user's own file name): Gradio keeps an upload in a
    temporary folder under its original name; a file object also says it as orig_name."""
    path = upload if isinstance(upload, str) else getattr(upload, "path", None) or upload.name
    return path, Path(getattr(upload, "orig_name", None) or path).name


def file_columns(text_col, text_b_col, label_col) -> tuple[str, str | None, str]:
    """The column boxes as (text, second text or None, label); a blank box is the default name."""
    return (text_col or "text").strip(), (text_b_col or "").strip() or None, (label_col or "label").strip()


def preview_table(p) -> dict:
    """The first rows of a previewed file, for the small table under the upload."""
    import pandas as pd
    return gr.update(value=pd.DataFrame(list(p.facts.head), columns=list(p.facts.head_columns)), visible=True)


def build_config(ctx: AppContext | None, model, task, method, n, r, steps, batch_size, lr, eval_every, seed,
                 eval_size, upload, text_col, text_b_col, label_col, label_words="", precision="auto") -> Checked:
    """The form as a checked RunConfig (training/checks.py: the one check, which submit trusts); every number
    is checked here first, so a bad one is named as the form names it."""
    if not model:
        raise ConfigError("choose a model")
    if not task:
        raise ConfigError("choose a task")
    if method not in METHODS:
        raise ConfigError(f"choose a method ({', '.join(METHODS)})")
    max_steps = ctx.limits.max_steps if ctx else None
    numbers = dict(n=n, r=r, steps=steps, batch_size=batch_size, eval_every=eval_every, seed=seed,
                   eval_size=eval_size)
    kw = dict(model=str(model).strip(), task=task, method=method, lr=parse_lr(lr), precision=precision or "auto",
              **{k: share.check_int(k, v, max_steps) for k, v in numbers.items()})
    if task != "file":
        return check(RunConfig(**kw), ctx.limits if ctx else None)
    if not upload:
        raise ConfigError("upload a CSV or JSONL file first (task 'Upload your own CSV/JSONL')")
    path, name = upload_path(upload)
    ctx.limits.check_upload(path)
    text, text_b, label = file_columns(text_col, text_b_col, label_col)
    cfg = RunConfig(**kw, data_file=path, text_column=text, text_b_column=text_b, label_column=label,
                    label_words=words_mod.parse(label_words))
    checked = check(cfg, ctx.limits)  # the file, its label words and the run's shape: only then is it kept
    cfg.data_file = uploads.keep(path, name)  # the same content, under the uploads folder
    return checked


def progress_html(p: dict | None) -> str:
    """The progress bar and its line: training steps, or, while an evaluation runs, its examples (the bar then
    fills with the evaluation and the ETA is the evaluation's)."""
    if not p:
        return "<div class='lopt-progress-text'>No run yet. Press <b>Train</b>.</div>"
    pct = 100 * p["fraction"]
    bits = [f"<b>{p['phase']}</b>"]
    if p.get("eval_total"):
        bits.append(f"evaluating {p['eval_done'] or 0}/{p['eval_total']} examples")
    else:
        bits.append(f"step {p['step']}/{p['total']}")
        if p["examples_per_s"]:
            bits.append(f"{p['examples_per_s']:.1f} examples/s")
    if p["eta_s"] is not None:
        bits.append(f"ETA {fmt_seconds(p['eta_s'])}")
    if p.get("slower"):
        bits.append(f"<span class='lopt-slow'>⚠ {p['slower']:.1f}× slower than this machine measured before: the "
                    f"host is busy (other runs or load), so times read here are longer than estimated</span>")
    if p["accuracy"] is not None:
        bits.append(f"{p.get('metric', 'accuracy')} {p['accuracy']:.3f}")
    cls = {"failed": "bad", "interrupted": "bad", "stopped": "warn", "done": "ok"}.get(p["state"], "")
    return (f"<div class='lopt-progress {cls}'><div class='lopt-bar' style='width:{pct:.1f}%'></div></div>"
            f"<div class='lopt-progress-text' id='lopt-progress-text'>{p['run_id']} · {' · '.join(bits)}</div>")


def queue_table(rows: list[dict]):
    """The newest dozen runs, for the table under the curves."""
    return runs_dataframe(rows[-12:])


def run_curves(store, run_id: str, row: dict | None, live: bool):
    """The shown run's loss and accuracy; a live run's step axis leaves room ahead."""
    series = plots.series_from_store(store, [run_id])
    for s in series:
        s["live"] = live
    return plots.curves_figure(series, title=plots.run_name(row) if row else "")


# ---------------------------------------------------------------- the tab

# keeps the address bar on the shown settings (other query parameters, such as Gradio's ?view=api, stay)
SYNC_URL_JS = """(query) => {
  const keys = %s;
  const url = new URL(window.location.href);
  const next = new URLSearchParams(query || "");
  for (const [k, v] of url.searchParams) if (!keys.includes(k)) next.set(k, v);
  history.replaceState(history.state, "", url.pathname + "?" + next.toString() + url.hash);
}""" % json.dumps(list(share.KEYS))


def build(ctx: AppContext):
    store, jobs = ctx.store, ctx.jobs
    first = form_defaults(ctx.limits)
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            model = gr.Dropdown(model_choices(ctx.limits), value=first["model"], label="Model",
                                **model_picker_args(ctx.limits))
            model_facts = gr.Markdown(model_line(first["model"]), elem_id="lopt-model-facts")
            task = gr.Dropdown(task_choices(), value=first["task"], label="Task")
            with gr.Group(visible=False) as file_box:
                upload = gr.File(label="CSV / TSV / JSONL file", file_types=[".csv", ".tsv", ".jsonl", ".json"],
                                 type="filepath")
                with gr.Row():
                    text_col = gr.Textbox("text", label="text column")
                    text_b_col = gr.Textbox("", label="second text column (pairs, optional)")
                    label_col = gr.Textbox("label", label="label column")
                label_words = gr.Textbox("", label="label words (comma-separated, one per class in the order "
                                         "below; derived for the model after the upload)", elem_id="lopt-label-words")
                file_preview = gr.Markdown("", elem_id="lopt-file-preview")
                file_head = gr.Dataframe(visible=False, interactive=False, max_height=200, label="first rows",
                                         elem_id="lopt-file-head")
            method = gr.Dropdown(method_choices(), value=first["method"], label="Method")
            n = gr.Slider(share.INT_FIELDS["n"].lo, share.INT_FIELDS["n"].hi, value=first["n"], step=1,
                          label="prompt length n (virtual tokens)", elem_id="lopt-n")
            # the widest bound here (an API call has no page load); each page load narrows it to the method's
            r = gr.Slider(1, share.INT_FIELDS["r"].hi, value=first["r"], step=1, label="rank r", elem_id="lopt-r",
                          visible=METHODS[first["method"]].has_rank)
            readout = gr.HTML(param_readout(first["model"], first["method"], first["n"], first["r"]),
                              elem_id="lopt-readout")
            with gr.Accordion("Training settings", open=False):
                # no minimum= and no precision=0 on the boxes: Gradio would refuse a bad number without its name, or
                # round 2.7 steps to 3; build_config refuses every non-whole number alike, naming the field
                with gr.Row():
                    steps = gr.Number(first["steps"], label="steps", precision=None)
                    batch_size = gr.Number(first["batch_size"], label="batch size", precision=None)
                    lr = gr.Textbox(first["lr"], label="learning rate", placeholder=f"blank = method default "
                                    f"({METHODS[first['method']].default_lr:g})")
                with gr.Row():
                    eval_every = gr.Number(first["eval_every"], label="evaluate every (steps, 0 = end only)",
                                           precision=None)
                    eval_size = gr.Number(first["eval_size"], label="eval examples (0 = all)", precision=None)
                    seed = gr.Number(first["seed"], label="seed", precision=None)
                with gr.Row():
                    prec = gr.Dropdown(values(Precision), value=Precision.AUTO.value, label="precision",
                                       elem_id="lopt-precision", info="auto: bf16 where it measured at least "
                                       f"{precision_mod.BF16_MIN_SPEEDUP}x faster on this machine, else fp32")
                    verdict = gr.Markdown(precision_line(first["model"]), elem_id="lopt-precision-verdict")
            with gr.Row():
                train_btn = gr.Button("Train", variant="primary", elem_id="lopt-train")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="lopt-stop")
            status = gr.Markdown("", elem_id="lopt-status")
            query0, line0 = share_outputs(*(first[k] for k in share.KEYS))
            link = gr.Markdown(line0, elem_id="lopt-share-link")
            share_query = gr.Textbox(query0, visible="hidden", elem_id="lopt-share-query")  # read by SYNC_URL_JS
        with gr.Column(scale=3, min_width=420):
            watch = gr.Dropdown(run_choices(ctx.runs()) if not ctx.limits.public else [], value=None,
                                label="Run shown", elem_id="lopt-watch",
                                allow_custom_value=True)
            progress = gr.HTML(progress_html(None), elem_id="lopt-progress")
            error = gr.Markdown("", elem_id="lopt-error")
            curves = gr.Plot(plots.curves_figure([]), label="Live curves", elem_id="lopt-curves")
            queue = gr.Dataframe(runs_dataframe([]), label="Queue and recent runs", interactive=False, max_height=260,
                                 elem_id="lopt-queue")
            atlas = gr.Plot(atlas_figure(first["task"], first["model"]), label="What the shipped atlas measured",
                            elem_id="lopt-train-atlas")
    last = gr.State(None)
    timer = gr.Timer(1.0)  # the page opens on this tab; app.py stops it while another tab is shown
    settings = dict(zip(share.KEYS, (model, task, method, n, r, steps, batch_size, lr, eval_every, eval_size, seed)))

    # ---- the form: a user's edit moves the r slider's bound, the readout and the link, and makes the status
    # line (which spoke of the last action) old news. On .input, not .change: the page load sets many
    # settings at once, and a .change fired half-way would carry the others' old values.
    def on_edit(*values):
        return (*follow(dict(zip(share.KEYS, values)), ctx.limits), "")

    # preprocess=False: an edit sent before the r slider's new bound reached the page must not fail on it
    # (Gradio's 'Value 10 is greater than maximum value 9'); follow() clamps r itself
    gr.on([c.input for c in (*settings.values(), text_col, text_b_col, label_col)], on_edit, list(settings.values()),
          [r, lr, readout, share_query, link, status], api_name=False, show_progress="hidden", preprocess=False)
    watch.input(lambda: "", None, status, api_name=False, show_progress="hidden")
    def params(model: str, method: str, n: int, r: int) -> str:
        """The parameter readout; on a public host only the allowed model names are looked up."""
        return param_readout(model, method, n, r, ctx.limits)

    gr.api(params, api_name="params")
    task.change(lambda t: gr.update(visible=t == "file"), task, file_box, api_name=False)
    model.change(precision_line, model, verdict, api_name=False, show_progress="hidden")
    model.change(model_line, model, model_facts, api_name=False, show_progress="hidden")
    gr.on([task.change, model.change], atlas_figure, [task, model], atlas, api_name=False, show_progress="hidden")

    # ---- an upload is checked off the request path (a large file is read in a child process) with progress;
    # its preview shows the first rows, the classes, the split and the label words, which fill the box
    def on_preview(upload, model, text_column, text_b_column, label_column, given=""):
        if not upload:
            yield "", gr.update(visible=False), gr.skip()
            return
        path, name = upload_path(upload)
        try:
            ctx.limits.check_upload(path)
            model = model_access.check(ctx.limits, model)  # a public host resolves only its allowed names
        except ConfigError as e:
            yield f"⚠️ **{name}**: {user_message(e)}", gr.update(visible=False), gr.skip()
            return
        except OSError as e:  # Gradio's temporary copy is gone
            yield f"⚠️ **{name}** could not be read ({user_message(e)}); upload it again", gr.update(visible=False), \
                gr.skip()
            return
        text, text_b, label = file_columns(text_column, text_b_column, label_column)
        job = preview_mod.start(path, text, label, text_b, model, words_mod.parse(given), name=name)
        while not job.future.done():
            yield job.line(), gr.skip(), gr.skip()
            wait([job.future], timeout=0.5)
        try:
            p = job.future.result()
        except (TaskError, OSError, ValueError) as e:
            yield f"⚠️ {user_message(e)}", gr.update(visible=False), gr.skip()
            return
        box = words_mod.show(p.label_words) if p.label_words and not given else gr.skip()
        yield p.markdown(), preview_table(p), box

    file_inputs = [upload, model, text_col, text_b_col, label_col]
    gr.on([upload.change, model.change, text_col.submit, text_col.blur, text_b_col.blur, label_col.submit,
           label_col.blur], on_preview, file_inputs, [file_preview, file_head, label_words], api_name="preview_file",
          show_progress="hidden", trigger_mode="always_last")
    gr.on([label_words.submit, label_words.blur], on_preview, [*file_inputs, label_words],
          [file_preview, file_head, label_words], api_name=False, show_progress="hidden", trigger_mode="always_last")
    share_query.change(None, share_query, None, js=SYNC_URL_JS)

    def on_train(model, task, method, n, r, steps, batch_size, lr, eval_every, seed, eval_size, upload, text_column,
                 text_b_column, label_column, label_words="", precision="auto", token=None,
                 request: gr.Request = None):
        who = ctx.visitor(request, token)
        cfg = None
        try:
            cfg = build_config(ctx, model, task, method, n, r, steps, batch_size, lr, eval_every, seed, eval_size,
                               upload, text_column, text_b_column, label_column, label_words, precision)
            run_id = jobs.submit(cfg, who)
        except (LoptError, ValueError, OSError) as e:
            if cfg is not None and cfg.config.data_file:  # kept, then refused (a full queue): keep no orphan copy
                uploads.release(store, cfg.config.data_file)
            msg = user_message(e)  # the message only: paths and tracebacks stay in the server log
            gr.Warning(msg)
            return f"⚠️ **Not started:** {msg}", gr.skip()
        if cfg.config.data_file:  # consumed: kept under LOPT_HOME, so Gradio's copies go now
            upload_cache.discard(upload_path(upload)[0])
        order = [r.get("run_id") if k == "run" else None for k, r in jobs.waiting()]
        ahead = order.index(run_id) if run_id in order else 0  # runs, sweeps and analyses alike
        note = f" ({ahead} job(s) ahead in the queue)" if ahead else ""
        return (f"Queued **{run_id}**{note}.",
                gr.update(choices=run_choices(who.visible(store.list())), value=run_id))

    train_btn.click(on_train, ctx.inputs(model, task, method, n, r, steps, batch_size, lr, eval_every, seed,
                                         eval_size, upload, text_col, text_b_col, label_col, label_words, prec),
                    [status, watch], api_name="train").then(
        lambda task_, said: None if task_ == "file" and str(said).startswith("Queued") else gr.skip(),
        [task, status], upload, api_name=False)  # a queued run consumed the upload (its copy is gone): empty the box

    def on_stop(run_id, token=None, request: gr.Request = None):
        if not run_id:
            return "Nothing to stop: no run is shown."
        try:
            return jobs.stop(run_id, ctx.visitor(request, token))
        except (LoptError, KeyError) as e:
            return f"⚠️ {e}"

    stop_btn.click(on_stop, ctx.inputs(watch), status, api_name="stop")

    # ---- watching: every second the shown run's curves and progress, the table, and the picker's list. `last`
    # (this page's last seen) ends with the store's mark of what the visitor may see: while it stands, a tick
    # reads no row and sends nothing
    shared = SharedReads(ttl=SHARED_TTL_S)  # pages watching one run share its reads and curves (shared_reads.py)

    def listing(request, token):
        rows = ctx.runs(request, token)
        return rows, tuple((x["run_id"], x["state"]) for x in rows), queue_table(rows)

    def read_progress(run_id):
        return run_progress(store, run_id), len(store.metrics(run_id, "accuracy"))

    def on_tick(run_id, last_sig, status_text="", token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        seen = shared.ticket()  # an entry computed after this was read after the mark below
        mark = store.mark(**who.query())
        if last_sig is not None and last_sig[0] == run_id and last_sig[-1] == mark:
            return (gr.skip(),) * 7
        runs_read = shared.get(("runs", tuple(sorted(who.query().items()))), lambda: listing(request, token))
        rows, listed, table = runs_read.value
        if runs_read.seq < seen:  # read before the mark: keep no mark, so the next tick reads again
            mark = None
        new_list = last_sig is not None and last_sig[-2] != listed
        choices = gr.update(choices=run_choices(rows)) if new_list else gr.skip()
        if not run_id:  # nothing shown (no run when the page opened): show the first run that appears
            rid = active_run(rows)
            pick = gr.update(choices=run_choices(rows), value=rid) if rid else gr.skip()
            return (gr.skip(), progress_html(None), "", table, (None, listed, mark), pick, gr.skip())
        try:
            if run_id not in {x["run_id"] for x in rows}:  # gone, or another visitor's
                raise KeyError(run_id)
            prog = shared.get(("progress", run_id), lambda: read_progress(run_id))
        except KeyError:
            return (plots.curves_figure([]), progress_html(None), "", table, (run_id, listed, mark),
                    gr.update(choices=run_choices(rows)), gr.skip())
        p, n_acc = prog.value
        if prog.seq < seen:
            mark = None
        row = next((x for x in rows if x["run_id"] == run_id), None)
        now = time.time()
        drawn = (run_id, p["step"], n_acc, p["state"])  # what a redraw would show
        before = last_sig[:4] if last_sig is not None and len(last_sig) == 7 else None
        only_steps = before is not None and before[0] == drawn[0] and before[2:] == drawn[2:]
        if before == drawn or (only_steps and now - last_sig[4] < CURVE_EVERY_S):
            fig, drawn, drawn_at = gr.skip(), before, last_sig[4]  # the page keeps the curves it has
        else:
            live = p["state"] in ("queued", "running")
            fig = shared.get(("curves", run_id, n_acc, p["state"]), lambda: run_curves(store, run_id, row, live)).value
            drawn_at = now
        sig = (*drawn, drawn_at, listed, mark)
        err = ""
        if p["state"] in ("failed", "interrupted") and p["error"]:
            err = f"**Run {p['state']}:** {scrub(p['error'])}"
        said = run_outcome(p) if run_id in (status_text or "") else None  # the status spoke of this run
        news = gr.update(value=said) if said and said != status_text else gr.skip()
        return fig, progress_html(p), err, table, sig, choices, news

    timer.tick(on_tick, ctx.inputs(watch, last, status), [curves, progress, error, queue, last, watch, status],
               api_name=False, show_progress="hidden")

    def on_watch(run_id, token=None, request: gr.Request = None):
        return on_tick(run_id, None, "", token, request)[:5]

    watch.change(on_watch, ctx.inputs(watch), [curves, progress, error, queue, last], api_name="watch",
                 show_progress="hidden")

    # ---- every page load (a reload, a second tab, a shared link) shows the runs as they are now
    def on_load(token=None, request: gr.Request = None):
        rows = ctx.runs(request, token)
        chosen, message = link_settings(dict(request.query_params) if request else {}, first, ctx.limits)
        r_upd, lr_upd, readout_html, query, line = follow(chosen or first, ctx.limits)
        if chosen:
            form = [gr.update(value=chosen[k]) for k in rest]
            lr_upd["value"] = chosen["lr"]
        else:  # the page's first values stand; r's slider narrows to the method's bound
            form, lr_upd, readout_html = [gr.skip()] * len(rest), gr.skip(), gr.skip()
        return (gr.update(choices=run_choices(rows), value=active_run(rows)), queue_table(rows), message, *form,
                r_upd, lr_upd, readout_html, query, line)

    rest = [k for k in share.KEYS if k not in ("r", "lr")]  # r and lr also get their bound and hint
    return {"timer": timer, "watch": watch, "queue": queue, "status": status, "settings": settings, "share_query": share_query,
            "readout": readout, "load": (on_load, ctx.inputs(), [watch, queue, status, *[settings[k] for k in rest],
                                                                  r, lr, readout, share_query, link])}
