"""Seeds aggregated: runs that differ only in their seed are one configuration, shown as mean ± std.

Runs are only compared when they were measured on the same test examples: the test-set key is the model,
task, data source and file, and the number of evaluated examples (a frontier across test sets is meaningless).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .methods import METHODS

# config fields that do not make a configuration different (seed varies within one; runtime fields do not count)
_NOT_IDENTITY = ("seed", "device", "eval_every", "eval_batch_size")


def scored(rows: list[dict]) -> list[dict]:
    """Runs that can be placed on a trade-off plot: an accuracy and a parameter count."""
    return [r for r in rows if r.get("accuracy") is not None and r.get("trainable_params")
            and r.get("state") in ("done", "stopped")]


def test_set_key(row: dict) -> str:
    c = row.get("config") or {}
    res = row.get("result") or {}
    n_eval = res.get("eval_examples") or c.get("eval_size")
    return f"{row.get('model')}|{row.get('task')}|{c.get('data_file') or ''}|{res.get('data_source') or c.get('data_source')}|{n_eval}"


def has_rank(method: str) -> bool:
    return METHODS[method].has_rank if method in METHODS else True


def config_key(row: dict) -> str:
    c = {k: v for k, v in (row.get("config") or {}).items() if k not in _NOT_IDENTITY}
    c.update(method=row["method"], n=row["n"], r=row["r"] if has_rank(row["method"]) else None)
    return json.dumps(c, sort_keys=True) + "|" + test_set_key(row)


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
    test_set: str
    zero_shot: float | None = None
    config: dict = field(default_factory=dict)

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
        name = METHODS[self.method].label if self.method in METHODS else self.method
        return f"{name} n={self.n}" + (f" r={self.r}" if self.r is not None else "")


def points(rows: list[dict]) -> list[Point]:
    """Scored runs grouped by configuration (seeds pooled), in order of first appearance."""
    out: dict[str, Point] = {}
    for row in scored(rows):
        k = config_key(row)
        p = out.get(k)
        if p is None:
            p = out[k] = Point(row["model"], row["task"], row["method"], row["n"],
                               row["r"] if has_rank(row["method"]) else None, row["trainable_params"], [], [],
                               test_set_key(row), row.get("zero_shot_accuracy"), row.get("config") or {})
        p.accuracies.append(float(row["accuracy"]))
        p.run_ids.append(row["run_id"])
    return list(out.values())


def fmt_acc(p: Point) -> str:
    return f"{p.mean:.3f}" + (f" ± {p.std:.3f}" if p.seeds > 1 else "")
