"""The rank-sensitivity sweep (13 configurations) in fp32 against bf16 on this machine, as a user runs it:

    python -m lopt_core.bench --sweep-precision [--steps 4,12] [--eval-size 64] [--threads 0]

For each precision it launches `python -m lopt_core sweep` of the rank-sensitivity preset's 13 configurations
(full settings but for steps and evaluation size) at two step counts, each a fresh process and a fresh store, and
times it from launch to the last result (start-up, model load, zero-shot and every final evaluation included). The
difference of the two wall times gives the sweep's seconds per training step; the runs' recorded evaluation
seconds give seconds per evaluated example. From these it projects the sweep at full settings (150 steps, all
872 SST-2 sentences for the zero-shot and each configuration) and prints fp32's time over bf16's. The
precisions alternate (fp32 short, bf16 short, fp32 long, bf16 long) so that a change in the host's load falls on
both. The first line names the CPU: the numbers are this CPU's.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from lopt_core.bench.sweep import _threads_env, _timed

PRECISIONS = ("fp32", "bf16")
FULL_EVAL = 872   # SST-2's validation sentences


def _spec(steps: int, eval_size: int, prec: str):
    from lopt_core.sweeps import presets
    specs = presets.get("rank_sensitivity").specs(quick=False, hub=False)
    assert len(specs) == 1, "the rank-sensitivity preset is one sweep"
    spec = specs[0]
    spec.knobs = dict(spec.knobs, steps=steps, eval_size=eval_size, precision=prec)
    return spec


def _run(steps: int, eval_size: int, prec: str, threads: int, models: str) -> dict:
    spec = _spec(steps, eval_size, prec)
    home = Path(tempfile.mkdtemp(prefix="lopt-bench-"))
    env = dict(os.environ, LOPT_HOME=str(home), LOPT_MODEL_CACHE=models, HF_HUB_OFFLINE="1", **_threads_env(threads))
    try:
        wall, peak, out = _timed([sys.executable, *shlex.split(spec.command())[1:], "--json"], env)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    runs = json.loads(out.strip().splitlines()[-1])["runs"]
    used = {r.get("precision") for r in runs}
    assert used == {prec}, f"asked for {prec}, the runs computed in {used}"
    print(f"  {prec} {steps} steps, eval {eval_size}: {wall:.0f} s", file=sys.stderr, flush=True)
    return {"wall_s": wall, "peak_mib": peak, "eval_s": sum(r["eval_seconds"] for r in runs), "k": len(runs),
            "losses": [r["final_loss"] for r in runs]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lopt_core.bench --sweep-precision")
    p.add_argument("--steps", default="4,12", help="the two step counts timed")
    p.add_argument("--eval-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0: all")
    a = p.parse_args(argv)
    import torch
    from lopt_core.lm.models import offline_default_folder
    from lopt_core.lm.precision import cpu_model
    s1, s2 = (int(x) for x in a.steps.split(","))
    models = str(offline_default_folder().parent)
    print(f"# CPU: {cpu_model()}; torch {torch.__version__}; threads: {a.threads or torch.get_num_threads()}; "
          f"rank-sensitivity preset (13 configurations, SST-2, n=20, batch 8) at {s1} and {s2} steps, final "
          f"evaluation on {a.eval_size} sentences, one fresh process and store each")
    got = {(pr, s): _run(s, a.eval_size, pr, a.threads, models) for s in (s1, s2) for pr in PRECISIONS}
    print("| precision | wall s at %d steps | wall s at %d steps | s per step (13 prompts) | ms per evaluated "
          "example | projected full sweep (150 steps, 872 sentences) | peak RSS MiB |" % (s1, s2))
    print("|---|---|---|---|---|---|---|")
    full = {}
    for pr in PRECISIONS:
        short, long = got[(pr, s1)], got[(pr, s2)]
        per_step = (long["wall_s"] - short["wall_s"]) / (s2 - s1)
        per_ex = long["eval_s"] / (long["k"] * a.eval_size)
        fixed = long["wall_s"] - s2 * per_step - (long["k"] + 1) * a.eval_size * per_ex  # start-up, model load
        full[pr] = fixed + 150 * per_step + (long["k"] + 1) * FULL_EVAL * per_ex
        print(f"| {pr} | {short['wall_s']:.0f} | {long['wall_s']:.0f} | {per_step:.2f} | {per_ex * 1000:.0f} | "
              f"{full[pr] / 60:.1f} min | {max(short['peak_mib'], long['peak_mib']):.0f} |")
    w = {pr: got[(pr, s2)]["wall_s"] for pr in PRECISIONS}
    print(f"\nbf16 finishes the full sweep {full['fp32'] / full['bf16']:.2f}x sooner than fp32 (projected); the "
          f"{s2}-step sweep as timed: {w['fp32'] / w['bf16']:.2f}x")
    diff = max(abs(x - y) for x, y in zip(got[("fp32", s2)]["losses"], got[("bf16", s2)]["losses"]))
    print(f"largest final-loss difference between the precisions after {s2} steps: {diff:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
