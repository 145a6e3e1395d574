"""The Rank tab through the running app (gradio_client): spectra of two finished runs, a truncation curve as a
background job with its progress, nearest tokens, and the same numbers as the lopt_core functions the CLI
prints; "evaluate now" gives a stopped run its accuracy."""
from __future__ import annotations

import time

import pytest

from helpers import seed_home, start_app, stop_app
from helpers import seed_runs


@pytest.fixture(scope="module")
def rank_app(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("rankhome")
    seed_home(home)
    ids = seed_runs(home, tiny_model_dir, stopped=True)
    proc, url = start_app(home)
    yield url, ids, home
    stop_app(proc)


def test_rank_views_through_the_app(rank_app):
    from gradio_client import Client
    from lopt_core.analysis import spectrum, truncate
    from lopt_core.store import sqlite as store_mod
    url, ids, home = rank_app
    c = Client(url, verbose=False)
    spec_runs, trunc_run, near_run = c.predict([], None, None, api_name="/rank_runs")
    offered = {v for _, v in spec_runs["choices"]}
    assert offered == set(ids.values())

    fig, table, msg = c.predict([ids["lopt1"], ids["prompt_tuning"]], api_name="/spectrum")
    got = {row[0]: row[3] for row in table["data"]}
    assert got == {ids["lopt1"]: 2, ids["prompt_tuning"]: 6} and msg == ""
    st = store_mod.Store(home / "runs.sqlite")
    assert got[ids["lopt1"]] == spectrum.of_run(st.get(ids["lopt1"])).numerical_rank

    status, fig = c.predict(ids["prompt_tuning"], "1,3", "8", api_name="/truncate")
    assert "queued" in status or "running" in status or "done" in status
    t0 = time.time()
    while time.time() - t0 < 120:
        a = st.list_analyses(run_id=ids["prompt_tuning"], kind="truncate")[-1]
        if a["state"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert a["state"] == "done", a
    same = truncate.truncation_curve(st.get(ids["prompt_tuning"]), "1,3", eval_size=8)
    assert a["result"]["points"] == same["points"]         # the job and the CLI's function agree
    with pytest.raises(Exception, match="outside"):
        c.predict(ids["prompt_tuning"], "9", "8", api_name="/truncate")

    near = c.predict(ids["lopt1"], 3, api_name="/nearest")
    assert len(near["data"]) == 6 and "cos 3" in near["headers"]


def test_evaluate_now_gives_a_stopped_run_its_accuracy(rank_app):
    from gradio_client import Client
    from lopt_core.store import sqlite as store_mod
    url, ids, home = rank_app
    st = store_mod.Store(home / "runs.sqlite")
    assert st.get(ids["stopped"])["accuracy"] is None
    c = Client(url, verbose=False)
    assert "Evaluating" in c.predict(ids["stopped"], api_name="/evaluate")
    t0 = time.time()
    while st.get(ids["stopped"])["accuracy"] is None and time.time() - t0 < 120:
        time.sleep(0.5)
    row = st.get(ids["stopped"])
    assert row["accuracy"] is not None and row["result"]["evaluated_later"]
    with pytest.raises(Exception, match="no longer exists"):
        c.predict("no-such-run", api_name="/evaluate")
