"""Sweep tab: guided experiments (one click per preset), a custom grid with a live readout, and a watch pane
showing all of a sweep's runs at once (curves, trade-off, accuracy vs r, the reading), whose results JSON (the
`sweep-export` file) downloads by a one-time link. lopt_core does the work:
sweep.SweepSpec validates and expands, estimate times it, jobs queues it, readings reads the result."""
from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from lopt_core.sweeps import estimate, presets, ray_backend, readings, results_file
from lopt_core.plots import figures as plots
from lopt_core.config import RunConfig
from lopt_core.methods import count_trainable
from lopt_core.store.sqlite import FINAL
from lopt_core.sweeps.spec import DEFAULT_METHODS, SweepError, SweepSpec, current_runs, describe, parse_int_list, plan
from lopt_core.hosting import downloads
from lopt_core.hosting.owners import LOCAL
from lopt_core.hosting.safe_errors import scrub, user_message
from lopt_core.ui.common import (STATUS_TICK_S, AppContext, asset_text, default_model, method_choices, model_choices,
                                 model_picker_args, task_choices)
from lopt_core.ui.train import _int
from lopt_core.errors import LoptError

SEP = "+"                   # a launch that queued several sweeps (a two-task preset) is one picker value
TABLE_COLUMNS = ["configuration", "trainable params"]
STATE_ORDER = ("running", "queued", "failed", "interrupted", "stopped", "done")  # a launch shows its first
NO_SWEEP = "No sweep shown yet: run a guided experiment or launch a custom sweep."
READING_HINT = "The reading of the result appears here as configurations finish."


def _message(e: Exception) -> str:
    msg = user_message(e)  # no server path or traceback on the page; the server log has them
    return msg if isinstance(e, LoptError) else f"{type(e).__name__}: {msg}"


# ---------------------------------------------------------------- the custom grid

def _ranks(text):
    """The r list as numbers when it parses, else the text itself: validate() names the bad item when a ticked
    method has a rank, and a grid without ranked methods ignores the list."""
    try:
        return parse_int_list(text, "r list")
    except SweepError:
        return text


def build_spec(model, task, methods, n, r, seeds, steps, batch_size, eval_size, eval_every) -> SweepSpec:
    if not model or not str(model).strip():
        raise SweepError("choose a model")
    if not task:
        raise SweepError("choose a task")
    knobs = {"steps": _int(steps, "steps"), "batch_size": _int(batch_size, "batch size"),
             "eval_size": _int(eval_size, "eval examples"), "eval_every": _int(eval_every, "eval every")}
    return SweepSpec(model=str(model).strip(), task=task, methods=list(methods or []), n=n, r=_ranks(r),
                     seeds=seeds, knobs=knobs)


def config_table(cfgs: list[RunConfig]) -> pd.DataFrame:
    recs = [{"configuration": describe(c), "trainable params": count_trainable(c)}
            for c in cfgs]
    return pd.DataFrame(recs, columns=TABLE_COLUMNS)


def plan_text(cfgs: list[RunConfig]) -> str:
    """How the sweep will train: which configurations share each step's batch, which follow one by one."""
    groups = [g for g in plan(cfgs) if g.batched and len(g.indices) > 1]
    together = sum(len(g.indices) for g in groups)
    alone = len(cfgs) - together
    if not together:
        return "one after another on one loaded model" if alone > 1 else "one run"
    where = f" in {len(groups)} groups" if len(groups) > 1 else ""
    more = f"; {alone} more one after another on the same loaded model" if alone else ""
    return f"{together} train in step together{where} (one batch per step for all their prompts){more}"


def readout_md(cfgs: list[RunConfig], est) -> str:
    return (f"**{len(cfgs)} configuration{'s' if len(cfgs) != 1 else ''}** · {plan_text(cfgs)}\n\n"
            f"{expected(est)}")


def expected(est) -> str:
    return estimate.describe(est) if est.batched_s is None else f"expected {estimate.describe(est)}"


def preview(ctx: AppContext, *args) -> tuple[str, pd.DataFrame]:
    """The live readout of the custom grid: count, plan, time estimate and each configuration's size."""
    try:
        cfgs = build_spec(*args).validate(ctx.limits).configs()
        table = config_table(cfgs)
    except Exception as e:  # noqa: BLE001  any bad value is a message, never a traceback
        return f"⚠️ **Cannot queue this sweep:** {_message(e)}", pd.DataFrame([], columns=TABLE_COLUMNS)
    return readout_md(cfgs, estimate.sweep_seconds(cfgs, ctx.store)), table


# ---------------------------------------------------------------- presets

def _total(ests: list) -> estimate.Estimate:
    """Several sweeps one after another: their times add up."""
    if any(e.batched_s is None for e in ests):
        return next(e for e in ests if e.batched_s is None)
    return estimate.Estimate(sum(e.batched_s for e in ests), sum(e.one_by_one_s for e in ests), ests[0].basis)


def preset_specs(ctx: AppContext, key: str, model, quick) -> list[SweepSpec]:
    if not model or not str(model).strip():
        raise SweepError("choose a model")
    specs = presets.get(key).specs(model=str(model).strip(), quick=bool(quick), limits=ctx.limits)
    return [s.validate(ctx.limits) for s in specs]


def preset_note(ctx: AppContext, key: str, model, quick) -> str:
    """What one click on the preset queues, and how long it should take on this machine."""
    try:
        specs = preset_specs(ctx, key, model, quick)
    except Exception as e:  # noqa: BLE001
        return f"⚠️ not possible with this model: {_message(e)}"
    n_cfg = sum(len(s.configs()) for s in specs)
    est = _total([estimate.sweep_seconds(s.configs(), ctx.store) for s in specs])
    where = f" in {len(specs)} sweeps" if len(specs) > 1 else ""
    extra = presets.get(key).quick_note() if quick else ""
    return f"**{n_cfg} configurations**{where} · {expected(est)}" + (f"  \n<small>{extra}</small>" if extra else "")


# ---------------------------------------------------------------- the sweep picker

def launches(sweeps: list[dict]) -> list[list[dict]]:
    """The store's sweeps (oldest first) as launches: the sweeps one click queued share a launch id
    (presets.create_preset) and are watched and read together."""
    out: dict[str, list[dict]] = {}
    for s in sweeps:
        out.setdefault(s.get("launch_id") or s["sweep_id"], []).append(s)
    return list(out.values())


def launch_state(states) -> str:
    states = set(states)
    return next((s for s in STATE_ORDER if s in states), "done")


def launch_label(group: list[dict], n_runs: int) -> str:
    p = presets.PRESETS.get(group[0]["preset"] or "")
    name = p.title if p else (group[0]["preset"] or "custom sweep")
    tasks = " + ".join(str(s["spec"].get("task", "?")) for s in group)
    when = time.strftime("%m-%d %H:%M", time.localtime(group[0]["created"]))
    return f"{when} · {name} · {tasks} · {launch_state(s['state'] for s in group)} · {n_runs} runs"


def sweep_choices(store, who=LOCAL) -> list[tuple[str, str]]:
    """Every launch this visitor may see, newest first, labelled with its preset, state and number of runs."""
    per_sweep = store.sweep_run_counts()  # counted in SQL: this runs at every tick of every open page
    groups = launches([s for s in store.list_sweeps() if who.sees_sweep(s)])
    return [(launch_label(g, sum(per_sweep.get(s["sweep_id"], 0) for s in g)), SEP.join(s["sweep_id"] for s in g))
            for g in reversed(groups)]


def value_of(choices: list[tuple[str, str]], sweep_id: str) -> str:
    """The picker value of the launch that holds `sweep_id`."""
    return next((v for _, v in choices if sweep_id in v.split(SEP)), sweep_id)


# ---------------------------------------------------------------- watching

def watched(store, value) -> tuple[list[dict], list[dict]]:
    """(sweeps, runs) of a picker value; sweeps deleted meanwhile are left out."""
    sweeps, rows = [], []
    for sid in str(value or "").split(SEP):
        try:
            sweeps.append(store.get_sweep(sid))
        except KeyError:
            continue
        rows += current_runs(store, sid)  # a resumed configuration counts once, by its newest run
    return sweeps, rows


def progress_html(sweeps: list[dict], rows: list[dict], slower: float | None = None) -> str:
    if not sweeps:
        return f"<div class='lopt-progress-text'>{NO_SWEEP}</div>"
    count = {s: sum(r["state"] == s for r in rows) for s in ("done", "running", "queued", "failed", "interrupted",
                                                               "stopped")}
    finished = sum(r["state"] in FINAL for r in rows)
    state = launch_state(s["state"] for s in sweeps)
    bits = [f"<b>{state}</b>", f"{finished}/{len(rows)} configurations finished"]
    bits += [f"{v} {k}" for k, v in count.items() if v or k in ("done", "running", "queued", "failed")]
    running = [r for r in rows if r["state"] == "running"]
    if running:
        step = max(r["steps_done"] or 0 for r in running)
        total = max(int(r["config"].get("steps") or 0) for r in running)
        bits.append(f"step {step}/{total}" if step else "loading the model and data")
    if state == "running" and any(s["stop_requested"] for s in sweeps):
        bits.append("stopping after this step")
    if slower:
        bits.append(f"<span class='lopt-slow'>⚠ {slower:.1f}× slower than this machine measured before: the host "
                    f"is busy (other runs or load), so the sweep takes longer than estimated</span>")
    pct = 100 * _fraction(rows)
    cls = {"failed": "bad", "interrupted": "bad", "stopped": "warn", "done": "ok"}.get(state, "")
    ids = " + ".join(s["sweep_id"] for s in sweeps)
    return (f"<div class='lopt-progress {cls}'><div class='lopt-bar' style='width:{pct:.1f}%'></div></div>"
            f"<div class='lopt-progress-text' id='lopt-sweep-progress-text'>{ids} · {' · '.join(bits)}</div>")


def _fraction(rows: list[dict]) -> float:
    """Share of the sweep's training steps done (a finished configuration counts whole)."""
    total = sum(int(r["config"].get("steps") or 1) for r in rows)
    done = sum(int(r["config"].get("steps") or 1) if r["state"] in FINAL else (r["steps_done"] or 0) for r in rows)
    return done / max(1, total)


def errors_md(sweeps: list[dict], rows: list[dict]) -> str:
    lines = [f"**{s['sweep_id']} {s['state']}:** {scrub(s['error'])}" for s in sweeps
             if s.get("error") and s["state"] in ("failed", "interrupted")]
    bad = [r for r in rows if r["state"] in ("failed", "interrupted") and r.get("error")]
    lines += [f"- {plots.run_name(r)}: {r['state']}: {scrub(r['error'])}" for r in bad[:5]]
    if len(bad) > 5:
        lines.append(f"- … and {len(bad) - 5} more (see the Runs tab)")
    return "\n".join(lines)


def series_name(row: dict, one_seed: bool) -> str:
    name = describe(RunConfig.from_dict(row["config"]))
    return name.rsplit(" seed ", 1)[0] if one_seed else name


def curves(store, rows: list[dict], running: bool):
    """Every run of the sweep in one figure, coloured by method: batched runs grow side by side."""
    one_seed = len({r["config"].get("seed") for r in rows}) == 1
    series = [{**s, "color": plots.method_color(r["method"]), "name": series_name(r, one_seed)}
              for r in rows for s in plots.series_from_store(store, [r["run_id"]])]  # [] for a run deleted meanwhile
    empty = ("no curve yet: the sweep's worker is loading the model and data" if running
             else "no curve: no configuration of this sweep trained a step")
    fig = plots.curves_figure(series, title=f"Live curves of all {len(rows)} configurations", empty=empty)
    if not any(s["loss"] or s["accuracy"] for s in series):
        return fig
    legend_rows = -(-len(series) // 4)
    return fig.update_layout(height=400 + 24 * legend_rows, legend=dict(font=dict(size=11), y=-0.16,
                                                                        yanchor="top"))


def by_r(rows: list[dict]):
    """Accuracy vs r; with several tasks (a two-task preset) the first task's, as r lines mix across tasks."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    if len(tasks) > 1:
        mine = [r for r in rows if r["task"] == tasks[0]]
        return plots.accuracy_vs_r_figure(mine, title=f"Accuracy vs rank r on {tasks[0]}")
    return plots.accuracy_vs_r_figure(rows)


def reading_md(sweeps: list[dict], rows: list[dict]) -> str:
    if not sweeps:
        return ""
    finished = len(plots.scored(rows))
    commands = "\n".join(f"    {s['command']}" for s in sweeps if s.get("command"))
    cli = f"\n\n<small>The same sweep from the command line:</small>\n\n{commands}" if commands else ""
    if not finished:
        return READING_HINT + cli
    final = all(s["state"] in FINAL for s in sweeps)
    head = "### Reading" if final else f"### Reading so far ({finished} of {len(rows)} configurations finished)"
    return f"{head}\n\n{readings.read_runs(rows)['markdown']}{cli}"


def render(store, value, last):
    """(progress, errors, curves, trade-off, accuracy vs r, reading, signature): figures only when changed."""
    sweeps, rows = watched(store, value)
    if not sweeps:
        empty = plots.empty_figure(NO_SWEEP)
        return progress_html([], []), "", empty, empty, empty, READING_HINT, None
    curve_sig = tuple((r["run_id"], r["state"], r["steps_done"]) for r in rows)
    result_sig = (tuple((r["run_id"], r["state"], r["accuracy"]) for r in rows), tuple(s["state"] for s in sweeps))
    same = last is not None and last[0] == value
    running = any(s["state"] in ("queued", "running") for s in sweeps)
    fig = gr.skip() if same and last[1] == curve_sig else curves(store, rows, running)
    if same and last[2] == result_sig:
        trade = acc_r = reading = gr.skip()
    else:
        trade = plots.tradeoff_figure(rows, title="This sweep: accuracy vs trainable parameters")
        acc_r, reading = by_r(rows), reading_md(sweeps, rows)
    return (progress_html(sweeps, rows, estimate.group_pace(store, rows) if running else None), errors_md(sweeps, rows), fig,
            trade, acc_r, reading, (value, curve_sig, result_sig))


# ---------------------------------------------------------------- the tab

def _preset_card(ctx: AppContext, p, model0: str):
    with gr.Group(elem_classes=["lopt-preset"]):
        gr.Markdown(f"**{p.title}** · {p.question}\n\n<small>{p.why}</small>")
        note = gr.Markdown(preset_note(ctx, p.key, model0, True), elem_id=f"lopt-preset-note-{p.key}")
        key = gr.Textbox(p.key, visible=False)
        btn = gr.Button(f"Run: {p.title}", variant="primary", size="sm", elem_id=f"lopt-preset-{p.key}")
    return key, note, btn


def build(ctx: AppContext):
    store, jobs = ctx.store, ctx.jobs
    d = RunConfig()
    model0 = default_model(ctx.limits)
    gr.Markdown(asset_text("sweep.md"), elem_classes=["lopt-intro"])
    with gr.Row():
        with gr.Column(scale=2, min_width=340):
            model = gr.Dropdown(model_choices(ctx.limits), value=model0, label="Model", elem_id="lopt-sweep-model",
                                **model_picker_args(ctx.limits))
            gr.Markdown("### Guided experiments")
            quick = gr.Checkbox(True, label="quick setting (fewer steps, 300 test examples: minutes, for a class)",
                                info=presets.quick_gives_up(), elem_id="lopt-sweep-quick")  # said once, not per card
            cards = [_preset_card(ctx, p, model0) for p in presets.PRESETS.values()]
            with gr.Accordion("Custom sweep", open=False, elem_id="lopt-sweep-custom"):
                task = gr.Dropdown([c for c in task_choices() if c[1] != "file"], value=d.task, label="Task")
                methods = gr.CheckboxGroup(method_choices(), value=list(DEFAULT_METHODS), label="Methods")
                with gr.Row():
                    n = gr.Textbox(str(d.n), label="n list (prompt lengths)", placeholder="e.g. 10, 20")
                    r = gr.Textbox("1,2,5,10", label="r list (ranks)", placeholder="e.g. 1, 2, 5, 10")
                    seeds = gr.Textbox(str(d.seed), label="seeds", placeholder="e.g. 0, 1, 2")
                with gr.Row():
                    steps = gr.Number(min(d.steps, ctx.limits.max_steps or d.steps), label="steps", precision=0,
                                      minimum=1, maximum=ctx.limits.max_steps)
                    batch_size = gr.Number(d.batch_size, label="batch size", precision=0, minimum=1)
                    eval_size = gr.Number(d.eval_size, label="eval examples (0 = all)", precision=0, minimum=0)
                    eval_every = gr.Number(d.eval_every, label="evaluate every (0 = end only)", precision=0,
                                           minimum=0)
                grid = [model, task, methods, n, r, seeds, steps, batch_size, eval_size, eval_every]
                text0, table0 = preview(ctx, *[c.value for c in grid])
                readout = gr.Markdown(text0, elem_id="lopt-sweep-readout", elem_classes=["lopt-readout"])
                table = gr.Dataframe(table0, label="Configurations", interactive=False, max_height=260,
                                     elem_id="lopt-sweep-configs")
                launch_btn = gr.Button("Launch sweep", variant="primary", elem_id="lopt-sweep-launch")
            status = gr.Markdown("", elem_id="lopt-sweep-status")
            # read at each page load (a callable value), not on a Timer of its own: an open page polls once
            gr.Markdown(lambda: f"<small>Sweeps train on: {ray_backend.backend_line()}</small>",
                        elem_id="lopt-sweep-backend")
        with gr.Column(scale=3, min_width=440):
            with gr.Row(elem_id="lopt-sweep-pick-row"):
                picker = gr.Dropdown([], value=None, label="Sweep shown", allow_custom_value=True, scale=4,
                                     elem_id="lopt-sweep-picker")
                stop_btn = gr.Button("Stop sweep", variant="stop", scale=1, min_width=120, elem_id="lopt-sweep-stop")
                resume_btn = gr.Button("Resume", scale=1, min_width=100, elem_id="lopt-sweep-resume")
                export_btn = gr.Button("Download results (JSON)", scale=1, min_width=120,
                                       elem_id="lopt-sweep-export")
            export_link = gr.Markdown("", elem_id="lopt-sweep-export-link")  # a one-time link (hosting/links.py)
            progress = gr.HTML(progress_html([], []), elem_id="lopt-sweep-progress")
            error = gr.Markdown("", elem_id="lopt-sweep-error")
            curve_plot = gr.Plot(plots.empty_figure(NO_SWEEP), label="Live curves", elem_id="lopt-sweep-curves")
            trade_plot = gr.Plot(plots.empty_figure(NO_SWEEP), label="Trade-off", elem_id="lopt-sweep-tradeoff")
            r_plot = gr.Plot(plots.empty_figure(NO_SWEEP), label="Accuracy vs r", elem_id="lopt-sweep-by-r")
            reading = gr.Markdown(READING_HINT, elem_id="lopt-sweep-reading")
    last = gr.State(None)
    shown = gr.State([])            # the picker's choices as last sent, to update them only when they change
    timer = gr.Timer(STATUS_TICK_S, active=False)  # ticks only while this tab is shown (app.py)
    notes = [note for _, note, _ in cards]

    # ---- custom grid
    gr.on([c.change for c in grid], lambda *a: preview(ctx, *a), grid, [readout, table], api_name="sweep_preview",
          show_progress="hidden", trigger_mode="always_last")

    def picked(ids: list[str], who):
        choices = sweep_choices(store, who)
        return gr.update(choices=choices, value=value_of(choices, ids[0])), choices

    def mine(value, who) -> str:
        """The sweeps of a picker value this visitor may see (a typed id of another's reads as none)."""
        allowed = {sid for _, value_ in sweep_choices(store, who) for sid in value_.split(SEP)}
        return SEP.join(s for s in str(value or "").split(SEP) if s in allowed)

    def on_launch(model_, task_, methods_, n_, r_, seeds_, steps_, batch_size_, eval_size_, eval_every_, token=None,
                  request: gr.Request = None):  # named, not *args: the API then knows `token` is optional
        args = (model_, task_, methods_, n_, r_, seeds_, steps_, batch_size_, eval_size_, eval_every_)
        who = ctx.visitor(request, token)
        try:
            spec = build_spec(*args)
            sweep_id = jobs.submit_sweep(spec, who=who)
        except Exception as e:  # noqa: BLE001  nothing was queued: say why
            gr.Warning(_message(e))
            return f"⚠️ **Not started:** {_message(e)}", gr.skip(), gr.skip()
        cfgs = spec.configs()
        est = estimate.sweep_seconds(cfgs, store)
        return (f"Queued sweep **{sweep_id}**: {len(cfgs)} configurations, {estimate.describe(est)}.",
                *picked([sweep_id], who))

    launch_btn.click(on_launch, ctx.inputs(*grid), [status, picker, shown], api_name="sweep_launch")

    # ---- presets
    def on_preset(key, model_, quick_, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        try:
            specs = preset_specs(ctx, key, model_, quick_)
            ids = jobs.submit_preset(key, str(model_).strip(), bool(quick_), who)  # all checked before any queued
        except Exception as e:  # noqa: BLE001
            gr.Warning(_message(e))
            return f"⚠️ **Not started:** {_message(e)}", gr.skip(), gr.skip()
        n_cfg = sum(len(s.configs()) for s in specs)
        return (f"Queued **{presets.get(key).title}**: {' + '.join(ids)}, {n_cfg} configurations.",
                *picked(ids, who))

    for i, (key, _, btn) in enumerate(cards):
        btn.click(on_preset, ctx.inputs(key, model, quick), [status, picker, shown],
                  api_name="sweep_preset" if i == 0 else False)

    def on_notes(model_, quick_):
        return [preset_note(ctx, p.key, model_, quick_) for p in presets.PRESETS.values()]

    gr.on([model.change, quick.change], on_notes, [model, quick], notes, api_name=False, show_progress="hidden",
          trigger_mode="always_last")

    def on_store_change(quick_, *grid_values):
        """A sweep was launched or changed state: estimates may now rest on new measured runs."""
        return (*on_notes(grid_values[0], quick_), *preview(ctx, *grid_values))

    shown.change(on_store_change, [quick, *grid], [*notes, readout, table], api_name=False, show_progress="hidden",
                 trigger_mode="always_last")

    # ---- watching
    def on_stop(value, token=None, request: gr.Request = None):
        if not value:
            return "Nothing to stop: no sweep is shown."
        who = ctx.visitor(request, token)
        try:
            return " · ".join(jobs.stop_sweep(sid, who) for sid in str(value).split(SEP))  # an API may send 5
        except (LoptError, KeyError) as e:
            return f"⚠️ {e}"

    stop_btn.click(on_stop, ctx.inputs(picker), status, api_name="sweep_stop")

    def on_resume(value, token=None, request: gr.Request = None):
        """Re-queue the unfinished configurations of a stopped or interrupted sweep (finished ones are kept)."""
        if not value:
            return "Nothing to resume: no sweep is shown."
        who = ctx.visitor(request, token)
        out = []
        for sid in str(value).split(SEP):
            try:
                out.append(f"{sid}: {len(jobs.resume_sweep(sid, who))} configuration(s) queued again")
            except (LoptError, KeyError) as e:
                out.append(f"⚠️ {e}")
        return " · ".join(out)

    resume_btn.click(on_resume, ctx.inputs(picker), status, api_name="sweep_resume")

    def on_export(value, token=None, request: gr.Request = None):
        """The shown launch's sweeps as their results JSON (what `sweep-export` writes), zipped, as a one-time
        link for this page."""
        ids = [s for s in mine(value, ctx.visitor(request, token)).split(SEP) if s]
        if not ids:
            return "Nothing to download: no sweep is shown."

        def fill(folder):
            for sid in ids:
                results_file.export_sweep(store, sid, folder / f"{sid}.json")
        try:
            return ctx.link_to(downloads.zipped("sweep", ids[0], f"{ids[0]}-results", fill), request)
        except (LoptError, KeyError) as e:
            return f"⚠️ {_message(e)}"

    export_btn.click(on_export, ctx.inputs(picker), export_link, api_name="sweep_export")

    watch_outs = [progress, error, curve_plot, trade_plot, r_plot, reading, last]

    def on_pick(value, token=None, request: gr.Request = None):
        return render(store, mine(value, ctx.visitor(request, token)), None)

    picker.change(on_pick, ctx.inputs(picker), watch_outs, api_name="sweep_watch", show_progress="hidden")

    def choices_update(value, shown_, who):
        """New choices when they changed; the newest launch when none is shown yet."""
        choices = sweep_choices(store, who)
        if not value and choices:
            return gr.update(choices=choices, value=choices[0][1]), choices
        return (gr.skip() if choices == shown_ else gr.update(choices=choices)), choices

    def on_tick(value, last_, shown_, token=None, request: gr.Request = None):
        who = ctx.visitor(request, token)
        upd, choices = choices_update(value, shown_, who)
        if not value:   # the picker's change event renders a newly selected launch
            return upd, choices, *[gr.skip()] * len(watch_outs)
        return upd, choices, *render(store, mine(value, who), last_)

    timer.tick(on_tick, ctx.inputs(picker, last, shown), [picker, shown, *watch_outs], api_name=False,
               show_progress="hidden")

    def on_load(value, model_, quick_, token=None, request: gr.Request = None):
        upd, choices = choices_update(value, [], ctx.visitor(request, token))
        return upd, choices, *on_notes(model_, quick_)

    return {"timer": timer, "load": (on_load, ctx.inputs(picker, model, quick), [picker, shown, *notes]), "stop": on_stop,
            "resume": on_resume, "export": on_export}
