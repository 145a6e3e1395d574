"""Print the README's atlas tables from the shipped files (assets/atlas/*.json), one table per task and model:
each configuration's trainable parameters, score per seed, mean ± std, and its paired comparison with prompt
tuning (analysis/paired.py: bootstrap over seeds, then examples, seeds paired); then the reading (sweeps/readings.py).
Each table names the files, their commands, machine, precision and wall time.
    PYTHONPATH=. .venv/bin/python scripts/atlas_table.py [--readme README.md]
With --readme, the tables replace what stands between the file's two atlas-table markers instead of printing.
"""
from __future__ import annotations

import contextlib
import io
import sys
from collections import defaultdict
from pathlib import Path

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
        ids = {r["run_id"] for r in rs}
        files = [d for d in docs if any(r["run_id"] in ids for r in d["runs"])]  # this task on this model
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


TWO_MODELS = [(reference_method(), None), ("lopt1", 5), ("ulpt", 2)]  # the second model's issue: its README table


def two_models(rows: list[dict], docs: list[dict], n: int = 20) -> None:
    """Where a task's atlas holds two models: each model's no-prompt score and, for prompt tuning, LoPT-1 r=5 and
    ULPT r=2 at n, the score per seed and the mean; then the seconds per step of each model's batched group,
    taken only from files made on one CPU that holds both models (a file's wall time may count hours it sat
    stopped on another machine, and two CPUs' times are no comparison)."""
    by_task = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_task[aggregate.task_label(r)][r["model"]].append(r)
    for task, models in by_task.items():
        if len(models) < 2:
            continue
        ids = {m: {r["run_id"] for r in rs} for m, rs in models.items()}
        files = {m: [d for d in docs if any(r["run_id"] in ids[m] for r in d["runs"])] for m in models}
        common = set.intersection(*({d["machine"]["cpu"] for d in fs} for fs in files.values()))
        cpu = sorted(common)[0] if common else None
        print(f"\n### {task}: the same prompt budget on {len(models)} models (n={n}, per seed and mean)\n")
        heads = [f"{method_label(m)}{f' r={r}' if r else ''}" for m, r in TWO_MODELS]
        print("| model | no prompt | " + " | ".join(heads) + " | s/step (batched group) | sweep |")
        print("|---|---|" + "---|" * len(heads) + "---|---|")
        for model, rs in models.items():
            pts = {(p.method, p.r if p.method != reference_method() else None): p
                   for p in aggregate.points(rs) if p.n == n}
            cells = []
            for key in TWO_MODELS:
                p = pts.get(key)
                cells.append(f"{', '.join(f'{a:.3f}' for a in p.accuracies)} ({p.mean:.3f})" if p else "–")
            timed = [r["result"] for d in files[model] if d["machine"]["cpu"] == cpu for r in d["runs"]
                     if r["run_id"] in ids[model] and r["result"].get("train_seconds")]
            step = "–"
            if timed:
                slowest = max(timed, key=lambda res: res["train_seconds"] / max(1, res["steps_done"]))
                step = (f"{slowest['train_seconds'] / max(1, slowest['steps_done']):.1f} "
                        f"({slowest.get('group_size', 1)} prompts)")
            zero = aggregate.points(rs)[0].zero_shot
            print(f"| {model} | {'–' if zero is None else f'{zero:.3f}'} | " + " | ".join(cells) + f" | {step} | "
                  + ", ".join(f"`{d['sweep']['preset'] or d['sweep']['sweep_id']}`" for d in files[model]) + " |")
        print(f"\nTimes: {cpu}, from the files made there" if cpu else
              "\nTimes: no CPU made files of both models, so no time is compared")


BEGIN, END = "<!-- atlas tables: printed by scripts/atlas_table.py --readme README.md -->", "<!-- /atlas tables -->"


def into_readme(path: Path, tables: str) -> None:
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        sys.exit(f"{path}: needs one {BEGIN!r} and one {END!r} line")
    head, rest = text.split(BEGIN + "\n", 1)
    path.write_text(head + BEGIN + "\n" + tables.strip("\n") + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main()
        two_models(results_file.atlas_rows(), results_file.atlas())
    if sys.argv[1:2] == ["--readme"]:
        into_readme(Path(sys.argv[2]), out.getvalue())
    else:
        print(out.getvalue(), end="")
