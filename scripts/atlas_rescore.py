"""Give an atlas sweep that predates per-example records its records: each finished run of the sweep is scored
again from its saved prompt on the same test examples (training/runs.evaluate_run, one model load for all), the
score is checked against the one recorded at training time, and the per-example record is written to the store
(`evaluated_later` says so). Then `sweep-export` writes the file again, and the paired tests can use it.

    LOPT_HOME=/work/atlas-home PYTHONPATH=. .venv/bin/python scripts/atlas_rescore.py SWEEP_ID
    LOPT_HOME=/work/atlas-home .venv/bin/python -m lopt_core sweep-export --sweep SWEEP_ID --out assets/atlas/NAME.json

A score that differs from the recorded one is not written and stops the script; each run is written once checked, so
running it again after an interruption does only the rest.
"""
from __future__ import annotations

import sys

from lopt_core.config import RunConfig
from lopt_core.lm import precision
from lopt_core.store.sqlite import Store
from lopt_core.training import artifacts
from lopt_core.training.runs import evaluate_run


def main(sweep_id: str) -> int:
    store = Store()
    rows = [r for r in store.list(sweep_id=sweep_id) if r["state"] == "done"]
    todo = [r for r in rows if not (r.get("result") or {}).get("correct")]
    print(f"{sweep_id}: {len(rows)} finished runs, {len(todo)} without per-example records")
    if not todo:
        return 0
    cfg = RunConfig.from_dict(todo[0]["config"])
    lm = precision.load(cfg.model, cfg.device, cfg.precision)
    for r in todo:  # each run written once checked, so an interrupted rescore keeps what it did
        out = evaluate_run(r["run_id"], store, lm=lm)  # scores only; nothing recorded by it
        same = abs(out["accuracy"] - r["accuracy"]) < 1e-9
        print(f"  {r['run_id']}: recorded {r['accuracy']:.6f}, scored again {out['accuracy']:.6f} on "
              f"{out['eval_examples']} examples {'(same)' if same else '(DIFFERENT: not written)'}", flush=True)
        if not same:
            return 1
        # the score is the recorded one: only the per-example record is added, no curve point
        result = dict(store.get(r["run_id"])["result"] or {}, correct=out["correct"], evaluated_later=True)
        store.update(r["run_id"], result=result)
        artifacts.update_result(r["artifact_dir"], result)
    print(f"wrote per-example records for {len(todo)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
