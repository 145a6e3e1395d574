"""Print the README's atlas tables from the shipped files (assets/atlas/*.json), one table per task and model:
each configuration's trainable parameters, score per seed, mean ± std, and its paired comparison with prompt
tuning (analysis/paired.py: bootstrap over examples, seeds paired); then the reading (sweeps/readings.py).
Each table names the files, their commands, machine, precision and wall time.
    PYTHONPATH=. .venv/bin/python scripts/atlas_table.py
"""
from __future__ import annotations

from collections import defaultdict

from lopt_core.analysis import aggregate, paired
from lopt_core.methods import method_label, reference_method
from lopt_core.sweeps import readings, results_file


def main() -> None:
    docs = results_file.atlas()
    rows = results_file.atlas_rows()
    by_task = defaultdict(list)
    for r in rows:
        by_task[(aggregate.task_label(r), r["model"])].append(r)
    for (task, model), rs in by_task.items():
        files = [d for d in docs if any(r["config"]["task"] == task for r in d["runs"])]
        metric = aggregate.metric_name(rs)
        pts = aggregate.points(rs)
        print(f"\n### {task} on {model}: {metric}, {pts[0].examples} test examples, no prompt "
              f"{pts[0].zero_shot:.3f}\n")
        for d in files:
            m, runs = d["machine"], d["runs"]
            wall = max(r["result"].get("train_seconds") or 0 for r in runs)
            prec = sorted({r["result"].get("precision") or "fp32" for r in runs})
            print(f"- `{d['sweep']['command']}`  \n  {m['cpu']}, {m['torch_threads']} threads, {'/'.join(prec)}, "
                  f"exported {d['exported']}; training wall time {wall / 60:.0f} min per batched group")
        print(f"\n| method | n | r | trainable | {metric} per seed | mean ± std | paired against prompt tuning |")
        print("|---|---|---|---|---|---|---|")
        ref_rows = defaultdict(list)
        for r in rs:
            if r["method"] == reference_method():
                ref_rows[r["n"]].append(r)
        for p in sorted(pts, key=lambda p: (p.method != reference_method(), p.method, p.n, p.r or 0)):
            mine = [r for r in rs if r["run_id"] in p.run_ids]
            c = paired.compare(mine, ref_rows.get(p.n, [])) if p.method != reference_method() else None
            vs = f"{c.verdict} ({c.words().split(': ', 1)[1]})" if c else "–"
            per_seed = ", ".join(f"{a:.3f}" for _, a in sorted(zip(p.seed_list, p.accuracies)))
            print(f"| {method_label(p.method)} | {p.n} | {p.r if p.r is not None else '–'} | "
                  f"{p.trainable_params:,} | {per_seed} | {aggregate.fmt_acc(p)} | {vs} |")
        print("\nReading (sweeps/readings.py, from the same files):\n")
        for line in readings.read_runs(rs)["lines"]:
            print(f"- {line}")


if __name__ == "__main__":
    main()
