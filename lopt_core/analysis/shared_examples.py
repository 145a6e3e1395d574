"""Runs scored on different numbers of the same test examples: why their test sets differ, in words, and their
scores on the examples they share.

A run is scored on the first eval_size examples of its task's fixed test split (training/loop.py), so a quick
run on 300 SST-2 sentences and a full one on all 872 share the first 300. Where each recorded its per-example
results (result["correct"], "0110..."), both are re-scored here on the shared first k, without a model; a run
that recorded none (made before per-example results were kept) is left out and named, and the evaluate
analysis (jobs/analyses.py) re-scores it and records them.
"""
from __future__ import annotations

from lopt_core.analysis.aggregate import scored, task_label, test_set_key
from lopt_core.lm.models import canonical


def _source(row: dict) -> str:
    """Everything that picks a run's test split except how many of its examples were scored."""
    c, res = row.get("config") or {}, row.get("result") or {}
    return "|".join(str(x) for x in (canonical(str(row.get("model"))), task_label(row),
                                     res.get("data_source") or c.get("data_source"), res.get("split_seed"),
                                     c.get("data_file"), c.get("text_column"), c.get("label_column")))


def _size(row: dict) -> int | None:
    return (row.get("result") or {}).get("eval_examples") or (row.get("config") or {}).get("eval_size") or None


def describe(rows: list[dict]) -> str | None:
    """Why the scored runs were measured on different test sets, in words ("300 vs 872 examples of sst2; the
    first 300 are shared"); None where they share one."""
    rows = scored(rows)
    if len({test_set_key(r) for r in rows}) < 2:
        return None
    tasks = sorted({task_label(r) for r in rows})
    models = sorted({canonical(str(r["model"])) for r in rows})
    if len(tasks) > 1:
        return f"{len(tasks)} tasks ({', '.join(tasks[:3])}{', …' if len(tasks) > 3 else ''})"
    if len(models) > 1:
        return f"{len(models)} models ({', '.join(models[:3])})"
    if len({_source(r) for r in rows}) > 1:
        return f"different test splits of {tasks[0]} (another split seed or data file)"
    sizes = sorted({_size(r) for r in rows if _size(r)})
    if len(sizes) > 1:
        return f"{' vs '.join(str(s) for s in sizes)} examples of {tasks[0]}; the first {sizes[0]} are shared"
    return f"different test examples of {tasks[0]}"


def on_shared(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(every scored run re-scored on the first k test examples all runs of its split share, the runs left out
    because they recorded no per-example results). A split whose runs all have one size is kept as it is."""
    groups: dict[str, list[dict]] = {}
    for r in scored(rows):
        groups.setdefault(_source(r), []).append(r)
    out, left = [], []
    for members in groups.values():
        if len({_size(r) for r in members}) < 2:
            out += members
            continue
        have = [r for r in members if (r.get("result") or {}).get("correct")]
        left += [r for r in members if r not in have]
        if not have:
            continue
        k = min(len(r["result"]["correct"]) for r in have)
        for r in have:
            bits = r["result"]["correct"][:k]
            res = {**r["result"], "correct": bits, "eval_examples": k, "score": bits.count("1") / k,
                   "test_fingerprint": f"first {k} of {_source(r)}"}
            zs = r.get("zero_shot_accuracy") if _size(r) == k else None  # no prompt's score on these k is known
            out.append({**r, "accuracy": bits.count("1") / k, "zero_shot_accuracy": zs, "result": res})
    return out, left
