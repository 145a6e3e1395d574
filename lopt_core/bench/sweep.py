"""Sweep benchmark: K configurations trained batched (one sweep) against the same K trained one after another.

    python -m lopt_core.bench.core --sweep                 # K = 4 and 8, at 1 torch thread and at all of them
    python -m lopt_core.bench.core --sweep --quick         # fewer steps and a smaller evaluation

Offline default model, SST-2, batch 8, n = 20. Two parts, every number from this machine in this process's
children:
  A. One training process per setting, measured inside it: training examples/s and peak extra memory of a
     solo run (train.train) and of the K=8 group (loop.train_group) at several prompts-per-pass values.
     Peak extra memory = peak RSS during training minus RSS after the model is loaded (glibc returns freed
     memory to the OS, and the kernel's peak counter is reset after loading), as in `bench.py`.
  B. The whole sweep as a user runs it: `python -m lopt_core sweep ...` once against `python -m lopt_core
     train ...` K times (one store, so the zero-shot accuracy is cached after the first, as in the app), wall
     time from launch to the last result including start-up, model load, zero-shot and final evaluation; peak
     RSS of each process; the final loss of each configuration both ways (they must match).
  C. The time to the complete rank-sensitivity picture (13 configurations), batched and one by one, at the
     presets' full and quick settings, projected from B's measured speeds with lopt_core.sweeps.estimate.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

KS = {4: ("prompt_tuning,lopt1,lopt2,ulpt", "5"), 8: ("lopt1,lopt2", "1,2,5,10")}  # (methods, r list) per K
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


def _status(pid="self") -> tuple[float, float]:
    st = Path(f"/proc/{pid}/status").read_text()
    get = lambda k: int(re.search(rf"{k}:\s+(\d+)", st).group(1)) / 1024  # noqa: E731  MiB
    return get("VmHWM"), get("VmRSS")


def _configs(k: int, steps: int, eval_size: int):
    from lopt_core.sweeps.spec import SweepSpec
    methods, rs = KS[k]
    return SweepSpec(task="sst2", methods=methods.split(","), n=[20], r=rs.split(","), seeds=[0],
                     knobs=dict(steps=steps, batch_size=8, eval_size=eval_size, eval_every=0, device="cpu"))


# ---------------------------------------------------------------- A: inside one process

def child(kind: str, k: int, per_pass: int, steps: int, prec: str = "fp32") -> dict:
    """kind 'solo': the first configuration alone (train.train); 'group': K configurations in one group."""
    from lopt_core.training.loop import train_group
    from lopt_core.lm import precision
    from lopt_core.lm.models import OFFLINE_DEFAULT
    from lopt_core.training.loop import train
    cfgs = _configs(k, steps, 16).validate().configs()
    lm = precision.load(OFFLINE_DEFAULT, "cpu", prec)   # auto: as a run here would (bf16 where measured faster)
    gc.collect()
    _, before = _status()
    Path("/proc/self/clear_refs").write_text("5")
    timed = []  # (examples, seconds) of each step after the first (a fresh process's first step is slow)

    def on_step(ev):
        if ev["type"] == "step" and ev["step"] > 1:
            dt = 8 / ev["examples_per_s"]                              # the step's seconds (batch 8)
            timed.append((ev.get("group_examples_per_s", ev["examples_per_s"]) * dt, dt))  # all prompts' examples
    if kind == "solo":
        res = [train(cfgs[0], lm=lm, save=False, on_event=on_step)]
    else:
        first = {}
        res = train_group(cfgs, lm=lm, save=False, prompts_per_pass=per_pass,
                          on_event=lambda rid, ev: first.setdefault("rid", rid) == rid and on_step(ev))
    peak, _ = _status()
    examples, seconds = sum(e for e, _ in timed), sum(s for _, s in timed)
    return {"kind": kind, "k": len(res), "per_pass": per_pass, "extra_mib": peak - before, "loaded_mib": before,
            "train_s": seconds, "ex_per_s": examples / seconds, "precision": lm.precision}


def part_a(threads: int, steps: int, passes: list[int], prec: str = "fp32") -> list[dict]:
    out = []
    for kind, pp in [("solo", 1)] + [("group", p) for p in passes]:
        cmd = [sys.executable, "-m", "lopt_core.bench.sweep", "--_child", kind, "--k", "8", "--per-pass", str(pp),
               "--steps", str(steps), "--precision", prec]
        env = dict(os.environ, **MALLOC, **_threads_env(threads))
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            raise RuntimeError(f"part A child {kind} per_pass={pp} failed")
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"  A {kind} per_pass={pp}: {out[-1]['ex_per_s']:.2f} ex/s, +{out[-1]['extra_mib']:.0f} MiB",
              file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------- B: the whole sweep, as a user runs it

def _threads_env(threads: int) -> dict:
    return {"OMP_NUM_THREADS": str(threads)} if threads else {}


def _timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak RSS MiB (polled from /proc), stdout of one command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0.0]

    def poll():
        while p.poll() is None:
            try:
                peak[0] = max(peak[0], _status(p.pid)[0])
            except (OSError, AttributeError):
                pass
            time.sleep(0.2)
    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, _ = p.communicate()
    th.join()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {p.returncode}")
    return time.perf_counter() - t0, peak[0], out


def part_b(k: int, threads: int, steps: int, eval_size: int, models: str) -> dict:
    from lopt_core.sweeps.spec import describe
    spec = _configs(k, steps, eval_size)
    cfgs = spec.validate().configs()
    res = {}
    for how in ("batched", "one_by_one"):
        home = Path(tempfile.mkdtemp(prefix="lopt-bench-"))
        env = dict(os.environ, LOPT_HOME=str(home), LOPT_MODEL_CACHE=models, HF_HUB_OFFLINE="1",
                   **_threads_env(threads))
        if how == "batched":
            cmd = [sys.executable, *shlex.split(spec.command())[1:], "--json"]
            wall, peak, out = _timed(cmd, env)
            doc = json.loads(out.strip().splitlines()[-1])
            losses = {(r["method"], r["r"]): r["final_loss"] for r in doc["runs"]}
            train_s = max(r["train_seconds"] for r in doc["runs"])
            eval_s = sum(r["eval_seconds"] for r in doc["runs"])
        else:
            wall, peak, losses, train_s, eval_s = 0.0, 0.0, {}, 0.0, 0.0
            for c in cfgs:
                cmd = [sys.executable, "-m", "lopt_core", "train", "--task", "sst2", "--method", c.method, "--n",
                       str(c.n), "--r", str(c.r), "--steps", str(steps), "--batch-size", "8", "--eval-size",
                       str(eval_size), "--eval-every", "0", "--device", "cpu", "--seed", "0", "--json"]
                w, pk, out = _timed(cmd, env)
                r = json.loads(out.strip().splitlines()[-1])
                wall, peak, train_s = wall + w, max(peak, pk), train_s + r["train_seconds"]
                eval_s += r["eval_seconds"]
                losses[(r["method"], r["r"])] = r["final_loss"]
        res[how] = {"wall_s": wall, "peak_mib": peak, "train_s": train_s, "eval_s": eval_s, "losses": losses}
        shutil.rmtree(home, ignore_errors=True)
        print(f"  B K={k} threads={threads or 'all'} {how}: {wall:.0f} s", file=sys.stderr, flush=True)
    diffs = [abs(res["batched"]["losses"][key] - v) for key, v in res["one_by_one"]["losses"].items()]
    return {"k": k, "threads": threads, "configs": [describe(c) for c in cfgs], **res,
            "max_loss_diff": max(diffs), "examples": k * steps * 8, "eval_size": eval_size}


# ---------------------------------------------------------------- main

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", default="4,8")
    p.add_argument("--threads-list", default="1,0", help="torch threads per measurement (0: all of them)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eval-size", type=int, default=200)
    p.add_argument("--passes", default="1,2,8", help="prompts per pass measured in part A (K=8)")
    p.add_argument("--a-steps", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--skip-a", action="store_true")
    p.add_argument("--only-a", action="store_true")
    p.add_argument("--precision", default="fp32", help="part A's model precision: fp32, bf16 or auto")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--per-pass", type=int, default=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._child:
        print(json.dumps(child(a._child, int(a.k), a.per_pass, a.steps, a.precision)))
        return
    if a.quick:
        a.steps, a.eval_size, a.a_steps = 4, 64, 2
    import torch
    from lopt_core.lm.models import offline_default_folder
    from lopt_core.sweeps.results_file import machine
    models = str(offline_default_folder().parent)
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({torch.get_num_threads()} threads by "
          f"default); offline default model, SST-2, batch 8, n=20\n")
    if not a.skip_a:
        rows = part_a(0, a.a_steps, [int(x) for x in a.passes.split(",")], a.precision)
        solo = rows[0]
        print(f"A. Training inside one process, all threads, K=8 configurations ({a.a_steps} steps each, "
              f"timed from step 2; model loaded: {solo['loaded_mib']:.0f} MiB RSS; {solo['precision']})")
        print("| setting | examples/s | × solo | peak extra MiB | × one run's |")
        print("|---|---|---|---|---|")
        for r in rows:
            name = "one run alone" if r["kind"] == "solo" else f"K=8, {r['per_pass']} prompt(s) per pass"
            print(f"| {name} | {r['ex_per_s']:.2f} | {r['ex_per_s'] / solo['ex_per_s']:.2f}× | "
                  f"{r['extra_mib']:.0f} | {r['extra_mib'] / solo['extra_mib']:.2f}× |")
        print()
    if a.only_a:
        return
    results = []
    for threads in [int(x) for x in a.threads_list.split(",")]:
        for k in [int(x) for x in a.k.split(",")]:
            results.append(part_b(k, threads, a.steps, a.eval_size, models))
    print(f"B. The whole sweep, launch to last result ({a.steps} steps of batch 8 per configuration, final "
          f"evaluation on {a.eval_size} SST-2 sentences, zero-shot once; one-by-one = K `train` commands)")
    print("| K | threads | one-by-one s | batched s | speed-up (whole) | train ex/s one-by-one | train ex/s batched "
          "| ratio | peak RSS MiB one-by-one | peak RSS MiB batched | max final-loss diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        o, b = r["one_by_one"], r["batched"]
        print(f"| {r['k']} | {r['threads'] or 'all'} | {o['wall_s']:.0f} | {b['wall_s']:.0f} | "
              f"**{o['wall_s'] / b['wall_s']:.2f}×** | {r['examples'] / o['train_s']:.2f} | "
              f"{r['examples'] / b['train_s']:.2f} | {o['train_s'] / b['train_s']:.2f}× | {o['peak_mib']:.0f} | "
              f"{b['peak_mib']:.0f} | {r['max_loss_diff']:.1e} |")
    part_c(results)


def part_c(results: list[dict]) -> None:
    """Project the rank-sensitivity preset (13 configurations) from the measured all-threads speeds."""
    from lopt_core.sweeps import estimate, presets
    from lopt_core.sweeps.estimate import Speed
    meas = [r for r in results if r["threads"] == 0] or results
    r = max(meas, key=lambda x: x["k"])
    b, o = r["batched"], r["one_by_one"]
    per_ex = b["train_s"] / r["examples"]
    eval_s = b["eval_s"] / (r["k"] * r["eval_size"])                     # final evaluations, per example
    # start-up of the batched process: what its wall time spent outside training and evaluation (incl. zero-shot)
    startup = b["wall_s"] - b["train_s"] - b["eval_s"] - r["eval_size"] * eval_s
    startup_one = (o["wall_s"] - o["train_s"] - o["eval_s"] - r["eval_size"] * eval_s) / r["k"]
    speed = Speed(per_ex, eval_s, 20, r["k"], f"bench K={r['k']}", startup_s=startup)
    print(f"\nC. Rank sensitivity (13 configurations), projected from B's all-threads K={r['k']} speeds "
          f"({per_ex:.3f} s per training example per prompt, {eval_s * 1000:.0f} ms per evaluated example, "
          f"start-up {startup:.0f} s batched / {startup_one:.0f} s per one-by-one run):")
    for quick in (False, True):
        cfgs = [c for s in presets.get("rank_sensitivity").specs(quick=quick, hub=False) for c in s.configs()]
        est = estimate.sweep_seconds(cfgs, speed=speed, startup_one_s=startup_one)
        print(f"  {'quick' if quick else 'full '} setting ({cfgs[0].steps} steps, eval "
              f"{cfgs[0].eval_size or 872}): batched {estimate.fmt(est.batched_s)}, one by one "
              f"{estimate.fmt(est.one_by_one_s)}")


if __name__ == "__main__":
    main()
