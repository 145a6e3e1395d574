"""Paired verdicts (analysis/paired.py) and the readings that use them: a gap is called significant only when
the paired bootstrap interval (seeds, then the same test examples) excludes zero; configurations below no prompt are named."""
from __future__ import annotations

import random

import pytest

from lopt_core.analysis import paired
from lopt_core.sweeps import readings


def _row(method, r, params, correct: str, seed=0, zs=0.5):
    acc = correct.count("1") / len(correct)
    return {"run_id": f"{method}-{r}-{seed}", "state": "done", "model": "m", "task": "arithmetic", "method": method,
            "n": 20, "r": r, "trainable_params": params, "accuracy": acc, "zero_shot_accuracy": zs,
            "config": {"method": method, "n": 20, "r": r, "seed": seed, "steps": 150, "task": "arithmetic"},
            "result": {"eval_examples": len(correct), "data_source": "offline", "correct": correct}}


def _bits(p: float, n: int = 400, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join("1" if rng.random() < p else "0" for _ in range(n))


def test_a_clear_gap_is_significant_and_a_tie_is_noise():
    base = _bits(0.5)
    better = "".join("1" if (c == "1" or i % 4 == 0) else "0" for i, c in enumerate(base))  # base plus some
    cmp = paired.compare([_row("lopt1", 2, 1, better)], [_row("prompt_tuning", 5, 1, base)])
    assert cmp.verdict == "significantly above" and cmp.low > 0 and cmp.examples == 400 and cmp.seeds == 1
    assert cmp.diff == pytest.approx((better.count("1") - base.count("1")) / 400)
    same = paired.compare([_row("lopt1", 2, 1, base)], [_row("prompt_tuning", 5, 1, base)])
    assert same.verdict == "within noise of" and same.diff == 0 and same.low == same.high == 0
    # two unrelated 50% runs: a few points apart by chance, the interval spans zero
    noise = paired.compare([_row("lopt1", 2, 1, _bits(0.5, seed=1))], [_row("prompt_tuning", 5, 1, _bits(0.5, seed=2))])
    assert noise.low < 0 < noise.high and noise.verdict == "within noise of"
    reverse = paired.compare([_row("prompt_tuning", 5, 1, base)], [_row("lopt1", 2, 1, better)])
    assert reverse.verdict == "significantly below"


def test_a_gap_one_unlucky_seed_made_is_noise_and_a_gap_every_seed_shows_is_not():
    """Seeds are resampled as well as examples: a reference that collapsed on one seed (Gemma 3's prompt tuning
    on SST-2: 0.881 and 0.701) is not 'significantly below' a configuration it beat on the other seed."""
    n = 872
    good0, good1 = _bits(0.87, n, seed=10), _bits(0.84, n, seed=11)
    ref0, ref1 = _bits(0.88, n, seed=12), _bits(0.70, n, seed=13)
    a = [_row("lopt1", 2, 1, good0, seed=0), _row("lopt1", 2, 1, good1, seed=1)]
    b = [_row("prompt_tuning", 5, 1, ref0, seed=0), _row("prompt_tuning", 5, 1, ref1, seed=1)]
    cmp = paired.compare(a, b)
    assert cmp.seeds == 2 and cmp.diff > 0.05 and cmp.verdict == "within noise of", cmp.words()
    # over examples alone, the same records would have looked significant: the seed level is what changed
    only_examples = paired.compare([_row("lopt1", 2, 1, good0 + good1)], [_row("prompt_tuning", 5, 1, ref0 + ref1)])
    assert only_examples.verdict == "significantly above"
    # a gap every seed shows stays significant
    steady = [_row("lopt1", 2, 1, _bits(0.90, n, seed=20 + s), seed=s) for s in range(2)]
    flat = [_row("prompt_tuning", 5, 1, _bits(0.80, n, seed=30 + s), seed=s) for s in range(2)]
    assert paired.compare(steady, flat).verdict == "significantly above"


def test_seeds_pair_with_seeds_and_unpaired_runs_give_no_verdict():
    a = [_row("lopt1", 2, 1, _bits(0.6, seed=s), seed=s) for s in (0, 1, 2)]
    b = [_row("prompt_tuning", 5, 1, _bits(0.6, seed=s + 10), seed=s) for s in (1, 2, 3)]
    assert paired.compare(a, b).seeds == 2, "seeds 1 and 2 are in both"
    assert paired.compare(a, [_row("prompt_tuning", 5, 1, _bits(0.6, n=300), seed=0)]) is None, "other examples"
    no_record = _row("prompt_tuning", 5, 1, _bits(0.6))
    no_record["result"].pop("correct")
    assert paired.compare(a, [no_record]) is None


def test_the_reading_gives_the_paired_verdict_and_names_what_is_below_no_prompt():
    base = _bits(0.55)
    worse = "".join("0" if i % 3 == 0 else c for i, c in enumerate(base))
    rows = [_row("prompt_tuning", 5, 11520, base, zs=0.45), _row("lopt1", 2, 1192, worse, zs=0.45)]
    lines = readings.read_runs(rows)["lines"]
    head = next(s for s in lines if s.startswith("LoPT-1 r=2"))
    assert "significantly below prompt tuning (paired over 400 examples:" in head and "95% CI" in head
    assert any(s.startswith(f"Below no prompt: LoPT-1 n=20 r=2 ({worse.count('1') / 400:.3f}) scores under")
               for s in lines)
    rows[1] = _row("lopt1", 2, 1192, base, zs=0.45)
    head = next(s for s in readings.read_runs(rows)["lines"] if s.startswith("LoPT-1 r=2"))
    assert "within noise of prompt tuning" in head
    assert not any(s.startswith("Below no prompt") for s in readings.read_runs(rows)["lines"])


def test_cheapest_within_noise_never_contradicts_a_paired_verdict():
    """Two seeds spread apart make the seed noise wide; a configuration 3 points down on every example set is
    still significantly below by the paired test, so it is not named "within noise of the best". One tied with
    the best on the examples is, with the paired words."""
    rows = []
    for seed in (0, 1):
        base = _bits(0.8 if seed else 0.7, n=800, seed=seed)  # the seeds' means 10 points apart: wide noise
        worse = "".join("0" if i % 25 == 0 else c for i, c in enumerate(base))  # ~3 points down, every seed
        rows += [_row("prompt_tuning", 5, 11520, base, seed=seed), _row("lopt1", 1, 596, worse, seed=seed),
                 _row("ulpt", 2, 1192, base, seed=seed)]
    lines = readings.read_runs(rows)["lines"]
    assert any(s.startswith("LoPT-1 r=1") and "significantly below prompt tuning" in s for s in lines)
    cheapest = next(s for s in lines if s.startswith("Cheapest within noise"))
    assert "ULPT n=20 r=2" in cheapest and "LoPT-1" not in cheapest and "paired over 800 examples and 2 seeds" in cheapest
    noise = next(s for s in lines if s.startswith("Noise"))
    assert float(noise.split("under ")[1].split(" points")[0]) > 3, "the seeds' noise alone would have let LoPT-1 in"


def test_of_two_as_cheap_within_noise_the_better_is_named():
    """LoPT-1 r=2 and ULPT r=2 both have 1,192 parameters and are both within noise of prompt tuning: the
    reading names the one that scored higher (arithmetic's atlas: 0.224 against 0.204)."""
    rows = []
    for seed in (0, 1):
        base = _bits(0.5, n=400, seed=seed)
        best = "".join("1" if i % 50 == 0 else c for i, c in enumerate(base))   # ~1 point up
        other = _bits(0.47, n=400, seed=100 + seed)  # right on other examples: a noisy gap, 3 points down
        rows += [_row("prompt_tuning", 5, 11520, best, seed=seed), _row("lopt1", 2, 1192, other, seed=seed),
                 _row("ulpt", 2, 1192, base, seed=seed)]
    for order in (rows, rows[::-1]):
        lines = readings.read_runs(order)["lines"]
        assert any(s.startswith("LoPT-1 r=2") and "within noise of prompt tuning" in s for s in lines), lines
        cheapest = next(s for s in lines if s.startswith("Cheapest within noise"))
        assert "ULPT n=20 r=2" in cheapest, cheapest
