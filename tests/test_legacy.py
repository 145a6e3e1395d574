"""Homes written before the package move still open: tests/fixtures/legacy was written by the flat-layout code
(commit 22aa6be, tests/fixtures/make_legacy_fixture.py). Its store, sweep and artifacts load, and every
prompt rebuilds from its saved factors and seeded frozen tensors to the prompt it was trained to."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lopt_core.config import RunConfig
from lopt_core.store.sqlite import Store
from lopt_core.training import artifacts

LEGACY = Path(__file__).parent / "fixtures" / "legacy" / "home"


@pytest.fixture
def legacy_home(lopt_home):
    shutil.copytree(LEGACY, lopt_home)
    return lopt_home


def test_an_old_store_lists_its_runs_and_sweep(legacy_home):
    store = Store()
    rows = store.list()
    assert sorted(r["method"] for r in rows) == ["lopa", "lopt1", "lopt2", "lora", "prompt_tuning", "ulpt", "ulpt"]
    assert all(r["state"] == "done" and r["accuracy"] is not None for r in rows)
    sweep = store.get_sweep("sweep-legacy")
    assert sweep["state"] == "done" and [r["r"] for r in store.list(sweep_id="sweep-legacy")] == [1, 2]
    # the recorded folders were absolute paths of the machine that wrote them: read beside the store instead
    assert all(Path(r["artifact_dir"]).parent == legacy_home / "artifacts" for r in rows)


def test_old_configs_read_in_todays_shape(legacy_home):
    """LoPT-2's activation was a RunConfig field: it moves into method_knobs; lopa_hidden is dropped."""
    cfgs = {r["method"]: RunConfig.from_dict(r["config"]) for r in Store().list()}
    assert "activation" in Store().list()[0]["config"]  # the stored dicts are old-shaped
    assert cfgs["lopt2"].method_knobs == {"activation": "relu"}
    assert cfgs["lopt1"].method_knobs == {} and not hasattr(cfgs["lopa"], "lopa_hidden")
    for c in cfgs.values():
        c.validate()


def test_old_artifacts_load_and_rebuild(legacy_home, tiny_lm):
    for row in Store().list():
        cfg, method = artifacts.load_method(row["artifact_dir"], tiny_lm)  # SoftPrompt.load checks the rebuild
        assert cfg.method == row["method"]
        if method.changes_model:  # LoRA: its saved tensors go into the model it wraps, for scoring only
            with method.attached(tiny_lm):
                assert method.scoring_args()["peft_model"] is not None
        else:
            assert method.num_trainable() == row["trainable_params"]
        if row["method"] == "lopt2":
            assert method.activation == "relu"
