"""LoPT Lab: train low-rank soft prompts in the browser. `python app.py` serves on 0.0.0.0:7860
(GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected). The UI is thin: lopt_core does the work."""
from __future__ import annotations

import os

import gradio as gr

from lopt_core.hosting import limits as hosting, links
from lopt_core import paths
from lopt_core.sweeps import ray_backend
from lopt_core.errors import LoptError
from lopt_core.jobs.manager import JobManager
from lopt_core.ui import compare, generate, gradio_fixes, learn, rank, runs, sweep, train
from lopt_core.hosting import owners
from lopt_core.ui.common import AppContext, asset_text, token_for, visitor_token_store

TITLE = "LoPT Lab · low-rank soft prompts"


def tick_only_when_shown(tabs: dict) -> None:
    """Each tab's Timer (None: the tab has none) ticks only while its tab is shown: selecting a tab switches its
    Timer on and every other off. An open page then polls once a second, not once per tab (scripts/soak.py)."""
    timers = [t for t in tabs.values() if t is not None]
    for tab, own in tabs.items():
        tab.select(lambda own=own: [gr.Timer(active=t is own) for t in timers], None, timers, api_name=False,
                   show_progress="hidden", queue=False)


def build_app(ctx: AppContext) -> gr.Blocks:
    gradio_fixes.keep_session_ids()  # Gradio's session state grew at every poll (scripts/soak.py measures it)
    gradio_fixes.name_number_errors()  # a number box's range or type error names the box
    gradio_fixes.rare_queue_analytics()  # Gradio's per-event analytics summary, once per 1000 events
    # Gradio's cached copies of files (an upload not yet trained on) are removed after two hours, checked every
    # half hour; downloads never go through its cache (hosting/links.py), and a trained-on upload's copy goes at once
    with gr.Blocks(title=TITLE, delete_cache=(1800, 7200)) as demo:
        ctx.secret = owners.host_secret(paths.home())  # signs the tokens this server hands out (owners.py)
        ctx.token = visitor_token_store(ctx.secret)  # a visitor's token, kept in their browser
        gr.HTML(f"<div class='lopt-header'><h1>{TITLE}</h1></div>")
        gr.Markdown(asset_text("intro.md"), elem_classes=["lopt-intro"])
        if ctx.limits.public:
            gr.Markdown(ctx.limits.notice(), elem_id="lopt-host-notice")
            if os.environ.get("OAUTH_CLIENT_ID"):  # a Space with hf_oauth: true: runs follow the account
                gr.LoginButton()
        with gr.Tabs():
            with gr.Tab("Train", id="train") as t_train:
                trn = train.build(ctx)
            with gr.Tab("Sweep", id="sweep") as t_sweep:
                swp = sweep.build(ctx)
            with gr.Tab("Compare", id="compare") as t_compare:
                cmp = compare.build(ctx)
            with gr.Tab("Generate", id="generate") as t_generate:
                gen = generate.build(ctx)
            with gr.Tab("Rank", id="rank") as t_rank:
                rk = rank.build(ctx)
            with gr.Tab("Runs", id="runs") as t_runs:
                rn = runs.build(ctx, on_deleted=gen["bank"].forget)
            with gr.Tab("Learn", id="learn") as t_learn:
                learn.build(ctx, tab=t_learn)
        tick_only_when_shown({t_train: trn["timer"], t_sweep: swp["timer"], t_compare: None, t_generate: None,
                              t_rank: rk["timer"], t_runs: rn["timer"], t_learn: None})
        fn, ins, outs = cmp["refresh"]
        t_compare.select(fn, ins, outs, api_name=False)
        t_generate.select(gen["on_show"], ctx.inputs(gen["runs"]), gen["runs"], api_name=False)
        t_rank.select(*rk["refresh"], api_name=False)
        t_runs.select(rn["on_refresh"], ctx.inputs(rn["run"]), [rn["run"], rn["details"]], api_name=False)
        demo.load(token_for(ctx.secret), ctx.token, ctx.token, api_name=False)  # a first visit gets its token
        demo.load(*trn["load"], api_name=False)  # a reload or second tab shows the live run; a link's settings
        demo.load(*swp["load"], api_name=False)  # every page load lists the sweeps already in the store
    return demo


def main() -> None:
    try:  # a bad LOPT_* variable or an unusable LOPT_HOME stops here, in one line naming it
        limits = hosting.limits()
        paths.check_home()
        ray_backend.from_env()  # LOPT_RAY_CPUS checked now, not in every sweep's worker
        jobs = JobManager(max_concurrent=limits.max_concurrent, limits=limits)  # a damaged or read-only store too
    except LoptError as e:
        raise SystemExit(f"lopt: {e}") from None
    rec = jobs.recovered
    if rec["running"] or rec["queued"]:
        print(f"[lopt] marked interrupted after restart: {len(rec['running'])} running, {len(rec['queued'])} queued",
              flush=True)
    ctx = AppContext(jobs=jobs, limits=limits)
    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                    server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                    max_file_size=f"{limits.max_upload_mb}mb", css=asset_text("style.css"),
                    theme=gr.themes.Soft(primary_hue="indigo"),
                    # an unexpected exception shows as "Error" only: its text and traceback stay in the server
                    # log; the handlers' own messages (gr.Error through safe_errors) still reach the page
                    show_error=False,
                    prevent_thread_lock=True)  # the download route is added once the server is up
        links.mount(demo.server_app, ctx.links)  # downloads: one-time links for their own session only
        demo.block_thread()
    finally:
        jobs.close()


if __name__ == "__main__":
    main()
