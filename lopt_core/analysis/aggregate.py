"""Seeds aggregated: runs that differ only in their seed are one configuration, shown as mean ± std.

Runs are only compared when they were measured on the same test examples: the test-set key is the model,
task, data source and file (with its columns), the split seed where the split depends on it (a user file's
60/40 split, an offline task's seeded split), and the number of evaluated examples. A frontier across test
sets is meaningless, and so is a line of accuracy against r that joins them.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from lopt_core.methods import METHODS

ALL = "(all)"  # the filter value that keeps every task (or model)

# config fields that do not make a configuration different (seed varies within one; runtime fields do not count)
_NOT_IDENTITY = ("seed", "device", "eval_every", "eval_batch_size")


def scored(rows: list[dict]) -> list[dict]:
    """Runs that can be placed on a trade-off plot: an accuracy and a parameter count."""
    return [r for r in rows if r.get("accuracy") is not None and r.get("trainable_params")
            and r.get("state") in ("done", "stopped")]


def task_label(row: dict) -> str:
    """The task as a person reads it: a registered task's name, or file:<file name> for an uploaded file."""
    if row.get("task") != "file":
        return str(row.get("task"))
    return f"file:{Path((row.get('config') or {}).get('data_file') or '').name}"


def test_set_key(row: dict, pooled: bool = False) -> str:
    """Which test examples the run's accuracy was measured on; runs with equal keys can share a frontier.
    pooled=True leaves out the split seed, so the seeds of one configuration pool (they differ only there).
    The number of evaluated examples is the last field."""
    from lopt_core.lm.models import canonical
    c = row.get("config") or {}
    res = row.get("result") or {}
    n_eval = res.get("eval_examples") or c.get("eval_size")
    if res.get("test_fingerprint"):  # recorded since the split became fixed per task: the exact test examples
        return "|".join([canonical(str(row.get("model"))), task_label(row), f"test {res['test_fingerprint']}",
                         str(n_eval)])
    source = str(res.get("data_source") or c.get("data_source"))
    unseeded = re.sub(r"\s*\((split )?seed \d+\)", "", source)
    parts = [canonical(str(row.get("model"))), task_label(row)]
    if row.get("task") == "file":
        parts += [c.get("data_file") or "", f"{c.get('text_column')}/{c.get('text_b_column') or ''}/"
                                           f"{c.get('label_column')}"]
    parts.append(unseeded)
    if not pooled and (row.get("task") == "file" or unseeded != source):
        parts.append(f"split seed {c.get('seed')}")
    return "|".join(parts + [str(n_eval)])


def has_rank(method: str) -> bool:
    return METHODS[method].has_rank if method in METHODS else True


def _defaults() -> dict:
    """Every RunConfig field's default: a config stored before a field existed means the default."""
    import dataclasses
    from lopt_core.config import RunConfig
    return {f.name: f.default for f in dataclasses.fields(RunConfig) if f.default is not dataclasses.MISSING}


def config_key(row: dict) -> str:
    c = {k: v for k, v in {**_defaults(), **(row.get("config") or {})}.items() if k not in _NOT_IDENTITY}
    c.update(method=row["method"], n=row["n"], r=row["r"] if has_rank(row["method"]) else None)
    if row.get("state") == "stopped":  # a run stopped early trained less: never pooled with finished ones
        c["stopped_at_step"] = row.get("steps_done")
    return json.dumps(c, sort_keys=True) + "|" + test_set_key(row, pooled=True)


def config_label(method: str, n, r) -> str:
    """"LoPT-1 n=20 r=5"; r left out where the method has no rank."""
    name = METHODS[method].label if method in METHODS else method
    return f"{name} n={n}" + (f" r={r}" if r is not None and has_rank(method) else "")


@dataclass
class Point:
    """One configuration: the mean and spread of its seeds."""
    model: str
    task: str
    method: str
    n: int
    r: int | None                  # None where the method has no rank
    trainable_params: int
    accuracies: list[float]
    run_ids: list[str]
    test_sets: set[str]            # the exact test-set keys of its runs (several where the split follows the seed)
    zero_shot: float | None = None
    config: dict = field(default_factory=dict)
    latest: float = 0.0            # creation time of its newest run
    stopped_at: int | None = None  # runs stopped early: the step they stopped at
    seed_list: list = field(default_factory=list)  # each run's seed, in the order of accuracies
    examples: int | None = None    # how many test examples each run was scored on

    @property
    def test_set(self) -> str:
        """Points with equal test_set were measured on the same examples (pooled over the same seeds)."""
        return " + ".join(sorted(self.test_sets))

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def std(self) -> float:
        k = len(self.accuracies)
        if k < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((a - m) ** 2 for a in self.accuracies) / (k - 1))

    @property
    def seeds(self) -> int:
        return len(self.accuracies)

    @property
    def label(self) -> str:
        stop = f" (stopped at step {self.stopped_at})" if self.stopped_at is not None else ""
        return config_label(self.method, self.n, self.r) + stop


def points(rows: list[dict]) -> list[Point]:
    """Scored runs grouped by configuration (seeds pooled), in order of first appearance."""
    out: dict[str, Point] = {}
    for row in scored(rows):
        k = config_key(row)
        p = out.get(k)
        if p is None:
            p = out[k] = Point(row["model"], task_label(row), row["method"], row["n"],
                               row["r"] if has_rank(row["method"]) else None, row["trainable_params"], [], [],
                               set(), row.get("zero_shot_accuracy"), row.get("config") or {},
                               stopped_at=row.get("steps_done") if row.get("state") == "stopped" else None)
        p.accuracies.append(float(row["accuracy"]))
        p.run_ids.append(row["run_id"])
        p.seed_list.append((row.get("config") or {}).get("seed"))
        size = (row.get("result") or {}).get("eval_examples")
        p.examples = size if not p.run_ids[:-1] or p.examples == size else None  # None: its runs' sizes differ
        p.test_sets.add(test_set_key(row))
        p.latest = max(p.latest, float(row.get("created") or 0.0))
    return list(out.values())


def one_test_set(pts: list[Point]) -> tuple[list[Point], int]:
    """The points measured on the newest point's test set, and how many other test sets were left out."""
    if not pts:
        return [], 0
    newest = max(pts, key=lambda p: p.latest).test_set
    return [p for p in pts if p.test_set == newest], len({p.test_set for p in pts}) - 1


def filter_rows(rows: list[dict], task: str | None, model: str | None) -> list[dict]:
    """Runs of one task (task_label) and one model; ALL or None keeps every one."""
    return [r for r in rows if (task in (None, ALL) or task_label(r) == task)
            and (model in (None, ALL) or r["model"] == model)]


def default_task(rows: list[dict], fallback: str | None = None) -> str | None:
    """The task a Compare page opens on: that of the newest run with an accuracy, else of the newest run."""
    for pool in (scored(rows), rows):
        if pool:
            return task_label(max(pool, key=lambda r: r.get("created") or 0.0))
    return fallback


def matching_reference(reference: list[dict] | None, task: str | None, model: str | None,
                       shown: list[dict]) -> list[dict] | None:
    """The reference sweep's rows when they belong beside the shown runs: the filter names the reference's own
    task (not ALL, not a file), and its model (or ALL while every shown run uses the reference's model)."""
    from lopt_core.lm.models import canonical
    if not reference or task in (None, ALL):
        return None
    ref_models = {canonical(r["model"]) for r in reference}
    rows = [r for r in reference if task_label(r) == task]
    if model in (None, ALL):
        if any(canonical(r["model"]) not in ref_models for r in shown):
            return None
    else:
        rows = [r for r in rows if canonical(r["model"]) == canonical(model)]
    return rows or None


def fmt_acc(p: Point) -> str:
    return f"{p.mean:.3f}" + (f" ± {p.std:.3f}" if p.seeds > 1 else "")


def metric_of(row: dict) -> str:
    """The name of a run's score in words ("accuracy", "exact match"): its result's, else its task's kind's."""
    from lopt_core.data.tasks import get_task, is_task
    metric = (row.get("result") or {}).get("metric")
    if metric is None:
        cfg = row.get("config") or {}
        task = row.get("task") or cfg.get("task")
        metric = get_task(task).metric if task and is_task(task) else \
            {"generation": "exact_match"}.get(cfg.get("kind"), "accuracy")
    return metric.replace("_", " ")


def metric_name(rows: list[dict]) -> str:
    """The score's name shared by all `rows` ("accuracy", "exact match"), or "score" when they differ."""
    names = {metric_of(r) for r in rows}
    return names.pop() if len(names) == 1 else "score"
