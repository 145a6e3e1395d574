"""End to end through the running app: `python app.py` on a free port with a tmp LOPT_HOME, driven with
gradio_client: a bad config gets a clear message, a short run on a tiny model trains to done, the runs table,
the curves and the trade-off plot show it, it generates side by side and exports as a PEFT adapter."""
from __future__ import annotations

import json
import time
import zipfile

import pytest

from helpers import TRAIN, seed_home, start_app, stop_app


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("apphome")
    seed_home(home)
    tiny = tiny_model_dir
    proc, url = start_app(home)
    yield url, tiny, home
    stop_app(proc)



def fetched(url: str, said: str) -> list[str]:
    """The names in the zip behind the one-time link of a /download or /export answer."""
    import io
    import re
    import httpx
    r = httpx.get(url + re.search(r"\((lopt/download/[^)]+)\)", said).group(1))
    assert r.status_code == 200, r.text
    return zipfile.ZipFile(io.BytesIO(r.content)).namelist()


def test_app_end_to_end(app):
    from gradio_client import Client
    url, tiny, home = app
    c = Client(url, verbose=False)

    status, _ = c.predict(**{**TRAIN, "model": tiny, "n": 2, "r": 5}, api_name="/train")
    assert "Not started" in status and "rank r" in status
    status, _ = c.predict(**{**TRAIN, "model": tiny, "lr": "fast"}, api_name="/train")
    assert "learning rate must be a number" in status
    readout = c.predict(model=tiny, method="lopt1", n=4, r=2, api_name="/params")
    assert ">72<" in readout and "1.8× fewer" in readout and "(128)" in readout  # r(n+d) = 2*(4+32) vs n*d = 128

    status, run_id = c.predict(**{**TRAIN, "model": tiny}, api_name="/train")
    run_id = run_id.get("value") if isinstance(run_id, dict) else run_id  # an update of the "Run shown" dropdown
    assert "Queued" in status and run_id and run_id in status
    t0, progress = time.time(), ""
    while time.time() - t0 < 120:
        fig, progress, err, table = c.predict(run_id, api_name="/watch")
        if "done" in progress or "failed" in progress or "interrupted" in progress:
            break
        time.sleep(1)
    assert "done" in progress, (progress, err, (home / "app.log").read_text()[-3000:])
    assert fig["type"] == "plotly"
    plot = json.loads(fig["plot"])
    loss = [t for t in plot["data"] if t.get("mode") == "lines"]
    assert loss and len(loss[0]["x"]) == 4

    out = c.predict("(all)", "(all)", None, [run_id], api_name="/compare")
    table, tradeoff = out[3], json.loads(out[4]["plot"])
    rows = [dict(zip(table["headers"], r)) for r in table["data"]]
    mine = [r for r in rows if r["run"] == run_id][0]
    assert "done" in mine["state"] and mine["trainable params"] == 72 and mine["accuracy"] is not None
    assert tradeoff["layout"]["xaxis"]["type"] == "log"
    assert any(t.get("name") == "LoPT-1" for t in tradeoff["data"])
    overlay = json.loads(c.predict([run_id], api_name="/overlay")["plot"])
    assert any(t.get("mode") == "lines" for t in overlay["data"])

    gen = c.predict([run_id], "a warm, funny film", True, 3, 0, 1, 0, api_name="/generate")
    assert "No prompt" in gen[0] and "LoPT-1" in gen[3]
    probs = gen[5]
    assert {p["label"] for p in probs["confidences"]} == {"negative", "positive"}

    names = fetched(url, c.predict(run_id, api_name="/export")[0])
    assert any(n.endswith("adapter_config.json") for n in names)
    assert any(n.endswith("adapter_model.safetensors") for n in names)
    assert any(n.endswith("prompt.safetensors") for n in fetched(url, c.predict(run_id, api_name="/download")[0]))

    with pytest.raises(Exception, match="no longer exists|choose a run"):
        c.predict("no-such-run", api_name="/export")
    _, _, msg, _ = c.predict(run_id, api_name="/delete")
    assert "Deleted" in msg
    out = c.predict("(all)", "(all)", None, [], api_name="/compare")
    assert run_id not in json.dumps(out[3])


SWEEP = dict(task="sst2", methods=["prompt_tuning", "lopt1"], n="4", r="1,2", seeds="0", steps=3, batch_size=2,
             eval_size=8, eval_every=0)
SWEEP_ORDER = ("model", "task", "methods", "n", "r", "seeds", "steps", "batch_size", "eval_size", "eval_every")


def test_app_sweep(app):
    """Through the Sweep tab's API: bad grids name the bad value and queue nothing; a 3-configuration grid on
    the tiny model runs as one sweep to done, and the watch pane reads it."""
    from gradio_client import Client
    from lopt_core.store.sqlite import Store
    url, tiny, home = app
    c = Client(url, verbose=False)
    store = Store(home / "runs.sqlite")

    def grid(**kw):
        return [{**SWEEP, "model": tiny, **kw}[k] for k in SWEEP_ORDER]

    def first(out):
        return out[0] if isinstance(out, (list, tuple)) else out

    before = len(store.list_sweeps())
    for bad, words in (({"r": "1,x"}, ("r list", "'x'")),
                       ({"n": "4", "r": "1,5"}, ("LoPT-1 n=4 r=5", "got 5")),
                       ({"methods": []}, ("methods is empty",))):
        readout = first(c.predict(*grid(**bad), api_name="/sweep_preview"))
        status = first(c.predict(*grid(**bad), api_name="/sweep_launch"))
        for w in words:
            assert w in readout and w in status, (bad, readout, status)
        assert "Not started" in status and "Traceback" not in status
    assert "choose a model" in first(c.predict("rank_sensitivity", "", True, api_name="/sweep_preset"))
    assert "unknown preset 'nope'" in first(c.predict("nope", tiny, True, api_name="/sweep_preset"))
    assert len(store.list_sweeps()) == before, "a bad sweep queued something"

    readout, table = c.predict(*grid(), api_name="/sweep_preview")
    assert "3 configurations" in readout and "train in step together" in readout
    counts = {r[0]: r[1] for r in table["data"]}
    assert counts == {"Prompt tuning n=4 seed 0": 128, "LoPT-1 n=4 r=1 seed 0": 36, "LoPT-1 n=4 r=2 seed 0": 72}

    status = first(c.predict(*grid(), api_name="/sweep_launch"))
    assert "Queued sweep" in status, status
    (sw,) = store.list_sweeps()[before:]
    assert sw["sweep_id"] in status
    t0 = time.time()
    while time.time() - t0 < 180 and store.get_sweep(sw["sweep_id"])["state"] in ("queued", "running"):
        time.sleep(1)
    sw = store.get_sweep(sw["sweep_id"])
    runs = store.list(sweep_id=sw["sweep_id"])
    assert sw["state"] == "done", (sw, [r["error"] for r in runs], (home / "app.log").read_text()[-3000:])
    assert len(runs) == 3 and all(r["state"] == "done" and r["accuracy"] is not None for r in runs)

    progress, _, curves, tradeoff, _, reading = c.predict(sw["sweep_id"], api_name="/sweep_watch")[:6]
    assert "3/3 configurations finished" in progress
    assert len([t for t in json.loads(curves["plot"])["data"] if t.get("mode") == "lines"]) == 3
    assert any(t.get("name") == "LoPT-1" for t in json.loads(tradeoff["plot"])["data"])
    assert "Reading" in reading and "python -m lopt_core sweep" in reading
    assert "already done" in first(c.predict(sw["sweep_id"], api_name="/sweep_stop"))
    assert "nothing to resume" in first(c.predict(sw["sweep_id"], api_name="/sweep_resume"))
