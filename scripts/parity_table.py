"""bf16 against fp32 accuracy, per method (the speed issue's parity table): each prompt method at n=20 (r=5),
150 steps, SST-2's 872 sentences, seeds 0-2, bf16 from a sweep file made on a CPU with bf16 units, fp32 from
the atlas's SST-2 rank sweep (the same configurations, seeds and settings, in fp32). Per method: the score of
each seed in each precision, the means, bf16 minus fp32, the fp32 seeds' spread (max - min), the paired test
(analysis/paired.py, over the seeds both files hold with per-example records) and the verdict: parity where
the means are within 1 point or within the seeds' spread.
    PYTHONPATH=. .venv/bin/python scripts/parity_table.py BF16_FILE [FP32_FILE ...]
FP32 files default to assets/atlas/sst2-rank-seed*.json.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from lopt_core.analysis import paired
from lopt_core.methods import method_label, reference_method
from lopt_core.sweeps import results_file

R = 5
N = 20


def _pick(rows: list[dict], method: str) -> dict[int, dict]:
    """The runs of `method` at n=N (r=R where it has a rank), by seed."""
    ref = method == reference_method()
    return {r["config"]["seed"]: r for r in rows if r["method"] == method and r["n"] == N and r["state"] == "done"
            and (ref or r["r"] == R)}


def main(argv: list[str]) -> None:
    bf16_path, fp32_paths = Path(argv[0]), [Path(p) for p in argv[1:]] or sorted(Path("assets/atlas").glob(
        "sst2-rank-seed*.json"))
    bf16_doc = results_file.read(bf16_path)
    fp32_docs = [results_file.read(p) for p in fp32_paths]
    bf16_rows = results_file.rows(bf16_doc)
    fp32_rows = [r for d in fp32_docs for r in results_file.rows(d)]
    for name, docs in (("bf16", [bf16_doc]), ("fp32", fp32_docs)):
        for d in docs:
            precs = sorted({(r.get("result") or {}).get("precision") or "fp32" for r in d["runs"]})
            print(f"- {name}: `{d['sweep']['command']}`  \n  {d['machine']['cpu']}, {d['machine']['torch_threads']} "
                  f"threads, {'/'.join(precs)}, exported {d['exported']}")
    print("\n| method | fp32 per seed | bf16 per seed | fp32 mean | bf16 mean | bf16 - fp32 | fp32 seeds' spread | "
          "paired (bf16 vs fp32) | parity |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in (reference_method(), "lopt1", "lopt2", "ulpt"):
        bf16, fp32 = _pick(bf16_rows, method), _pick(fp32_rows, method)   # runs by seed
        seeds = sorted(set(bf16) & set(fp32))
        if not seeds:
            continue
        fa, fb = [fp32[s]["accuracy"] for s in seeds], [bf16[s]["accuracy"] for s in seeds]   # fp32's, bf16's
        diff, spread = statistics.mean(fb) - statistics.mean(fa), max(fa) - min(fa)
        c = paired.compare([bf16[s] for s in seeds], [fp32[s] for s in seeds])
        vs = f"{c.verdict} ({c.words().split(': ', 1)[1]})" if c else "no per-example records"
        ok = abs(diff) <= 0.01 or abs(diff) <= spread
        label = method_label(method) + (f" r={R}" if method != reference_method() else "")
        print(f"| {label} | {', '.join(f'{x:.3f}' for x in fa)} | {', '.join(f'{x:.3f}' for x in fb)} | "
              f"{statistics.mean(fa):.3f} | {statistics.mean(fb):.3f} | {100 * diff:+.1f} points | "
              f"{100 * spread:.1f} points | {vs} | {'yes' if ok else '**no**'} |")
    print(f"\nseeds: {', '.join(str(s) for s in sorted({r['config']['seed'] for r in bf16_rows}))}; n={N}, r={R}")


if __name__ == "__main__":
    main(sys.argv[1:])
