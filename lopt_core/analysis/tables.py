"""The runs and configurations tables as data: what `list --csv`, `configs --csv` and the Compare tab's
"Export CSV" write, and what the app's runs table shows.

One module so that a researcher's CSV and the page agree: a run's fields are read from its stored row here once
(the page only relabels and rounds them), and configurations are aggregate.points (seeds pooled exactly as the
plots pool them). Values stay machine-readable: method keys, raw states, full-precision scores, empty where a
value does not apply (r of a method without rank, std of one seed).
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from lopt_core.analysis import aggregate

# one row per run, newest first
RUN_COLUMNS = ["run_id", "state", "model", "task", "method", "n", "r", "trainable_params", "score", "metric",
               "zero_shot", "eval_examples", "train_seconds", "steps_done", "steps", "created", "lr", "batch_size",
               "seed", "precision", "sweep_id"]
# one row per configuration (its seeds pooled); seed_list and scores are ";"-joined, in the same order
CONFIG_COLUMNS = ["method", "n", "r", "trainable_params", "mean", "std", "seeds", "seed_list", "scores", "metric",
                  "task", "model", "eval_examples", "run_ids"]
SEP = ";"  # joins a configuration's per-seed values in one CSV cell
# whole numbers that some rows lack (r of a method without rank): pandas' Int64, so a CSV says 5, not 5.0
INT_COLUMNS = {"n", "r", "trainable_params", "eval_examples", "steps_done", "steps", "batch_size", "seed", "seeds"}


def run_record(row: dict) -> dict:
    """One stored run as RUN_COLUMNS: the result's measured lr and precision where it has them, else the config's."""
    c, res = row.get("config") or {}, row.get("result") or {}
    return {"run_id": row["run_id"], "state": row["state"], "model": row["model"], "task": aggregate.task_label(row),
            "method": row["method"], "n": row["n"], "r": row["r"] if aggregate.has_rank(row["method"]) else None,
            "trainable_params": row.get("trainable_params"), "score": row.get("accuracy"),
            "metric": aggregate.metric_of(row), "zero_shot": row.get("zero_shot_accuracy"),
            "eval_examples": res.get("eval_examples"), "train_seconds": row.get("train_seconds"),
            "steps_done": row.get("steps_done"), "steps": c.get("steps"),
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.get("created") or 0)),
            "lr": res.get("lr", c.get("lr")), "batch_size": c.get("batch_size"), "seed": c.get("seed"),
            "precision": res.get("precision", c.get("precision")), "sweep_id": row.get("sweep_id")}


def run_records(rows: list[dict]) -> list[dict]:
    return [run_record(r) for r in sorted(rows, key=lambda r: r.get("created") or 0.0, reverse=True)]


def _frame(recs: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(recs, columns=columns).astype({c: "Int64" for c in columns if c in INT_COLUMNS})


def runs_table(rows: list[dict]) -> pd.DataFrame:
    return _frame(run_records(rows), RUN_COLUMNS)


def config_records(rows: list[dict]) -> list[dict]:
    """Scored runs pooled over seeds (aggregate.points) as CONFIG_COLUMNS, in order of first appearance."""
    by_id = {r["run_id"]: r for r in rows}
    return [{"method": p.method, "n": p.n, "r": p.r, "trainable_params": p.trainable_params, "mean": p.mean,
             "std": p.std if p.seeds > 1 else None, "seeds": p.seeds,
             "seed_list": SEP.join(str(s) for s in p.seed_list), "scores": SEP.join(repr(a) for a in p.accuracies),
             "metric": aggregate.metric_of(by_id[p.run_ids[0]]),  # one configuration: one task
             "task": p.task, "model": p.model, "eval_examples": p.examples, "run_ids": SEP.join(p.run_ids)}
            for p in aggregate.points(rows)]


def configs_table(rows: list[dict]) -> pd.DataFrame:
    return _frame(config_records(rows), CONFIG_COLUMNS)


def write_tables(rows: list[dict], folder: Path) -> Path:
    """runs.csv and configurations.csv of `rows` in `folder` (made if missing); the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs_table(rows).to_csv(folder / "runs.csv", index=False)
    configs_table(rows).to_csv(folder / "configurations.csv", index=False)
    return folder
