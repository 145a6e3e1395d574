"""Runs on different numbers of the same test examples: the cause named, and a comparison on the shared ones."""
from __future__ import annotations

import pytest

from lopt_core.analysis import aggregate, shared_examples
from lopt_core.plots import figures as plots


def _run(rid, method, r, correct, zs=0.7, task="sst2", model="smollm2-135m", seed=0, split_seed=0):
    return {"run_id": rid, "state": "done", "model": model, "task": task, "method": method, "n": 20, "r": r,
            "trainable_params": 1000 * r, "accuracy": correct.count("1") / len(correct), "zero_shot_accuracy": zs,
            "created": 1.0, "config": {"method": method, "n": 20, "r": r, "seed": seed, "eval_size": len(correct)},
            "result": {"eval_examples": len(correct), "correct": correct, "test_fingerprint": f"fp{len(correct)}-{split_seed}",
                       "data_source": "offline: sst2", "split_seed": split_seed}}


QUICK = [_run("q1", "lopt1", 1, "1100110011"), _run("q2", "lopt1", 2, "1111110011")]      # 10 examples
FULL = [_run("f1", "ulpt", 1, "11001100110000000000", zs=0.6)]                            # 20: the first 10 shared


def test_the_cause_is_named_in_words():
    assert shared_examples.describe(QUICK) is None, "one test set: nothing to explain"
    assert shared_examples.describe(QUICK + FULL) == "10 vs 20 examples of sst2; the first 10 are shared"
    other_task = [_run("t", "lopt1", 1, "1010101010", task="rte")]
    assert shared_examples.describe(QUICK + other_task) == "2 tasks (rte, sst2)"
    other_seed = [_run("s", "lopt1", 1, "1010101010", split_seed=1)]
    assert "different test splits of sst2" in shared_examples.describe(QUICK + other_seed)
    note = " ".join(a.text for a in plots.tradeoff_figure(QUICK + FULL).layout.annotations)
    assert "10 vs 20 examples of sst2" in note and "compare on the shared examples" in note


def test_runs_are_rescored_on_the_shared_first_examples():
    out, left = shared_examples.on_shared(QUICK + FULL)
    assert not left and len(out) == 3
    full = next(r for r in out if r["run_id"] == "f1")
    assert full["accuracy"] == pytest.approx(0.6) and full["result"]["correct"] == "1100110011"
    assert full["zero_shot_accuracy"] is None, "no prompt's score on the first 10 was never measured by that run"
    assert next(r for r in out if r["run_id"] == "q1")["zero_shot_accuracy"] == 0.7
    assert len({aggregate.test_set_key(r) for r in out}) == 1, "one test set now: paired, one frontier"
    fig = plots.tradeoff_figure(out)
    assert any(t.name == "Pareto frontier" for t in fig.data)
    assert FULL[0]["accuracy"] == pytest.approx(0.3), "the stored rows are not changed"


def test_a_run_without_per_example_results_is_left_out_and_named():
    old = _run("old", "prompt_tuning", 1, "1" * 20)
    del old["result"]["correct"]
    out, left = shared_examples.on_shared(QUICK + [old])
    assert [r["run_id"] for r in left] == ["old"] and {r["run_id"] for r in out} == {"q1", "q2"}
    same_size, none_left = shared_examples.on_shared(QUICK + [{**old, "result": {**old["result"], "eval_examples": 10},
                                                               "config": {**old["config"], "eval_size": 10}}])
    assert not none_left and len(same_size) == 3, "one size: nothing to re-score, nothing left out"


def test_the_cli_pools_configurations_on_shared_examples(tmp_path, monkeypatch, capsys):
    import io

    import pandas as pd

    from lopt_core import cli
    from lopt_core.config import RunConfig
    from lopt_core.store.sqlite import Store
    monkeypatch.setenv("LOPT_HOME", str(tmp_path))
    store = Store()
    old = _run("old", "prompt_tuning", 1, "1" * 20)
    del old["result"]["correct"]
    for row in QUICK + FULL + [old]:
        store.create(row["run_id"], RunConfig(model="smollm2-135m", task="sst2", method=row["method"], n=20,
                                              r=row["r"], eval_size=row["config"]["eval_size"]), state="running")
        store.update(row["run_id"], state="done", accuracy=row["accuracy"], trainable_params=row["trainable_params"],
                     zero_shot_accuracy=row["zero_shot_accuracy"], result=row["result"])
    assert cli.main(["configs", "--shared-examples", "--csv", "-"]) == 0
    out = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out.out))
    assert set(table["eval_examples"]) == {10} and len(table) == 3
    assert table[table["method"] == "ulpt"]["mean"].item() == pytest.approx(0.6)
    assert "left out: old recorded no per-example results" in out.err


def test_the_cli_prints_the_shipped_atlas_the_app_draws(capsys):
    from lopt_core import cli
    from lopt_core.sweeps import results_file
    if "arithmetic" not in results_file.atlas_tasks():
        pytest.skip("no arithmetic atlas file in this build")
    assert cli.main(["configs", "--atlas", "--task", "arithmetic"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7 and all("arithmetic" in x and "seeds 0;1" in x for x in lines)
