"""The shipped atlas (assets/atlas/*.json, made by scripts/atlas.sh): each file is the sweep its command names,
finished, and states its machine, precision and time. A file exported from the wrong sweep (atlas.sh once took
the newest finished sweep in the store, an arithmetic sweep, for SST-2's seed 1) fails here."""
from __future__ import annotations

import shlex

import pytest

from lopt_core import cli
from lopt_core.analysis.aggregate import has_rank
from lopt_core.sweeps import results_file

DOCS = results_file.atlas()


KEYS = ("model", "task", "method", "n", "r", "seed", "steps", "batch_size", "eval_size")


def _grid(command: str) -> list[tuple]:
    """The configurations a stored sweep command names, read by the CLI's own parser and spec builder."""
    args = cli._parser().parse_args(shlex.split(command)[3:])  # after "python -m lopt_core"
    return sorted(tuple(getattr(c, k) for k in KEYS) for c in cli.sweep_spec_from_args(args).validate().configs())


@pytest.mark.parametrize("doc", DOCS, ids=[d["sweep"]["sweep_id"] for d in DOCS])
def test_each_file_is_the_finished_sweep_its_command_names(doc):
    assert doc["sweep"]["command"].split()[3] == "sweep" and doc["sweep"]["state"] == "done"
    assert sorted(tuple(r["config"][k] for k in KEYS) for r in doc["runs"]) == _grid(doc["sweep"]["command"])
    for r in doc["runs"]:
        assert r["state"] == "done" and r["accuracy"] is not None
        assert r["result"]["steps_done"] == r["config"]["steps"]
        assert r["result"]["precision"] in ("fp32", "bf16") and r["result"]["train_seconds"] > 0
        assert r["result"]["eval_examples"] > 0 and r["result"].get("correct"), "per-example records, for pairing"
    assert doc["machine"]["cpu"] and doc["machine"]["torch"] and doc["exported"]


def test_the_atlas_holds_what_the_evidence_issue_asks_so_far():
    """SST-2's rank sweep on the offline default: 13 configurations, each with seeds 0-2; a harder task with at
    least 6 configurations of 2 seeds; the second model's SST-2 sweep with 2 seeds."""
    seeds: dict[tuple, set] = {}
    for row in results_file.atlas_rows():
        r = row["r"] if has_rank(row["method"]) else None  # a rankless method's r is a placeholder
        seeds.setdefault((row["model"], row["task"], row["method"], row["n"], r), set()).add(row["config"]["seed"])
    sst2 = {k: v for k, v in seeds.items() if k[:2] == ("smollm2-135m", "sst2") and k[3] == 20}
    assert len(sst2) == 13 and all(v >= {0, 1, 2} for v in sst2.values())
    harder = {k: v for k, v in seeds.items() if k[1] != "sst2" and len(v) >= 2}
    assert len(harder) >= 6
    gemma = {k: v for k, v in seeds.items() if k[:2] == ("gemma3-270m", "sst2")}
    assert len(gemma) >= 5 and all(len(v) >= 2 for v in gemma.values())
