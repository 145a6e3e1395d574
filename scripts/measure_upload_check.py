"""Does checking a large upload freeze the page for everyone? Starts the app (from --root, default this tree) on
a temporary LOPT_HOME, writes a CSV of --rows rows, and while one client asks the app to check the file, a second
client polls a cheap endpoint (/params) and records how long each answer takes.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_upload_check.py --rows 1000000
    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_upload_check.py --root /tmp/before   # an older tree

The check is the Train button on the file with an impossible shape (LoPT-1, r > n: refused after the file
check, so nothing trains), and, where the tree has it, the upload's preview (/preview_file).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))


def write_csv(path: Path, rows: int) -> Path:
    with open(path, "w") as fh:
        fh.write("text,label\n")
        for i in range(rows):
            fh.write(f"review number {i} was {'good' if i % 2 else 'bad'},{i % 2}\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--root", default=str(HERE), help="the tree whose app.py is started")
    args = ap.parse_args()
    from gradio_client import Client, handle_file

    import tests.test_app_e2e as e2e
    e2e.ROOT = Path(args.root)
    home = Path(tempfile.mkdtemp(prefix="lopt-measure-"))
    e2e.seed_home(home)
    data = write_csv(home / "reviews.csv", args.rows)
    print(f"{data.name}: {args.rows:,} rows, {data.stat().st_size / 2**20:.1f} MiB; app from {args.root}")
    proc, url = e2e.start_app(home, {"LOPT_MAX_UPLOAD_MB": "100"})
    try:
        poller, checker = Client(url, verbose=False), Client(url, verbose=False)
        model = "smollm2-135m"
        poller.predict(model=model, method="lopt1", n=4, r=2, api_name="/params")  # warm
        second = home / "reviews-copy.csv"  # a file of its own per endpoint: no check reuses another's result
        second.write_bytes(data.read_bytes())
        train = dict(model=model, task="file", method="lopt1", n=2, r=5, steps=1, batch_size=2, lr="",
                     eval_every=0, seed=0, eval_size=4, upload=handle_file(str(second)), text_column="text",
                     text_b_column="", label_column="label")
        endpoints = [("/train", train)]
        if any(e == "/preview_file" for e in poller.view_api(print_info=False, return_format="dict")
               ["named_endpoints"]):
            endpoints.insert(0, ("/preview_file", dict(upload=handle_file(str(data)), model=model,
                                                       text_column="text", text_b_column="", label_column="label")))
        for name, kw in endpoints:
            lat, done = [], threading.Event()

            def poll():
                while not done.is_set():
                    t = time.perf_counter()
                    poller.predict(model=model, method="lopt1", n=4, r=2, api_name="/params")
                    lat.append(time.perf_counter() - t)
            th = threading.Thread(target=poll)
            th.start()
            time.sleep(1.0)
            t0 = time.perf_counter()
            out = checker.predict(**kw, api_name=name)
            took = time.perf_counter() - t0
            done.set()
            th.join()
            said = str(out[0] if isinstance(out, (list, tuple)) else out).splitlines()[0][:110]
            print(f"{name}: answered in {took:.1f} s ({said})")
            print(f"  other client's /params while it ran: {len(lat)} calls, median {statistics.median(lat):.3f} s,"
                  f" max {max(lat):.3f} s")
    finally:
        e2e.stop_app(proc)


if __name__ == "__main__":
    main()
