"""Paired comparison of two configurations scored on the same test examples: is one better, or is the gap noise?

Each finished run records, per test example, whether it was right (result["correct"], "0110..."). Two
configurations are paired seed by seed (the same seed: the same batches) and example by example. The interval
of the mean difference comes from a two-level paired bootstrap (seeded): each draw resamples the paired seeds,
then the examples, so it holds both noises a comparison has: which test examples were drawn, and which training
seeds. Resampling examples alone would call a gap significant that one unlucky seed made (Gemma 3's prompt
tuning scored 0.881 and 0.701 on SST-2's two seeds: over examples alone LoPT-1 r=2 came out "significantly
above" it, though it lost on one seed and won on the other). With one seed, only examples are resampled, and
the interval says nothing about seeds. The verdict: "significantly above", "significantly below" or "within
noise".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP = 2000


@dataclass(frozen=True)
class Paired:
    diff: float        # mean of a - b, as a fraction (0.012 = 1.2 points)
    low: float         # 95% interval of the difference
    high: float
    seeds: int         # seeds paired
    examples: int

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "significantly above"
        if self.high < 0:
            return "significantly below"
        return "within noise of"

    def words(self) -> str:
        """'paired over 872 examples and 3 seeds: -1.2 points, 95% CI -3.0 to +0.6'."""
        seeds = f" and {self.seeds} seeds" if self.seeds > 1 else ""
        return (f"paired over {self.examples} examples{seeds}: {100 * self.diff:+.1f} points, 95% CI "
                f"{100 * self.low:+.1f} to {100 * self.high:+.1f}")


def _by_seed(rows: list[dict]) -> dict[int, str]:
    out = {}
    for r in rows:
        correct = (r.get("result") or {}).get("correct")
        if correct:
            out[int((r.get("config") or {}).get("seed", 0))] = correct
    return out


def compare(a_rows: list[dict], b_rows: list[dict], seed: int = 0) -> Paired | None:
    """a against b (each a configuration's runs); None where no seed of both recorded the same examples."""
    a, b = _by_seed(a_rows), _by_seed(b_rows)
    seeds = sorted(s for s in a.keys() & b.keys() if len(a[s]) == len(b[s]))
    if not seeds:
        return None
    A = np.array([[c == "1" for c in a[s]] for s in seeds], dtype=float)      # (S, N)
    B = np.array([[c == "1" for c in b[s]] for s in seeds], dtype=float)      # (S, N)
    D = A - B                                                                  # (S, N) per seed and example
    S, N = D.shape
    rng = np.random.default_rng(seed)
    per_draw = D[rng.integers(0, S, (BOOTSTRAP, S))].mean(1)                   # (BOOTSTRAP, N) seeds resampled
    means = np.take_along_axis(per_draw, rng.integers(0, N, (BOOTSTRAP, N)), 1).mean(1)  # (BOOTSTRAP,)
    low, high = np.percentile(means, [2.5, 97.5])
    return Paired(float(D.mean()), float(low), float(high), S, N)
