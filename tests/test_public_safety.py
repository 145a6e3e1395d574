"""Safe to host in public: downloads and exports live in one bounded folder under LOPT_HOME and go with their run;
the page shows messages without server paths or tracebacks; a public host never probes a folder a visitor names."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lopt_core.hosting import downloads, limits as hosting, model_access
from lopt_core.hosting.safe_errors import scrub, user_message


# ---------------------------------------------------------------- downloads: one bounded folder

def test_downloads_folder_never_grows_past_its_bound(lopt_home):
    made = [downloads.new_entry("download", f"run{i}", keep=4) for i in range(12)]
    left = downloads.entries()
    assert len(left) <= 4 and all(p.parent == lopt_home / "downloads" for p in left)
    assert made[-1] in left and made[0] not in left  # the newest stay


def test_old_downloads_are_removed_when_a_new_one_is_made(lopt_home):
    old = downloads.new_entry("peft", "a")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    new = downloads.new_entry("download", "b", max_age_s=600)
    assert not old.exists() and new.is_dir()


def test_forget_removes_only_that_runs_entries(lopt_home):
    a1, a2 = downloads.new_entry("download", "run-a"), downloads.new_entry("peft", "run-a")
    b = downloads.new_entry("download", "run-ab")
    assert downloads.forget("run-a") == 2
    assert not a1.exists() and not a2.exists() and b.is_dir()


@pytest.fixture
def runs_tab(tiny_model_dir):
    """The Runs tab built in a Blocks on a store holding one trained tiny run; its handlers by API name, each
    called as from one page (its session)."""
    import functools
    import types
    import gradio as gr
    from lopt_core.jobs.manager import JobManager
    from lopt_core.training.runs import run_and_record
    from lopt_core.ui import runs
    from lopt_core.ui.common import AppContext
    from helpers import tiny_cfg
    jobs = JobManager(start=False)
    out = run_and_record(tiny_cfg(tiny_model_dir, method="lopt1", steps=2), store=jobs.store)
    with gr.Blocks() as demo:
        runs.build(AppContext(jobs=jobs, limits=hosting.Limits(allowed_models=None)))
    page = types.SimpleNamespace(session_hash="page-1")
    fns = {f.api_name: functools.partial(f.fn, request=page) for f in demo.fns.values() if f.api_name}
    yield out["run_id"], fns
    jobs.close()


def test_a_deleted_runs_downloads_and_exports_are_gone(runs_tab, lopt_home):
    import zipfile
    run_id, fns = runs_tab
    said = [fns["download"](run_id)[0], fns["export"](run_id)[0], fns["download"](run_id)[0]]
    assert all("lopt/download/" in s and str(lopt_home) not in s for s in said)  # a link, never a server path
    zips = [z for e in downloads.entries() for z in e.glob("*.zip")]
    assert len(downloads.entries()) == len(zips) == 3
    assert any(n.endswith("adapter_config.json") for z in zips for n in zipfile.ZipFile(z).namelist())
    fns["delete"](run_id)
    assert downloads.entries() == [] and not any(Path(z).exists() for z in zips)


def test_downloads_stay_bounded_through_the_tab(runs_tab, lopt_home):
    run_id, fns = runs_tab
    for _ in range(downloads.KEEP + 4):
        fns["download"](run_id)
    assert len(downloads.entries()) == downloads.KEEP


# ---------------------------------------------------------------- the page never shows server paths

def test_scrub_cuts_paths_and_drops_tracebacks():
    text = ("Traceback (most recent call last):\n  File \"/srv/app/lopt_core/export.py\", line 12, in export_peft\n"
            "    raise\nFileNotFoundError: [Errno 2] No such file or directory: "
            "'/home/user/.cache/lopt-lab/artifacts/20261124-x/prompt.safetensors'")
    out = scrub(text)
    assert "/home/user" not in out and "/srv/app" not in out and "Traceback" not in out and "line 12" not in out
    assert "…/prompt.safetensors" in out
    assert scrub("model 'HuggingFaceTB/SmolLM2-135M' is not available") == "model 'HuggingFaceTB/SmolLM2-135M' is not available"
    assert scrub("steps=5 is above 3; ratio 1/2") == "steps=5 is above 3; ratio 1/2"


def test_user_message_logs_the_traceback_server_side(caplog, tmp_path):
    try:
        open(tmp_path / "missing" / "file.txt")
    except OSError as e:
        with caplog.at_level("INFO", logger="lopt"):
            msg = user_message(e, "export")
    assert str(tmp_path) not in msg and "file.txt" in msg
    assert str(tmp_path) in caplog.text and "Traceback" in caplog.text  # the server log keeps it all


def test_a_handler_given_a_bad_model_folder_answers_without_the_servers_path(tmp_path, lopt_home):
    from lopt_core.ui.train import param_readout
    folder = tmp_path / "secret-server-folder" / "not-a-model"
    folder.mkdir(parents=True)
    out = param_readout(str(folder), "lopt1", 4, 2)
    assert "unavailable" in out and str(tmp_path) not in out and "Traceback" not in out


def test_runs_tab_errors_carry_no_server_path(runs_tab, lopt_home):
    import gradio as gr
    from lopt_core.store.sqlite import Store
    import shutil
    run_id, fns = runs_tab
    shutil.rmtree(lopt_home / "artifacts" / run_id)  # its folder gone: the export fails, naming a server path
    Store().update(run_id, artifact_dir=str(lopt_home / "artifacts" / "gone-folder"))
    with pytest.raises(gr.Error) as err:
        fns["export"](run_id)
    assert str(lopt_home) not in str(err.value.message)



def test_a_runs_raw_record_on_a_public_host_names_no_server_path():
    from lopt_core.hosting.safe_errors import shown_record
    rec = {"run_id": "r1", "artifact_dir": "/home/u/.cache/lopt-lab/artifacts/r1",
           "config": {"data_file": "/home/u/.cache/lopt-lab/uploads/ab-reviews.csv", "n": 4},
           "error": "OSError: cannot read /home/u/.cache/lopt-lab/uploads/ab-reviews.csv"}
    shown = shown_record(rec, public=True)
    assert "/home/u" not in repr(shown)
    assert shown["artifact_dir"] == "artifacts/r1" and shown["config"]["data_file"] == "ab-reviews.csv"
    assert shown_record(rec, public=False)["artifact_dir"] == rec["artifact_dir"]  # the owner's own machine

# ---------------------------------------------------------------- a public host never probes folders

def test_public_host_resolves_only_allowed_names(monkeypatch, tiny_model_dir):
    from lopt_core.lm import models
    from lopt_core.ui import common, train
    public = hosting.Limits(allowed_models=None, public=True)
    looked_up, probed = [], []
    real_config, real_is_dir = models.model_config, Path.is_dir
    monkeypatch.setattr(models, "model_config", lambda name: (looked_up.append(name), real_config(name))[1])
    monkeypatch.setattr(Path, "is_dir", lambda self: (probed.append(str(self)), real_is_dir(self))[1])

    for name in (tiny_model_dir, "/etc", "~/.ssh", "../lopt_home"):
        out = train.param_readout(name, "lopt1", 4, 2, public)
        assert "not allowed on this host" in out, out
        with pytest.raises(Exception, match="not allowed"):
            model_access.check(public, name)
        r_slider, _, readout, *_ = train.follow({**train.form_defaults(public), "model": name}, public)
        assert "not allowed on this host" in readout
    common.model_choices(public)
    assert looked_up == [] and probed == [], (looked_up, probed)

    assert model_access.check(public, models.OFFLINE_DEFAULT) == models.OFFLINE_DEFAULT
    allowed = hosting.Limits(allowed_models=(tiny_model_dir,), public=True)  # the host's own list may name a folder
    assert "trainable" in train.param_readout(tiny_model_dir, "lopt1", 4, 2, allowed)


def test_a_local_host_still_reads_a_model_folder(tiny_model_dir):
    from lopt_core.ui import common, train
    local = hosting.Limits(allowed_models=None)
    assert "trainable" in train.param_readout(tiny_model_dir, "lopt1", 4, 2, local)
    mine = hosting.Limits(allowed_models=(tiny_model_dir,))
    assert any("offline ✓" in label for label, _ in common.model_choices(mine))


# ---------------------------------------------------------------- memory: polling leaves the session's state as it was

def test_an_open_page_polls_only_its_shown_tab(lopt_home):
    """One Timer ticks per open page: the Train tab's at first; selecting a tab switches its own Timer on and
    every other off, and a tab without one (Compare) leaves none ticking (16 pages' four Timers were the soak's
    p95 of 2 s)."""
    import gradio as gr
    import app
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui.common import AppContext
    jobs = JobManager(start=False)
    try:
        demo = app.build_app(AppContext(jobs=jobs, limits=hosting.limits()))
        timers = [b for b in demo.blocks.values() if isinstance(b, gr.Timer)]
        assert len(timers) >= 4
        ticked = {t[0] for f in demo.fns.values() for t in f.targets if t[1] == "tick"}
        assert ticked == {t._id for t in timers}  # every Timer is some tab's poll
        tabs = {b._id: b for b in demo.blocks.values() if isinstance(b, gr.Tab)}
        assert [t.active for t in timers].count(True) == 1
        train_timer = next(t for t in timers if t.active)
        on = {}
        for f in demo.fns.values():
            tab = next((tabs[i] for i, ev in f.targets if ev == "select" and i in tabs), None)
            if tab is None or [o._id for o in f.outputs] != [t._id for t in timers]:
                continue
            on[tab.id] = [t._id for t, u in zip(timers, f.fn()) if u.active]
        assert set(on) == {t.id for t in tabs.values()}, "every tab says which Timer ticks while it is shown"
        assert on["train"] == [train_timer._id]
        for tab in ("sweep", "rank", "runs"):
            assert len(on[tab]) == 1 and on[tab] != on["train"]
        assert len({on[t][0] for t in ("train", "sweep", "rank", "runs")}) == 4
        assert on["compare"] == on["generate"] == on["learn"] == []
    finally:
        jobs.close()


def test_polling_does_not_grow_a_sessions_state(lopt_home):
    """Every Timer of the page, polled as an open tab polls it: the session's components stay as many as the page
    has (Gradio stored a new component per gr.update'd input at every tick: the soak's leak, gradio_fixes.py)."""
    import asyncio
    from gradio.state_holder import SessionState
    import app
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui.common import AppContext
    jobs = JobManager(start=False)
    try:
        demo = app.build_app(AppContext(jobs=jobs, limits=hosting.limits()))
        state = SessionState(demo)
        fns = [f for f in demo.fns.values() if any(t[1] in ("tick", "load") for t in f.targets)]
        assert sum(any(t[1] == "tick" for t in f.targets) for f in fns) >= 3

        async def poll(times):
            for _ in range(times):
                for f in fns:
                    await demo.process_api(block_fn=f, inputs=[None if c.stateful else getattr(c, "value", None)
                                                               for c in f.inputs], state=state)

        asyncio.run(poll(2))
        size = len(state.blocks_config.blocks), len(state.config_values)
        asyncio.run(poll(10))
        assert (len(state.blocks_config.blocks), len(state.config_values)) == size
        assert size[0] == len(demo.default_config.blocks)
    finally:
        jobs.close()


def test_the_queue_does_not_summarise_its_analytics_after_every_event(lopt_home, monkeypatch):
    """Gradio's queue rebuilt a pandas summary of its last 10,000 events after each event (15% of the server's
    CPU under the soak, for a monitoring page the app does not enable); the app's queue does it once per
    gradio_fixes.ANALYTICS_EVERY events."""
    import app
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui import gradio_fixes
    from lopt_core.ui.common import AppContext
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    jobs = JobManager(start=False)
    try:
        demo = app.build_app(AppContext(jobs=jobs, limits=hosting.limits()))
        demo.queue()
        q = demo._queue
        records = [{"time": 0.0, "status": "success", "process_time": 0.01, "function": "tick",
                    "session_hash": "s"} for _ in range(50)]  # as the queue passes them
        frames = []
        monkeypatch.setattr(q, "_get_df", lambda recs: frames.append(1) or type(q)._get_df(recs))
        for i in range(1, 51):
            q.events_recorded = i
            q.compute_analytics_summary(records)
        assert frames == [], "summarised after an event"
        q.events_recorded = gradio_fixes.ANALYTICS_EVERY
        assert "tick" in q.compute_analytics_summary(records)["functions"] and frames == [1]
    finally:
        jobs.close()
