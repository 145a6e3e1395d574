"""Quick settings by measurement (issue: evidence): each sweep in LOPT_HOME (the prompt-tuning-vs-LoPT-1 preset's
configurations run at candidate quick settings, seeds 0-2, by the commands in bench/quick-settings-*.txt) as
one block: every configuration's score per seed, its mean, and whether each seed beats no prompt on the same
examples. A quick setting is good enough when every configuration of every seed does.
    LOPT_HOME=/work/quick-home PYTHONPATH=. .venv/bin/python scripts/quick_study.py
"""
from __future__ import annotations

import statistics

from lopt_core.analysis import aggregate
from lopt_core.store.sqlite import Store


def main() -> None:
    store = Store()
    for sw in store.list_sweeps():
        rows = [r for r in store.list(sweep_id=sw["sweep_id"]) if r["state"] == "done"]
        if not rows:
            continue
        zero = rows[0]["zero_shot_accuracy"]
        secs = max(r["train_seconds"] or 0 for r in rows)
        print(f"\n$ {sw['command']}\n  {sw['state']}; no prompt {zero:.3f} on {rows[0]['result']['eval_examples']} "
              f"examples; longest group trained {secs:.0f} s")
        beat_all = True
        for p in aggregate.points(rows):
            above = [a > zero for a in p.accuracies]
            beat_all &= all(above)
            scores = ", ".join(f"{a:.3f}" for _, a in sorted(zip(p.seed_list, p.accuracies)))
            print(f"  {p.label:24s} seeds {scores:24s} mean {statistics.mean(p.accuracies):.3f}  "
                  f"{'every seed above no prompt' if all(above) else f'{above.count(False)} seed(s) at or below'}")
        print(f"  => {'every configuration of every seed beats no prompt' if beat_all else 'NOT good enough'}")


if __name__ == "__main__":
    main()
