"""Seconds from "Train" to the first point of the loss curve, through the same job queue the app uses.

python scripts/first_curve.py [--method lopt1] [--task sst2] [--model smollm2-135m]
Submits a run as the Train button does (a spawned worker process: imports, model load from the safetensors
cache, data, first step), polls the store the way the page does, prints the time to the first loss point,
then stops the run. Uses a throw-away store; the model cache is the usual one (dequantize it once first).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from lopt_core.config import RunConfig
from lopt_core.jobs.manager import JobManager


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="lopt1")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = JobManager(Path(tmp) / "runs.sqlite")
        try:
            t0 = time.time()
            run_id = jobs.submit(RunConfig(model=args.model, task=args.task, method=args.method))
            while time.time() - t0 < args.timeout:
                row = jobs.store.get(run_id)
                if row["state"] in ("failed", "interrupted"):
                    sys.exit(f"run {row['state']}: {row.get('error')}")
                if jobs.store.metrics(run_id, "loss"):
                    print(f"first loss point after {time.time() - t0:.1f} s ({args.method}, {args.task}, {args.model})")
                    break
                time.sleep(0.25)
            else:
                sys.exit(f"no loss point within {args.timeout} s")
            jobs.stop(run_id)
            jobs.wait(run_id, timeout=120)
        finally:
            jobs.close()


if __name__ == "__main__":
    main()
