"""The task-kinds table (issue: tasks): for each task swept into LOPT_HOME (scripts/atlas.sh arithmetic-rank, piqa-rank), no prompt
and every trained configuration: its score per seed and mean, train seconds, and the paired comparison with
no prompt on the same test examples (mean difference, its standard error over examples, and z = diff / SE).
  LOPT_HOME=... PYTHONPATH=. python scripts/tasks_table.py
"""
import math
import platform
import statistics
from collections import defaultdict

import torch

from lopt_core.config import RunConfig
from lopt_core.lm import precision
from lopt_core.store.sqlite import Store
from lopt_core.training import loop

store = Store()
rows = [r for r in store.list() if r["state"] == "done" and (r["result"] or {}).get("correct")]
cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
           platform.processor())
print(f"# {len(rows)} runs; torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
by_task = defaultdict(list)
for r in rows:
    by_task[r["task"]].append(r)


def paired(a: str, b: str) -> tuple[float, float]:
    d = [int(x) - int(y) for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return mean, se


for task, runs in by_task.items():
    cfg = RunConfig.from_dict(runs[0]["config"])
    lm = precision.load(cfg.model, cfg.device, cfg.precision)
    prep = loop.prepare(cfg, lm)
    zs = prep.objective.evaluate(lm, prep.test_set, None, None, cfg.eval_batch_size)
    base = "".join("1" if c else "0" for c in zs.correct)
    res0 = runs[0]["result"]
    print(f"\n## {task} ({res0['kind']}, {res0['metric']}), {len(base)} test examples, {res0['precision']}, "
          f"{cfg.steps} steps x batch {cfg.batch_size}")
    print(f"{'configuration':24s} {'params':>8s} {'score (seeds)':>24s} {'mean':>6s} {'vs no prompt (paired)':>28s} "
          f"{'train s':>8s}")  # train s: the run's train_seconds (a batched group's shared wall time)
    extra = "".join(f" {k} {v:.3f}" for k, v in zs.extra.items())
    print(f"{'no prompt':24s} {0:8d} {'':>24s} {zs.score:6.3f} {'':>28s} {'':>8s}{extra}")
    groups = defaultdict(list)
    for r in runs:
        groups[(r["method"], r["n"], r["r"] if r["method"] != "prompt_tuning" else None)].append(r)
    for (m, n, rk), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        rs.sort(key=lambda r: r["config"]["seed"])
        scores = [r["result"]["score"] for r in rs]
        diffs = [paired(r["result"]["correct"], base) for r in rs]
        vs = "; ".join(f"{d:+.3f}±{se:.3f} z={d / se:.1f}" if se else f"{d:+.3f}" for d, se in diffs)
        name = f"{m} n={n}" + (f" r={rk}" if rk else "")
        secs = statistics.mean(r["train_seconds"] for r in rs)
        f1 = [r["result"]["scores"].get("f1") for r in rs]
        extra = f"  f1 {statistics.mean(f1):.3f}" if None not in f1 else ""
        print(f"{name:24s} {rs[0]['trainable_params']:8d} {' '.join(f'{s:.3f}' for s in scores):>24s} "
              f"{statistics.mean(scores):6.3f} {vs:>28s} {secs:8.0f}{extra}")
    from lopt_core.analysis import paired
    ref = [r for r in runs if r["method"] == "prompt_tuning"]
    if ref:
        print("paired against prompt tuning (analysis/paired.py: bootstrap over seeds, then examples, seeds paired):")
        for (m, n, rk), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
            if m != "prompt_tuning":
                c = paired.compare(rs, ref)
                if c is not None:
                    print(f"  {m} n={n} r={rk}: {c.verdict} prompt tuning ({c.words()})")
