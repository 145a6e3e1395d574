"""Measure each method at the same step budget (the README's accuracy table).

python scripts/defaults_table.py [--methods prompt_tuning,lopt1,lopt2,ulpt] [--steps 150] [--lr-<method> X]
Prints one markdown row per run as it finishes; runs are stored like any other run.
"""
from __future__ import annotations

import argparse
import sys

from lopt_core.config import RunConfig
from lopt_core.training.runs import run_and_record


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="prompt_tuning,lopt1,lopt2,ulpt")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--r", type=int, default=5)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-size", type=int, default=300)
    ap.add_argument("--lr", action="append", default=[], help="method=lr, repeatable")
    args = ap.parse_args()
    lrs = {k: float(v) for k, v in (s.split("=") for s in args.lr)}
    print("| method | n | r | lr | trainable | accuracy | zero-shot | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for m in args.methods.split(","):
        cfg = RunConfig(task=args.task, method=m, n=args.n, r=args.r, steps=args.steps, eval_every=0,
                        eval_size=args.eval_size, lr=lrs.get(m))
        res = run_and_record(cfg)
        print(f"| {m} | {cfg.n} | {cfg.r} | {res['lr']:g} | {res['trainable_params']:,} | {res['accuracy']:.3f} | "
              f"{res['zero_shot_accuracy']:.3f} | {res['train_seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
