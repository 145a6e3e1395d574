"""A short reading of a sweep's result, computed from its numbers (never canned text).

read_runs(rows) -> {"lines": [...], "markdown": "..."}: per test set, each low-rank configuration against the
reference prompt (prompt tuning) at the same n, how accuracy moves with r, the cheapest configuration within
noise of the best, and how large the noise is; with several tasks, how the same configurations fare on each.
"""
from __future__ import annotations

import math

from lopt_core.analysis import paired
from lopt_core.analysis.aggregate import Point, fmt_acc, points
from lopt_core.methods import METHODS, reference_method


def _points_gap(p: Point, ref: Point) -> str:
    diff = 100 * (p.mean - ref.mean)
    where = "the same as" if abs(diff) < 0.05 else (f"{abs(diff):.1f} points {'above' if diff > 0 else 'below'}")
    ratio = ref.trainable_params / p.trainable_params
    if round(ratio, 1) == 1.0:
        size = "the same number of parameters" if ratio == 1 else "about as many parameters"
    else:
        size = f"{ratio:.1f}× fewer parameters" if ratio > 1 else f"{1 / ratio:.1f}× more parameters"
    return f"{where} {ref.label.split(' n=')[0].lower()} with {size}"


def noise_points(pts: list[Point]) -> float:
    """Two standard errors of an accuracy, in points: from the seeds' spread when there are several seeds,
    else from the binomial error of the test set (p (1 - p) / N)."""
    spreads = [p.std / math.sqrt(p.seeds) for p in pts if p.seeds > 1]
    if spreads:
        return 200 * max(spreads)
    n_eval = _n_eval(pts[0])
    if not n_eval:
        return float("nan")
    p = sum(x.mean for x in pts) / len(pts)
    return 200 * math.sqrt(max(p * (1 - p), 1e-6) / n_eval)


def _n_eval(p: Point) -> int | None:
    try:
        return int(p.test_set.rsplit("|", 1)[1])
    except (ValueError, IndexError):
        return None


def read_test_set(pts: list[Point], by_id: dict | None = None) -> list[str]:
    """The reading of configurations scored on one test set; `by_id` (run id -> row) adds the paired verdicts."""
    lines = []
    compare = _comparer(by_id)  # each pair compared once (a bootstrap), for the verdicts and the cheapest line
    refs = {p.n: p for p in pts if p.method == reference_method()}
    ranked = sorted((p for p in pts if p.r is not None), key=lambda p: p.trainable_params)
    for p in ranked:
        ref = refs.get(p.n)
        if ref is not None:
            verdict = _paired(p, ref, compare)
            lines.append(f"{p.label.split(' n=')[0]} r={p.r} ({fmt_acc(p)}) is {_points_gap(p, ref)} "
                         f"({p.trainable_params:,} vs {ref.trainable_params:,})" + (f"; {verdict}" if verdict
                                                                                     else "") + ".")
    by_method: dict[tuple, list[Point]] = {}
    for p in ranked:
        by_method.setdefault((p.method, p.n), []).append(p)
    for (m, n), ps in by_method.items():
        if len(ps) < 2:
            continue
        ps = sorted(ps, key=lambda p: p.r)
        best = max(ps, key=lambda p: p.mean)
        lines.append(f"{METHODS[m].label} at n={n}: {ps[0].mean:.3f} at r={ps[0].r} → {ps[-1].mean:.3f} at "
                     f"r={ps[-1].r}; best r={best.r} ({best.mean:.3f}).")
    noise = noise_points(pts)
    best = max(pts, key=lambda p: p.mean)
    if not math.isnan(noise):
        near = {id(p): _near(p, best, noise, compare) for p in pts}
        # the fewest parameters; of two with as many, the better score
        cheapest = min((p for p in pts if near[id(p)][0]), key=lambda p: (p.trainable_params, -p.mean))
        if cheapest is not best:
            lines.append(f"Cheapest within noise of the best ({best.label}, {best.mean:.3f}, "
                         f"{best.trainable_params:,} parameters): {cheapest.label} at {cheapest.mean:.3f} with "
                         f"{cheapest.trainable_params:,} ({best.trainable_params / cheapest.trainable_params:.1f}× fewer"
                         f"{near[id(cheapest)][1]}).")
        else:
            lines.append(f"Best: {best.label} at {best.mean:.3f} with {best.trainable_params:,} parameters; nothing "
                         f"cheaper comes within noise of it.")
        seeds = max(p.seeds for p in pts)
        basis = (f"the spread of {seeds} seeds" if seeds > 1 else
                 f"one seed on {_n_eval(pts[0])} test examples (binomial error)")
        lines.append(f"Noise: differences under {noise:.1f} points (two standard errors, from {basis}) are not "
                     f"evidence of a difference.")
    zs = [p.zero_shot for p in pts if p.zero_shot is not None]
    if zs:
        lines.append(f"No prompt at all: {zs[0]:.3f}.")
        below = [p for p in sorted(pts, key=lambda p: p.mean) if p.mean < zs[0]]
        if below:
            lines.append("Below no prompt: " + ", ".join(f"{p.label} ({p.mean:.3f})" for p in below) +
                         f" score{'s' if len(below) == 1 else ''} under the frozen model without any prompt "
                         f"({zs[0]:.3f}): {'its' if len(below) == 1 else 'their'} training did not help here.")
    return lines


def _comparer(by_id: dict | None):
    """compare(p, q): the paired comparison of two configurations (None: no shared per-example records),
    remembered for this reading."""
    memo: dict = {}

    def compare(p: Point, q: Point) -> paired.Paired | None:
        if not by_id:
            return None
        key = (tuple(p.run_ids), tuple(q.run_ids))
        if key not in memo:
            memo[key] = paired.compare([by_id[i] for i in p.run_ids if i in by_id],
                                       [by_id[i] for i in q.run_ids if i in by_id])
        return memo[key]
    return compare


def _near(p: Point, best: Point, noise: float, compare) -> tuple[bool, str]:
    """Whether p is within noise of the best, and on what evidence: the paired test against the best where both
    recorded the same examples (so the line never contradicts a paired verdict above it), else the seeds' noise."""
    if p is best:
        return True, ""
    cmp = compare(p, best)
    if cmp is not None:
        return cmp.verdict != "significantly below", f"; {cmp.words()}"
    return 100 * (best.mean - p.mean) <= noise, ""


def _paired(p: Point, ref: Point, compare) -> str:
    """'significantly below prompt tuning (paired over 872 examples and 3 seeds: -2.1 points, 95% CI ...)'."""
    cmp = compare(p, ref)
    if cmp is None:
        return ""
    return f"{cmp.verdict} {ref.label.split(' n=')[0].lower()} ({cmp.words()})"


def read_runs(rows: list[dict]) -> dict:
    """The reading of a set of runs (one sweep, or a preset's sweeps): sections per test set."""
    pts = points(rows)
    if not pts:
        return {"lines": [], "markdown": "No configuration finished with an accuracy yet."}
    by_set: dict[str, list[Point]] = {}
    for p in pts:
        by_set.setdefault(p.test_set, []).append(p)
    lines, md = [], []
    for ps in by_set.values():
        head = f"**{ps[0].task}** on {ps[0].model} ({_n_eval(ps[0]) or '?'} test examples)"
        sect = read_test_set(ps, {r["run_id"]: r for r in rows})
        lines += sect
        md.append(head + "\n" + "\n".join(f"- {s}" for s in sect))
    if len(by_set) > 1:
        cross = _across_tasks(list(by_set.values()))
        lines += cross
        md.append("**Across tasks and models**\n" + "\n".join(f"- {s}" for s in cross))
    return {"lines": lines, "markdown": "\n\n".join(md)}


def _across_tasks(sets: list[list[Point]]) -> list[str]:
    """The same configurations (method, n, r) on each task and model: the gap to the reference prompt on each
    (a model is named where the sets span several: two models are never pooled, only set side by side)."""
    out = []
    models = len({p.model for ps in sets for p in ps}) > 1
    keys = set.intersection(*[{(p.method, p.n, p.r) for p in ps} for ps in sets])
    for m, n, r in sorted(k for k in keys if k[2] is not None):
        parts = []
        for ps in sets:
            p = next(x for x in ps if (x.method, x.n, x.r) == (m, n, r))
            ref = next((x for x in ps if x.method == reference_method() and x.n == n), None)
            if ref is None:
                continue
            parts.append(f"{100 * (p.mean - ref.mean):+.1f} points on {p.task}" + (f" ({p.model})" if models else ""))
        if len(parts) > 1:
            out.append(f"{METHODS[m].label} n={n} r={r} against prompt tuning: " + ", ".join(parts) + ".")
    return out
