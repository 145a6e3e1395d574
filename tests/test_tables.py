"""What a researcher expects of a tracker (issue 20): the runs and configurations tables as CSV (the CLI's
`list --csv`, `configs --csv` and the Compare tab's "Export CSV", by a one-time link for the page that asked),
and a sweep's results JSON from the Sweep tab the same way. In-process, fast."""
from __future__ import annotations

import io
import json
import re
import zipfile
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest

from lopt_core.analysis import tables
from lopt_core.config import RunConfig
from lopt_core.methods import METHODS

D = 576


def add_run(store, rid, method="lopt1", n=20, r=2, acc=0.8, seed=0, lr=0.03, task="sst2", state="done",
            owner=None, sweep_id=None, created=True) -> str:
    cfg = RunConfig(task=task, method=method, n=n, r=r, seed=seed, steps=10, eval_size=8)
    if created:
        store.create(rid, cfg, state="running", owner=owner)
    store.update(rid, state=state, accuracy=acc, trainable_params=METHODS[method].formula(n, r, D),
                 zero_shot_accuracy=0.5, steps_done=10, train_seconds=12.5,
                 result={"eval_examples": 8 if acc is not None else None, "data_source": "offline", "lr": lr,
                         "precision": "fp32"})
    return rid


@pytest.fixture
def store(lopt_home):
    from lopt_core.store.sqlite import Store
    return Store()


def _three_seeds_and_one(store):
    for seed, acc in enumerate((0.80, 0.82, 0.84)):
        add_run(store, f"l1-s{seed}", seed=seed, acc=acc)
    add_run(store, "pt", method="prompt_tuning", acc=0.75, lr=0.3)
    add_run(store, "live", acc=None, state="running")
    return store.list()


def _csv(table: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(table.to_csv(index=False)))


# ---------------------------------------------------------------- 1. the tables, through a CSV and back

def test_runs_csv_has_every_run_and_its_settings(store):
    back = _csv(tables.runs_table(_three_seeds_and_one(store)))
    assert list(back.columns) == tables.RUN_COLUMNS
    assert sorted(back.run_id) == ["l1-s0", "l1-s1", "l1-s2", "live", "pt"]  # one row per run, scored or not
    row = back.set_index("run_id").loc["l1-s1"]
    assert (row.method, row.n, row.r, row.seed, row.lr, row.batch_size, row.precision, row.state) == \
           ("lopt1", 20, 2, 1, 0.03, 8, "fp32", "done")
    assert (row.score, row.metric, row.zero_shot, row.eval_examples, row.steps) == (0.82, "accuracy", 0.5, 8, 10)
    pt = back.set_index("run_id").loc["pt"]
    assert pd.isna(pt.r) and pt.lr == 0.3  # prompt tuning has no rank: empty, not a made-up number
    assert pd.isna(back.set_index("run_id").loc["live"].score)


def test_configurations_csv_pools_seeds_with_per_seed_scores(store):
    back = _csv(tables.configs_table(_three_seeds_and_one(store)))
    assert list(back.columns) == tables.CONFIG_COLUMNS
    assert len(back) == 2  # LoPT-1 over three seeds, prompt tuning over one; the running run has no score
    l1 = back[back.method == "lopt1"].iloc[0]
    assert (l1.n, l1.r, l1.seeds, l1.seed_list, l1.task, l1.eval_examples) == (20, 2, 3, "0;1;2", "sst2", 8)
    assert [float(s) for s in l1.scores.split(";")] == [0.80, 0.82, 0.84]
    assert l1["mean"] == pytest.approx(0.82) and l1["std"] == pytest.approx(0.02)
    assert sorted(l1.run_ids.split(";")) == ["l1-s0", "l1-s1", "l1-s2"]
    pt = back[back.method == "prompt_tuning"].iloc[0]
    assert pt.seeds == 1 and pd.isna(pt["std"]) and pd.isna(pt.r) and pt["mean"] == 0.75


# ---------------------------------------------------------------- 2. the command line

def test_list_and_configs_write_csv(store, tmp_path, capsys):
    from lopt_core.cli import main
    _three_seeds_and_one(store)
    out = tmp_path / "runs.csv"
    assert main(["list", "--csv", str(out)]) == 0
    assert len(pd.read_csv(out)) == 5 and "wrote" in capsys.readouterr().err
    assert main(["configs", "--csv"]) == 0  # no FILE: stdout
    got = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(got.method) == ["lopt1", "prompt_tuning"] and set(got.seeds) == {1, 3}
    assert main(["configs"]) == 0
    assert "seeds 0;1;2" in capsys.readouterr().out


# ---------------------------------------------------------------- 3. the app: one-time links for their own page

@pytest.fixture
def public_ctx(lopt_home):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from lopt_core.hosting import links
    from lopt_core.hosting.limits import Limits
    from lopt_core.jobs.manager import JobManager
    from lopt_core.ui.common import AppContext
    jobs = JobManager(start=False)
    ctx = AppContext(jobs=jobs, limits=Limits(allowed_models=None, public=True))
    app = FastAPI()
    links.mount(app, ctx.links)
    yield ctx, TestClient(app)
    jobs.close()


def _page(session: str):
    return SimpleNamespace(session_hash=session, username=None)


def _fetch(client, said: str, session: str | None = None):
    """GET the link in a tab's markdown answer, as its own page or with another page's session."""
    url = "/" + re.search(r"\]\((lopt/download/[^)]+)\)", said).group(1)
    return client.get(url if session is None else re.sub(r"session_hash=[^&]+", f"session_hash={session}", url))


def test_compare_export_zips_what_the_page_shows_once_for_its_own_session(public_ctx):
    ctx, client = public_ctx
    from lopt_core.ui import compare
    add_run(ctx.store, "ada-1", owner="s:ada", acc=0.8)
    add_run(ctx.store, "ada-2", owner="s:ada", acc=0.9, seed=1)
    add_run(ctx.store, "ada-other", owner="s:ada", task="arithmetic")  # another task: filtered out like the page
    add_run(ctx.store, "bob-1", owner="s:bob", acc=0.7)
    with gr.Blocks():
        on_export = compare.build(ctx)["export"]
    said = on_export("sst2", "(all)", False, None, _page("ada"))
    assert "works once" in said and "lopt_home" not in said
    assert _fetch(client, said, session="bob").status_code == 403  # another page's session
    r = _fetch(client, said)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        runs = pd.read_csv(z.open("lopt-tables/runs.csv"))
        configs = pd.read_csv(z.open("lopt-tables/configurations.csv"))
    assert sorted(runs.run_id) == ["ada-1", "ada-2"]  # not bob's, not another task's
    assert len(configs) == 1 and configs.seeds[0] == 2 and configs.scores[0] == "0.8;0.9"
    assert _fetch(client, said).status_code == 404  # once


def test_sweep_tab_downloads_the_shown_sweeps_results_json(public_ctx):
    ctx, client = public_ctx
    from lopt_core.ui import sweep
    cfg = RunConfig(method="lopt1", n=20, r=2, steps=10, eval_size=8)
    ctx.store.create_sweep("sw-ada", {"task": "sst2"}, [("sw-ada-0", cfg)], state="done", owner="s:ada")
    add_run(ctx.store, "sw-ada-0", created=False)
    with gr.Blocks():
        on_export = sweep.build(ctx)["export"]
    assert "Nothing to download" in on_export("sw-ada", None, _page("bob"))  # not bob's sweep
    said = on_export("sw-ada", None, _page("ada"))
    r = _fetch(client, said)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        doc = json.loads(z.read("sw-ada-results/sw-ada.json"))
    assert doc["sweep"]["sweep_id"] == "sw-ada" and [x["run_id"] for x in doc["runs"]] == ["sw-ada-0"]
    assert _fetch(client, said).status_code == 404


def test_a_failed_export_leaves_no_downloads_entry(lopt_home):
    from lopt_core.hosting import downloads

    def fail(folder):
        raise OSError("disk full")
    with pytest.raises(OSError):
        downloads.zipped("tables", "compare", "lopt-tables", fail)
    assert downloads.entries() == []
