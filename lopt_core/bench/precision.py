"""fp32 against bf16 on the machine at hand, in one process, interleaved step by step:

    python -m lopt_core.bench --precision [--n 20,100] [--threads 1,0] [--steps 2] [--eval 32]

For each thread count (0: all of torch's) and prompt length n it prints examples/s of a training step and of an
evaluation for LoPT Lab's engine (A: prompt tuning, shared prompt cache, answer-only label-word loss) and for
PEFT prompt tuning (B: its standard labels loss), each in fp32, in bf16 (frozen weights held in bf16) and in
bf16+fa (bf16 with the attention product in fp32, lm/attention.py), the ratio to fp32 for each, and A's speed
over B's with each side at its own best precision. Then one training step
of A under torch.profiler at each precision (the ops that take the time), and the auto verdict (lm/precision.py)
for the same model. The first line names the CPU, torch and the thread counts: the numbers are this CPU's.
"""
from __future__ import annotations

import argparse
import time

import torch

from lopt_core.bench.core import RunnerA, RunnerB, Setup, eval_B
from lopt_core.lm import engine, precision
from lopt_core.lm.models import OFFLINE_DEFAULT
from lopt_core.methods.prompt_tuning import PromptTuning

PRECISIONS = ("fp32", "bf16", "bf16+fa")   # bf16+fa: bf16 weights, the attention in fp32 (lm/attention.py)


def _train_eps(setups: dict, n: int, warmup: int, steps: int) -> dict:
    """examples/s of A and B at each precision; the four runners alternate step by step."""
    runners = {(p, w): (RunnerA if w == "A" else RunnerB)(setups[p], n) for p in PRECISIONS for w in "AB"}
    times = {k: [] for k in runners}
    for k in range(warmup + steps):
        order = list(runners.items())
        order = order if k % 2 == 0 else order[::-1]
        for key, r in order:
            s = setups[key[0]]
            t = time.perf_counter()
            r.step(s.batches[k % len(s.batches)])
            if k >= warmup:
                times[key].append(time.perf_counter() - t)
    batch = next(iter(setups.values())).batch
    return {key: batch * len(t) / sum(t) for key, t in times.items()}, runners


def _eval_eps(setups: dict, runners: dict, n: int, size: int) -> dict:
    out = {}
    for p in PRECISIONS:
        s = setups[p]
        test = engine.Encoded(s.test.ids[:size], s.test.labels[:size])
        m = PromptTuning(n, s.lm.d, runners[(p, "A")].prompt())
        t = time.perf_counter()
        engine.evaluate(s.lm, test, s.label_ids, m)
        out[(p, "A")] = size / (time.perf_counter() - t)
        full, s.test = s.test, test
        t = time.perf_counter()
        eval_B(s, runners[(p, "B")].model, n)
        out[(p, "B")] = size / (time.perf_counter() - t)
        s.test = full
    return out


def _profile(s: Setup, n: int, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile
    a = RunnerA(s, n)
    a.step(s.batches[0])  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        a.step(s.batches[1 % len(s.batches)])
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lopt_core.bench --precision")
    p.add_argument("--model", default=OFFLINE_DEFAULT)
    p.add_argument("--n", default="20,100")
    p.add_argument("--threads", default="1,0", help="torch threads per measurement; 0: all")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--eval", type=int, default=32, help="test examples per evaluation")
    p.add_argument("--no-profile", action="store_true")
    args = p.parse_args(argv)
    all_threads = torch.get_num_threads()
    print(f"# CPU: {precision.cpu_model()}; torch {torch.__version__}; threads available: {all_threads}; "
          f"batch {args.batch}, {args.warmup} warm-up + {args.steps} measured steps, eval {args.eval} examples")
    setups = {pr: Setup(args.model, args.batch, args.warmup + args.steps, precision=pr) for pr in PRECISIONS}
    cols = [f"{w} {pr}" for w in "AB" for pr in PRECISIONS]
    print(f"threads   n | train ex/s: {'  '.join(cols)} | eval ex/s: {'  '.join(cols)} | "
          f"A/B train, eval at each side's best   (in brackets: x fp32)")
    for th in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(th or all_threads)
        for n in [int(x) for x in args.n.split(",")]:
            tr, runners = _train_eps(setups, n, args.warmup, args.steps)
            ev = _eval_eps(setups, runners, n, args.eval)
            cells = lambda d: "  ".join(f"{d[(pr, w)]:.2f}" + ("" if pr == "fp32" else  # noqa: E731
                                         f" ({d[(pr, w)] / d[('fp32', w)]:.2f}x)") for w in "AB" for pr in PRECISIONS)
            best = {w: max(PRECISIONS, key=lambda pr: tr[(pr, w)]) for w in "AB"}
            print(f"{th or all_threads:>7} {n:>3} | {cells(tr)} | {cells(ev)} | "
                  f"{tr[(best['A'], 'A')] / tr[(best['B'], 'B')]:.2f}x ({best['A']} vs {best['B']}), "
                  f"{max(ev[(pr, 'A')] for pr in PRECISIONS) / max(ev[(pr, 'B')] for pr in PRECISIONS):.2f}x",
                  flush=True)
    torch.set_num_threads(all_threads)
    if not args.no_profile:
        for pr in PRECISIONS:
            print(f"\n# one training step of A at n={args.n.split(',')[0]}, {pr}, {all_threads} threads: "
                  f"the ops by self CPU time")
            print(_profile(setups[pr], int(args.n.split(",")[0])))
    v = precision.decide(args.model, "cpu", "auto")
    print(f"\n# auto verdict for {args.model} here: {v.precision} ({v.reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
