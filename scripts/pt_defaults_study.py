"""Which difference costs prompt tuning its points? (issue 10)

A plain hand-written loop (prompt rows copied from token ids 1000-10000, constant lr 0.01, no warm-up, no decay,
no clipping) reached 0.90 on the first 300 SST-2 validation sentences where LoPT Lab's defaults gave 0.843-0.867.
This trains prompt tuning (n=20, 150 steps, batch 8) under each variant below, for several seeds, as one batched
group per seed (the variants differ only in per-configuration settings), and prints mean ± std per variant.

    LOPT_HOME=/tmp/ptstudy python scripts/pt_defaults_study.py [--seeds 0,1,2] [--steps 150] [--eval-size 300]

Clipping alone is not a variant (four prompts per group keep a seed within ~12 minutes on a 2-core CPU); its share
is what the hand loop gains beyond the init and schedule variants.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from lopt_core.config import RunConfig
from lopt_core.training.group import train_group
from lopt_core.lm.models import load_model
from lopt_core.store.sqlite import Store
from lopt_core.training.loop import new_run_id

VARIANTS = {  # name -> RunConfig fields that differ from the defaults
    "defaults (ids 0-5000, warm-up + linear decay, clip 1.0)": {},
    "init ids 1000-10000": {"method_knobs": {"vocab_ids": "1000-10000"}},
    "constant lr, no warm-up": {"warmup": 0.0, "lr_schedule": "constant"},
    "hand loop: ids 1000-10000, constant lr, no warm-up, no clipping":
        {"method_knobs": {"vocab_ids": "1000-10000"}, "warmup": 0.0, "lr_schedule": "constant", "grad_clip": 0.0},
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-size", type=int, default=300)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    store, lm = Store(), load_model()
    acc: dict[str, list[float]] = {v: [] for v in VARIANTS}
    print(f"# prompt tuning n=20, lr 0.01, {args.steps} steps, batch 8, first {args.eval_size} SST-2 validation "
          f"sentences, seeds {seeds}", flush=True)
    for seed in seeds:
        t0 = time.time()
        cfgs = [RunConfig(task="sst2", method="prompt_tuning", n=20, steps=args.steps, batch_size=8, lr=0.01,
                          eval_every=0, eval_size=args.eval_size, seed=seed, **kw) for kw in VARIANTS.values()]
        ids = [new_run_id(c) for c in cfgs]
        for rid, c in zip(ids, cfgs):
            store.create(rid, c, state="running")
        results = train_group(cfgs, ids, lambda rid, ev: store.recorder(rid)(ev), lm=lm, store=store)
        for name, res in zip(VARIANTS, results):
            acc[name].append(res["accuracy"])
            print(f"seed {seed}: {name}: {res['accuracy']:.3f} (final loss {res['final_loss']:.3f})", flush=True)
        print(f"seed {seed} took {time.time() - t0:.0f} s", flush=True)
    print("\n| variant | accuracy mean ± std | per seed |\n|---|---|---|")
    for name, a in acc.items():
        sd = statistics.stdev(a) if len(a) > 1 else 0.0
        print(f"| {name} | {statistics.mean(a):.3f} ± {sd:.3f} | {', '.join(f'{x:.3f}' for x in a)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
