"""Print README's accuracy table from the shipped reference sweep file (assets/reference/sst2-rank-sweep.json).

    PYTHONPATH=. .venv/bin/python scripts/reference_table.py [FILE]
"""
from __future__ import annotations

import sys

from lopt_core.analysis import aggregate
from lopt_core.sweeps import readings, results_file


def main(path=None) -> None:
    doc = results_file.read(path or results_file.REFERENCE)
    rows = results_file.rows(doc)
    m = doc["machine"]
    first = doc["runs"][0]
    c, res = first["config"], first["result"]
    print(f"Command: `{doc['sweep']['command']}`  ")
    print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
          f"transformers {m['transformers']}; {c['steps']} steps of batch {c['batch_size']}, one seed "
          f"({', '.join(str(s) for s in sorted({r['config']['seed'] for r in doc['runs']}))}), accuracy on "
          f"{res['eval_examples']} SST-2 validation sentences; no prompt: {first['zero_shot_accuracy']:.3f}.\n")
    print("| method | n | r | trainable | accuracy | final loss |")
    print("|---|---|---|---|---|---|")
    by_id = {r["run_id"]: r for r in doc["runs"]}
    for p in sorted(aggregate.points(rows), key=lambda p: (list(aggregate.METHODS).index(p.method), p.r or 0)):
        loss = by_id[p.run_ids[0]]["result"].get("final_loss")
        print(f"| {p.label.split(' n=')[0]} | {p.n} | {p.r if p.r is not None else '–'} | {p.trainable_params:,} | "
              f"{aggregate.fmt_acc(p)} | {loss:.3f} |")
    print("\nReading (computed by lopt_core.sweeps.readings from the same file):\n")
    for line in readings.read_runs(rows)["lines"]:
        print(f"- {line}")


if __name__ == "__main__":
    main(*sys.argv[1:])
