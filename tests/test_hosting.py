"""A public host: visitors own their runs, queue caps hold, and bad LOPT_* values stop the app in one line.

Unit tests on owners.Visitor and hosting.limits(); one app started with LOPT_PUBLIC=1 and driven by three
gradio clients (three visitors: each Client has its own session) on the tiny model."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lopt_core.errors import NotFound, NotYours

from lopt_core.hosting import limits as hosting, owners
from lopt_core.config import ConfigError, RunConfig

from helpers import ROOT, TRAIN, seed_home, start_app, stop_app


# ---------------------------------------------------------------- who may do what

SECRET = "s" * 32


def test_only_a_token_this_server_signed_identifies_a_visitor():
    """A client that makes up a fresh token per call is its session, every time: the caps hold."""
    import secrets
    made_up = [secrets.token_hex(16) for _ in range(5)] + [f"{secrets.token_hex(16)}.{'0' * 32}", None, 7]
    for t in made_up:
        assert owners.visitor(public=True, token=t, session="s1", secret=SECRET).keys == ("s:s1",)
    ours = owners.mint_token(SECRET)
    assert owners.visitor(public=True, token=ours, session="s1", secret=SECRET).keys == ("b:" + ours, "s:s1")
    assert owners.visitor(public=True, token=ours, session="s1", secret="another host").keys == ("s:s1",)

def test_local_use_allows_everything_and_records_no_owner():
    v = owners.visitor(public=False, session="abc")
    assert v is owners.LOCAL and v.owner is None
    v.check({"run_id": "r1", "owner": "s:someone"}, "stop")  # no error
    assert v.visible([{"run_id": "r1", "owner": "s:x", "state": "running"}])


def test_a_visitor_owns_by_their_strongest_identity_and_sees_only_what_the_host_allows():
    tok = owners.mint_token(SECRET)
    v = owners.visitor(public=True, username="ada", token=tok, session="s1", secret=SECRET)
    assert v.owner == "hf:ada" and v.keys == ("hf:ada", "b:" + tok, "s:s1")
    assert owners.visitor(public=True, token="short", session="s1", secret=SECRET).owner == "s:s1"
    mine = {"run_id": "a", "owner": "b:" + tok, "state": "running", "task": "sst2"}  # started before sign-in
    theirs = {"run_id": "b", "owner": "s:other", "state": "done", "task": "sst2"}
    their_file = {"run_id": "c", "owner": "s:other", "state": "done", "task": "file"}
    their_live = {"run_id": "d", "owner": "s:other", "state": "running", "task": "sst2"}
    host_run = {"run_id": "e", "owner": None, "state": "done", "task": "sst2"}
    rows = [mine, theirs, their_file, their_live, host_run]
    assert [r["run_id"] for r in v.visible(rows)] == ["a"]
    shown = owners.Visitor(v.keys, public=True, show_others=True)
    assert [r["run_id"] for r in shown.visible(rows)] == ["a", "b", "e"]  # finished, never on an uploaded file
    shown.check(mine, "stop")
    with pytest.raises(owners.NotYours, match="run b was started by another visitor: only they can delete it"):
        shown.check(theirs, "delete")
    for hidden in (their_live, their_file):  # not theirs to see: answered as for a run that does not exist
        with pytest.raises(NotFound, match=f"^no run '{hidden['run_id']}'$"):
            shown.check(hidden, "stop")


# ---------------------------------------------------------------- bad LOPT_* values, named

@pytest.mark.parametrize("env, message", [
    ({"LOPT_MAX_UPLOAD_MB": "9" * 40}, "LOPT_MAX_UPLOAD_MB must be between 1 and 10,240"),
    ({"LOPT_ALLOWED_MODELS": ",,,"}, "LOPT_ALLOWED_MODELS names no model"),
    ({"LOPT_ALLOWED_MODELS": "gpt2,,smollm2-135m"}, "LOPT_ALLOWED_MODELS has an empty name"),
    ({"LOPT_PUBLIC": "maybe"}, "LOPT_PUBLIC must be 1 or 0"),
    ({"LOPT_MAX_STEPS": "-3"}, "LOPT_MAX_STEPS must be between 1"),
    ({"LOPT_MAX_QUEUED_PER_VISITOR": "two"}, "LOPT_MAX_QUEUED_PER_VISITOR must be a whole number"),
])
def test_bad_host_variables_are_named(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(hosting.HostingError, match=message):
        hosting.limits()


def test_the_app_stops_in_one_line_on_a_bad_variable_or_home(tmp_path):
    """Before anything starts: one line naming the variable, no traceback."""
    afile = tmp_path / "not-a-folder"
    afile.write_text("x")
    for env, want in (({"LOPT_MAX_UPLOAD_MB": "9" * 40, "LOPT_HOME": str(tmp_path / "h")}, "LOPT_MAX_UPLOAD_MB"),
                      ({"LOPT_HOME": str(afile)}, "LOPT_HOME")):
        p = subprocess.run([sys.executable, str(ROOT / "app.py")], env={**_env(), **env}, capture_output=True,
                           text=True, timeout=120)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode != 0 and len(lines) == 1 and want in lines[0] and "Traceback" not in p.stderr, p.stderr


def _env():
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith("LOPT_")}


def test_public_host_limits_refuse_what_they_cap():
    lim = hosting.Limits(allowed_models=None, public=True, max_batch_size=8, max_eval_size=100, max_steps=50)
    assert "smollm2-135m" in lim.models()
    ok = dict(steps=50, batch_size=8, eval_size=100)
    for bad, message in ((dict(model="/etc"), "not allowed on this host"),
                         (dict(batch_size=16), "LOPT_MAX_BATCH_SIZE"),
                         (dict(eval_size=0), "eval_size=0"),
                         (dict(eval_size=101), "LOPT_MAX_EVAL_SIZE"),
                         (dict(steps=51), "LOPT_MAX_STEPS")):
        with pytest.raises(ConfigError, match=message):
            lim.check(RunConfig(**{**ok, **bad}))
    lim.check(RunConfig(steps=50, batch_size=8, eval_size=100))


# ---------------------------------------------------------------- through the app, three visitors

@pytest.fixture(scope="module")
def public_app(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("publichome")
    seed_home(home)
    proc, url = start_app(home, {"LOPT_PUBLIC": "1", "LOPT_ALLOWED_MODELS": tiny_model_dir,
                                 "LOPT_MAX_QUEUED_PER_VISITOR": "1", "LOPT_MAX_QUEUED": "2",
                                 "GRADIO_TEMP_DIR": str(home.parent / "gradio-tmp")})  # its own, to look into
    yield url, tiny_model_dir, home
    stop_app(proc)


def _train(client, tiny, **kw):
    status, picked = client.predict(**{**TRAIN, "model": tiny, **kw}, api_name="/train")
    return status, (picked.get("value") if isinstance(picked, dict) else picked)


def _runs(client) -> list[str]:
    upd, _ = client.predict(None, api_name="/runs")
    return [v for _, v in upd["choices"]]


def _state(home, run_id):
    from lopt_core.store.sqlite import Store
    return Store(home / "runs.sqlite").get(run_id)["state"]


def test_visitors_own_their_runs_and_the_queue_caps_hold(public_app):
    from gradio_client import Client
    url, tiny, home = public_app
    ada, bob, cy = (Client(url, verbose=False) for _ in range(3))

    status, a_run = _train(ada, tiny, steps=5000, eval_every=0)  # long enough to still be running below
    assert "Queued" in status, status
    status, _ = _train(ada, tiny)
    assert "Not started" in status and "LOPT_MAX_QUEUED_PER_VISITOR" in status  # one unfinished job each

    # Bob neither sees nor can touch Ada's run
    assert a_run in _runs(ada) and a_run not in _runs(bob)
    said = bob.predict(a_run, api_name="/stop")
    missing = bob.predict("20990101-000000-lopt1-abcdef", api_name="/stop")
    assert said == missing.replace("20990101-000000-lopt1-abcdef", a_run), (said, missing)  # nothing tells them apart
    assert "another visitor" not in said and _state(home, a_run) in ("queued", "running")
    with pytest.raises(Exception, match="no longer exists"):
        bob.predict(a_run, api_name="/delete")
    with pytest.raises(Exception, match="no longer exists"):
        bob.predict(a_run, api_name="/rerun")

    status, b_run = _train(bob, tiny, steps=3)
    assert "Queued" in status, status
    status, _ = _train(cy, tiny)
    assert "Not started" in status and "the queue is full" in status and "LOPT_MAX_QUEUED" in status

    said = ada.predict(a_run, api_name="/stop")  # the owner can
    assert "another visitor" not in said
    t0 = time.time()
    while _state(home, a_run) in ("queued", "running") and time.time() - t0 < 120:
        time.sleep(0.5)
    assert _state(home, a_run) == "stopped"
    _, _, msg, _ = ada.predict(a_run, api_name="/delete")
    assert "Deleted" in msg and a_run not in _runs(ada)
    status, _ = _train(cy, tiny, steps=2)  # room again: Ada's job ended
    assert "Queued" in status, status
    assert b_run in _runs(bob) and b_run not in _runs(cy)


def test_forged_tokens_and_malformed_numbers_through_the_api(public_app):
    """A visitor who sends made-up tokens stays one visitor (their session): the per-visitor cap holds. Numbers
    of the wrong type or out of a slider's range are refused with the box named, not a bare "Error"."""
    import secrets
    from gradio_client import Client
    url, tiny, home = public_app
    from lopt_core.store.sqlite import Store
    dan = Client(url, verbose=False)
    t0 = time.time()  # the previous test's short runs end first: only the per-visitor cap can refuse below
    while Store(home / "runs.sqlite").list(states=("queued", "running")) and time.time() - t0 < 120:
        time.sleep(0.5)
    status, d_run = _train(dan, tiny, steps=5000, eval_every=0)
    assert "Queued" in status, status
    for _ in range(3):
        status, _ = _train(dan, tiny, token=secrets.token_hex(16))
        assert "Not started" in status and "LOPT_MAX_QUEUED_PER_VISITOR" in status, status
    for bad, kind in (("5", "str"), ([1, 2], "list"), ({"a": 1}, "dict")):
        with pytest.raises(Exception, match=f"steps must be a number, got {kind}"):
            _train(dan, tiny, steps=bad)
    with pytest.raises(Exception, match=r"prompt length n \(virtual tokens\): Value 5000 is greater than"):
        _train(dan, tiny, n=5000)
    dan.predict(d_run, api_name="/stop")


def test_guided_experiments_fit_the_hosts_caps():
    """A full preset evaluates on every test example; on a host with LOPT_MAX_EVAL_SIZE it uses the first N."""
    from lopt_core.sweeps import presets
    lim = hosting.Limits(allowed_models=None, public=True, max_eval_size=500, max_steps=100)
    assert lim.fit({"steps": 150, "batch_size": 8, "eval_size": 0}) == {"steps": 100, "batch_size": 8,
                                                                      "eval_size": 500}
    for p in presets.PRESETS.values():
        for spec in p.specs(quick=False, hub=False, limits=lim):
            spec.validate(lim)  # no ConfigError: every configuration is within the caps
            assert spec.knobs["eval_size"] == 500 and spec.knobs["steps"] == 100


def test_caps_count_every_identity_of_a_visitor_and_their_analyses(tmp_path):
    """A visitor who signs in keeps the jobs they queued under their browser token; an analysis of their run
    counts as a job; a launch of two sweeps needs two places."""
    from lopt_core.store.sqlite import Store
    store = Store(tmp_path / "runs.sqlite")
    token = owners.mint_token(SECRET)
    before = owners.visitor(public=True, token=token, session="s1", secret=SECRET)
    store.create("r1", RunConfig(), owner=before.owner)           # queued under b:<token>
    store.create("r2", RunConfig(), state="done", owner=before.owner)
    store.create_analysis("a1", "r2", "evaluate", {})             # queued: counts for r2's owner
    signed = owners.visitor(public=True, username="ada", token=token, session="s2", secret=SECRET)
    assert owners.unfinished_jobs(store, signed.keys) == 2 and owners.unfinished_jobs(store) == 2
    lim = hosting.Limits(allowed_models=None, public=True, max_queued_per_visitor=3)
    owners.check_room(store, lim, signed)                          # a third fits
    with pytest.raises(owners.QueueFull, match="LOPT_MAX_QUEUED_PER_VISITOR"):
        owners.check_room(store, lim, signed, jobs=2)               # a two-sweep launch does not
    other = owners.visitor(public=True, session="s3")
    owners.check_room(store, lim, other, jobs=3)                   # someone else's jobs are not theirs


def test_the_store_filters_a_visitors_runs_by_the_owner_index(tmp_path):
    """A poll reads the visitor's runs (and, when the host shows them, others' finished non-upload runs) in SQL,
    the same set Visitor.visible keeps, instead of every run of the host."""
    from lopt_core.store.sqlite import Store
    store = Store(tmp_path / "runs.sqlite")
    rows = [("mine", "s:a", "running", "sst2"), ("theirs-done", "s:b", "done", "sst2"),
            ("theirs-live", "s:b", "running", "sst2"), ("their-file", "s:b", "done", "file"), ("host", None, "done", "sst2")]
    for rid, owner, state, task in rows:
        store.create(rid, RunConfig(task=task, data_file="x.csv" if task == "file" else None), state=state,
                     owner=owner)
    for show in (False, True):
        who = owners.Visitor(("s:a",), public=True, show_others=show)
        got = [r["run_id"] for r in store.list(**who.query())]
        assert got == [r["run_id"] for r in who.visible(store.list())]
        assert got == (["mine", "theirs-done", "host"] if show else ["mine"])
    import sqlite3
    with sqlite3.connect(store.path) as c:
        plan = " ".join(str(r[-1]) for r in c.execute("EXPLAIN QUERY PLAN SELECT * FROM runs WHERE owner IN (?)",
                                                      ("s:a",)))
    assert "runs_owner" in plan


# ---------------------------------------------------------------- downloads: one-time links for their own session

def _link_app(tmp_path, monkeypatch, ttl_s=300.0):
    """A bare FastAPI app serving links.ROUTE, a zip in a downloads entry, and the Links that serve it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from lopt_core.hosting import downloads, links
    monkeypatch.setenv("LOPT_HOME", str(tmp_path))
    entry = downloads.new_entry("download", "r1")
    (entry / "r1.zip").write_bytes(b"PK zip bytes")
    grants, app = links.Links(ttl_s=ttl_s), FastAPI()
    links.mount(app, grants)
    return TestClient(app), grants, entry / "r1.zip"


def test_a_download_link_serves_once_and_only_to_the_session_that_asked(tmp_path, monkeypatch):
    """Another session, no session, a forged or changed signature, an expired link and a second fetch are all
    refused, each saying why and none naming a server path; the owner's first fetch gets the file, which then goes."""
    from urllib.parse import parse_qs, urlsplit
    client, grants, zipped = _link_app(tmp_path, monkeypatch)
    url = "/" + grants.issue(zipped, "sess-ada")
    path, query = urlsplit(url).path, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    refused = [(dict(query, session_hash="sess-bob"), 403, "not valid for this session"),
               ({k: v for k, v in query.items() if k != "session_hash"}, 403, "needs the session"),
               (dict(query, sig="0" * 64), 403, "signature does not match"),
               (dict(query, exp=str(int(query["exp"]) + 3600)), 403, "signature does not match"),
               (dict(query, exp="soon"), 403, "expiry is not a time"),
               (dict(query, sig="é" * 64), 403, "signature does not match")]  # not ASCII: refused, not a 500
    for params, status, said in refused:
        r = client.get(path, params=params)
        assert (r.status_code, said in r.text) == (status, True), (params, r.status_code, r.text)
        assert str(tmp_path) not in r.text and "zip" not in r.text
    r = client.get(url)
    assert r.status_code == 200 and r.content == b"PK zip bytes"
    assert 'filename="r1.zip"' in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    assert not zipped.parent.exists()  # spent: the entry went with the file
    r = client.get(url)
    assert r.status_code == 404 and "already used" in r.text and str(tmp_path) not in r.text


def test_other_visitors_downloads_never_prune_a_link_still_out(tmp_path, monkeypatch):
    """Eight quick exports by anyone prune the downloads folder to its bound, but an entry whose one-time link
    has not been fetched stays until it is (or expires, or its page asks for a newer link); a link serves only a
    downloads entry."""
    from lopt_core.hosting import downloads
    client, grants, zipped = _link_app(tmp_path, monkeypatch)
    url = "/" + grants.issue(zipped, "sess-ada")
    for i in range(downloads.KEEP + 2):
        downloads.new_entry("download", f"other{i}")
    assert zipped.is_file() and len(downloads.entries()) == downloads.KEEP + 1
    assert client.get(url).status_code == 200
    first = downloads.new_entry("download", "mine") / "a.zip"  # one page's newer link supersedes its older one,
    first.write_bytes(b"PK")                                    # so a page pins one entry at a time
    old_url = "/" + grants.issue(first, "sess-ada")
    second = downloads.new_entry("download", "mine2") / "b.zip"
    second.write_bytes(b"PK")
    grants.issue(second, "sess-ada")
    assert client.get(old_url).status_code == 404
    with pytest.raises(ValueError, match="only a file of a downloads entry"):
        grants.issue(tmp_path / "runs.sqlite", "sess-ada")


def test_an_expired_download_link_is_refused(tmp_path, monkeypatch):
    client, grants, zipped = _link_app(tmp_path, monkeypatch, ttl_s=60)
    url = "/" + grants.issue(zipped, "sess-ada", now=time.time() - 120)
    r = client.get(url)
    assert r.status_code == 404 and "expired" in r.text and zipped.is_file()
    with pytest.raises(NotYours, match="no browser session"):
        grants.issue(zipped, None)


def test_a_consumed_uploads_gradio_copies_are_removed_and_nothing_else(tmp_path, monkeypatch):
    """Gradio keeps an upload as <its folder>/<hash>/<name>, twice; both go. A file outside its folder stays."""
    from lopt_core.hosting import upload_cache
    root = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(root))
    copies = [root / h / "data.csv" for h in ("aaaa", "bbbb")]
    for c in copies:
        c.parent.mkdir(parents=True)
        c.write_text("text,label\na,0\n")
    other = root / "cccc" / "data.csv"  # same name, another visitor's content
    other.parent.mkdir()
    other.write_text("text,label\nb,1\n")
    mine = tmp_path / "data.csv"
    mine.write_text("text,label\na,0\n")
    assert upload_cache.discard(mine) == 0 and mine.is_file()
    assert upload_cache.discard(copies[1]) == 2
    assert not any(c.exists() or c.parent.exists() for c in copies) and other.is_file()


# ---------------------------------------------------------------- polling: a poll costs what changed

def test_a_polls_mark_is_one_indexed_query_that_moves_with_every_change(tmp_path):
    """Store.mark (how many, last updated) of a visitor's runs reads the (owner, updated) index only; it moves when
    a run is added, changed, gets a curve point or is deleted, and stands otherwise. An older store gets the
    indexes when opened."""
    import sqlite3
    from lopt_core.store import sqlite as store_sql
    path = tmp_path / "runs.sqlite"
    store_sql.Store(path)
    with sqlite3.connect(path) as c:  # a store made before the poll indexes
        for name in ("runs_owner_updated", "runs_state_updated", "analyses_run"):
            c.execute(f"DROP INDEX {name}")
    store = store_sql.Store(path)
    with sqlite3.connect(path) as c:
        where, args = store_sql._runs_where(None, None, ("s:a", "b:t"), False)
        plan = " ".join(str(r[-1]) for r in c.execute(
            f"EXPLAIN QUERY PLAN SELECT COUNT(*), MAX(updated) FROM runs{where}", args))
        assert "COVERING INDEX runs_owner_updated" in plan, plan
        where, args = store_sql._runs_where(("queued",), None, None, False)
        plan = " ".join(str(r[-1]) for r in c.execute(f"EXPLAIN QUERY PLAN SELECT * FROM runs{where}", args))
        assert "runs_state_updated" in plan, plan
    who = owners.Visitor(("s:a",), public=True)
    marks = [store.mark(**who.query())]
    for change in (lambda: store.create("r1", RunConfig(), owner="s:a"),
                   lambda: store.update("r1", state="running"),
                   lambda: store.add_metric("r1", 1, "loss", 0.5),
                   lambda: store.add_metric("r1", 1, "accuracy", 0.5),
                   lambda: store.add_metric_rows([("r1", 2, "accuracy", 0.6, None, None)]),
                   lambda: store.delete("r1")):
        time.sleep(0.002)
        change()
        marks.append(store.mark(**who.query()))
        assert marks[-1] != marks[-2], marks
    store.create("theirs", RunConfig(), owner="s:b")  # another visitor's run is not this visitor's change
    assert store.mark(**who.query()) == marks[-1] == (0, None)


def test_a_tick_with_nothing_new_reads_no_row_and_sends_nothing(lopt_home, monkeypatch):
    """The Train tab's Timer: the first tick reads the runs and sends the page; later ticks, while the store's
    mark stands, skip every output without listing a run; a new curve point moves the progress at once and the
    curves once CURVE_EVERY_S has passed since they were drawn; an evaluation redraws them at once."""
    import gradio as gr
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui import train
    from lopt_core.ui.common import AppContext
    jobs = JobManager(start=False)
    try:
        jobs.store.create("r1", RunConfig(), state="running")
        with gr.Blocks() as demo:
            train.build(AppContext(jobs=jobs, limits=hosting.Limits(allowed_models=None)))
        tick = next(f.fn for f in demo.fns.values() if any(t[1] == "tick" for t in f.targets))
        lists = []
        listing = jobs.store.list
        jobs.store.list = lambda *a, **k: lists.append(1) or listing(*a, **k)
        out = tick("r1", None, "")
        assert len(lists) == 1 and out[0] != gr.skip() and out[4] is not None
        for _ in range(3):
            again = tick("r1", out[4], "")
            assert again == (gr.skip(),) * 7 and len(lists) == 1
        clock = [1000.0]
        monkeypatch.setattr(train.time, "time", lambda: clock[0])
        first = tick("r1", None, "")  # drawn at t=1000
        jobs.store.add_metric("r1", 1, "loss", 0.7)
        clock[0] += 1
        moved = tick("r1", first[4], "")
        assert len(lists) == 3 and moved[1] != gr.skip() and moved[4] != first[4]  # the progress moved
        assert moved[0] == gr.skip()  # the curves wait: a second since they were drawn
        jobs.store.add_metric("r1", 2, "loss", 0.6)
        clock[0] += train.CURVE_EVERY_S
        later = tick("r1", moved[4], "")
        assert later[0] != gr.skip() and later[0] is not None  # redrawn, with step 2
        assert tick("r1", later[4], "") == (gr.skip(),) * 7
        jobs.store.add_metric("r1", 2, "accuracy", 0.8)  # an evaluation: at once
        clock[0] += 0.5
        assert tick("r1", later[4], "")[0] != gr.skip()
    finally:
        jobs.close()


def test_pages_watching_one_run_share_a_ticks_reads_and_never_keep_a_stale_state(lopt_home, monkeypatch):
    """A class on the Train tab: sixteen pages ticking within SHARED_TTL_S of each other read the run's progress
    and draw its curves once. A page served a value read before its own look at the store's mark keeps no mark,
    so when the run ends in that window, its next tick shows the end instead of skipping on a stale 'running'."""
    import gradio as gr
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui import train
    from lopt_core.ui.common import AppContext
    jobs = JobManager(start=False)
    try:
        jobs.store.create("r1", RunConfig(steps=10), state="running")
        jobs.store.add_metric("r1", 1, "loss", 0.7)
        with gr.Blocks() as demo:
            train.build(AppContext(jobs=jobs, limits=hosting.Limits(allowed_models=None)))
        tick = next(f.fn for f in demo.fns.values() if any(t[1] == "tick" for t in f.targets))
        calls = {"progress": 0, "curves": 0}
        real_progress, real_curves = train.run_progress, train.run_curves
        monkeypatch.setattr(train, "run_progress", lambda *a: calls.__setitem__("progress", calls["progress"] + 1)
                            or real_progress(*a))
        monkeypatch.setattr(train, "run_curves", lambda *a, **k: calls.__setitem__("curves", calls["curves"] + 1)
                            or real_curves(*a, **k))
        clock = [1000.0]
        monkeypatch.setattr(train.time, "time", lambda: clock[0])
        pages = [tick("r1", None, "") for _ in range(16)]
        assert calls == {"progress": 1, "curves": 1}
        assert all(p[0] is pages[0][0] and "step 1/10" in p[1] for p in pages)
        assert pages[0][4][-1] is not None and all(p[4][-1] is None for p in pages[1:])  # only the reader's is fresh
        jobs.store.update("r1", state="done")  # the run ends within the shared window
        ended = tick("r1", pages[0][4], "")  # the mark moved: this page reads, but gets the shared value
        assert "running" in ended[1] and ended[4][-1] is None and calls["progress"] == 1
        clock[0] += train.SHARED_TTL_S
        now = tick("r1", ended[4], "")  # not skipped: it had kept no mark
        assert now != (gr.skip(),) * 7 and "done" in now[1] and calls == {"progress": 2, "curves": 2}
        assert now[4][-1] is not None and tick("r1", now[4], "") == (gr.skip(),) * 7
    finally:
        jobs.close()


def test_the_sweep_tabs_labels_count_runs_in_sql(tmp_path):
    """Every tick of the Sweep tab labels the launches with their run counts: counted by the sweep index, not by
    reading every run of the host."""
    from lopt_core.store.sqlite import Store
    from lopt_core.ui import sweep
    store = Store(tmp_path / "runs.sqlite")
    store.create_sweep("sw1", {"task": "sst2"}, [("a", RunConfig()), ("b", RunConfig())])
    store.create("solo", RunConfig())
    store.list = None  # any full read would fail here
    (label, value), = sweep.sweep_choices(store)
    assert value == "sw1" and label.endswith("· 2 runs")


def _quiet(home, timeout=120):
    """Wait until no run of the host is queued or running (the caps then refuse nothing of the tests' own)."""
    from lopt_core.store.sqlite import Store
    t0 = time.time()
    while Store(home / "runs.sqlite").list(states=("queued", "running")) and time.time() - t0 < timeout:
        time.sleep(0.5)


def test_downloads_and_uploads_through_the_public_app(public_app, tmp_path):
    """/download answers a one-time link for the page's session, no server path; Gradio's file route does not
    serve the downloads folder; a queued run's upload leaves no copy in Gradio's upload folder."""
    import re
    import httpx
    from gradio_client import Client, handle_file
    url, tiny, home = public_app
    ada, bob = Client(url, verbose=False), Client(url, verbose=False)
    _quiet(home)
    status, run_id = _train(ada, tiny, steps=2, eval_every=0)
    assert "Queued" in status, status
    _quiet(home)
    said, _ = ada.predict(run_id, api_name="/download")
    assert str(home) not in said and "/tmp" not in said
    link = url + re.search(r"\((lopt/download/[^)]+)\)", said).group(1)
    zipped = next((home / "downloads").glob("*/*.zip"))
    assert httpx.get(f"{url}gradio_api/file={zipped}").status_code in (403, 404)  # not Gradio's to serve
    for who in (None, bob.session_hash):
        forged = re.sub(r"session_hash=[^&]+", f"session_hash={who}" if who else "", link)
        r = httpx.get(forged)
        assert r.status_code == 403 and str(home) not in r.text, (r.status_code, r.text)
    assert ada.session_hash in link
    r = httpx.get(link)
    assert r.status_code == 200 and r.content[:2] == b"PK"
    assert httpx.get(link).status_code == 404 and not zipped.exists()

    data = tmp_path / f"upload-{run_id}.csv"  # a name found nowhere else in Gradio's folder
    data.write_text("text,label\n" + "".join(f"review {i} of {'good' if i % 2 else 'bad'},{i % 2}\n"
                                             for i in range(40)))
    status, _ = _train(ada, tiny, task="file", method="prompt_tuning", n=2, steps=2, eval_every=0, eval_size=4,
                       upload=handle_file(str(data)), label_words="")
    assert "Queued" in status, status
    left = list((home.parent / "gradio-tmp").rglob(data.name))
    assert left == [], left
    _quiet(home)
