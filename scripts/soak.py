"""Soak test of the LoPT Lab server on loopback: first one client, then N clients poll it the way the page does,
and the latency of each (p50/p95/p99) is printed with the ratio of the N clients' p95 to the one client's, and the
server's memory (RSS) at start, after warm-up and at the end of the N clients' soak.

    .venv/bin/python scripts/soak.py --clients 16 --minutes 10 --warmup 1 --baseline-minutes 2
    .venv/bin/python scripts/soak.py --clients 8 --minutes 30 --warmup 2
    .venv/bin/python scripts/soak.py --clients 8 --minutes 3 --warmup 1 --train tiny --steps 400
    .venv/bin/python scripts/soak.py --url http://127.0.0.1:7860/ --clients 4 --minutes 5   # a running server

The one-client baseline (--baseline-minutes, 0 to skip it) runs first, on the same server under the same
conditions: a run trains during both (a fresh one is queued for each, so the one watched is live), and each is
measured after its own warm-up (--baseline-warmup, --warmup).

Without --url it starts `app.py` itself on a free port of 127.0.0.1 with a temporary LOPT_HOME (removed at the
end; the server log is kept when --log is given). With --url it attaches to a server on 127.0.0.1 / localhost
only (anything else is refused) and measures the RSS of --pid when given.

What each client does, as one browser tab of the page does: a page load (the demo.load events) with its own
session, then the Timer of the tab it shows, at that Timer's interval (only the shown tab's Timer ticks: Train, the shown
run's curves and progress; Sweep, the shown sweep; Rank, a truncation's status; Runs, an evaluation's status),
and every --list-every seconds the runs list (/runs) and the Compare tab (/compare). --shown picks the tab:
`spread` (default) gives client k the k-th of the four in turn, a tab name gives every client that tab, `all`
ticks all four Timers per client (what a page did before only the shown tab's Timer ticked). The calls go through Gradio's queue the way the page's client
sends them (POST /gradio_api/queue/join, then the session's event stream /gradio_api/queue/data), with the
session's state kept on the server as for a real tab. --reload-every S makes each client open a fresh page
(a new session) every S seconds, as students reloading do.

--train tiny (default) makes a tiny random Llama (d=32, the offline default's tokenizer) and queues one run on it
so there is a live run to watch; --train default uses the offline default model; --train none queues nothing.
Everything is bounded: the soak ends after --minutes (plus warm-up) and every request has a timeout.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
API = "gradio_api"
TAB_ORDER = ["train", "sweep", "rank", "runs"]  # the page's tabs with a Timer, in the page's order
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tiny_model(folder: Path) -> str:
    """A tiny random Llama with the offline default's tokenizer (as tests/conftest.py makes it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig
    sys.path.insert(0, str(ROOT))
    from lopt_core.lm.models import offline_default_folder
    tok = AutoTokenizer.from_pretrained(str(offline_default_folder()))
    tok.pad_token = tok.eos_token
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, initializer_range=0.2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def start_app(home: Path, log_path: Path, extra_env: dict, app: Path = ROOT / "app.py",
              started: list | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server; `started` gets its Popen at once, so a soak stopped during the start still ends it."""
    port = free_port()
    env = {**os.environ, "LOPT_HOME": str(home), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **extra_env}
    if "LOPT_MODEL_CACHE" not in env and (ROOT / ".cache" / "models").is_dir():
        env["LOPT_MODEL_CACHE"] = str(ROOT / ".cache" / "models")  # the tests' dequantized copy: no 30 s first start
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(app)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    if started is not None:
        started.append(proc)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while time.time() - t0 < 180:
        if proc.poll() is not None:
            raise RuntimeError("the app exited early:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start in 180 s:\n" + log_path.read_text()[-3000:])


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def rss(pid: int | None) -> dict:
    """The server's RSS and its children's (workers, multiprocessing's helpers), each in MiB."""
    if not pid:
        return {"server": None, "children": {}}
    try:
        p = psutil.Process(pid)
        out = {"server": p.memory_info().rss / 2**20, "children": {}}
        for c in p.children(recursive=True):
            try:
                name = " ".join(c.cmdline()[-2:])[-60:] or c.name()
                out["children"][f"{c.pid} {name}"] = c.memory_info().rss / 2**20
            except psutil.Error:
                pass
        return out
    except psutil.Error:
        return {"server": None, "children": {}}


def fmt_rss(r: dict) -> str:
    if r["server"] is None:
        return "server RSS unknown (no pid)"
    kids = r["children"]
    line = f"server {r['server']:.1f} MiB; children {sum(kids.values()):.1f} MiB in {len(kids)}"
    return line + "".join(f"\n      {k}: {v:.1f} MiB" for k, v in kids.items())


# ---------------------------------------------------------------- the page's events

class Page:
    """The app's event table from /config: which fn_index each thing the page does is."""

    def __init__(self, url: str):
        cfg = httpx.get(url + "config", timeout=30).json()
        self.components = {c["id"]: c for c in cfg["components"]}
        self.deps = cfg["dependencies"]
        self.elem = {c.get("props", {}).get("elem_id"): i for i, c in self.components.items()
                     if c.get("props", {}).get("elem_id")}

    def fn(self, i: int) -> dict:
        d = self.deps[i]
        return {"fn_index": d.get("id", i), "trigger_id": d["targets"][0][0] if d.get("targets") else None,
                "inputs": d["inputs"], "outputs": d["outputs"], "api_name": d.get("api_name")}

    def by_api(self, name: str) -> dict:
        for i, d in enumerate(self.deps):
            if d.get("api_name") == name:
                return self.fn(i)
        raise KeyError(f"no endpoint /{name}")

    def ticks(self) -> dict[str, dict]:
        out = {}
        for i, d in enumerate(self.deps):
            if any(t[1] == "tick" for t in d.get("targets", [])):
                ids = set(d["inputs"]) | set(d["outputs"])
                tabs = {"lopt-curves": "train", "lopt-runs-status": "runs", "lopt-trunc-status": "rank",
                        "lopt-sweep-progress": "sweep"}
                name = next((t for e, t in tabs.items() if self.elem.get(e) in ids), f"timer{i}")
                timer = self.components.get(next(t[0] for t in d["targets"] if t[1] == "tick"), {})
                out[name] = {**self.fn(i), "every": float(timer.get("props", {}).get("value") or 1.0)}
        return out

    def loads(self) -> list[dict]:
        return [self.fn(i) for i, d in enumerate(self.deps) if any(t[1] == "load" for t in d.get("targets", []))]

    def default(self, cid: int, token: str | None = None):
        """What the page sends for a component it has not changed: its value; a gr.State's is kept on the
        server (the page sends null); a gr.BrowserState's is the visitor's own (the page keeps it)."""
        c = self.components.get(cid, {})
        kind = str(c.get("type", "")).lower()
        if kind == "state":
            return None
        if kind == "browserstate":
            return token
        return c.get("props", {}).get("value")

    def data(self, fn: dict, token: str | None, **by_elem) -> list:
        """An event's inputs as the page sends them; by_elem overrides a component by its elem_id."""
        ids = {self.elem.get(k): v for k, v in by_elem.items() if self.elem.get(k) is not None}
        return [ids[cid] if cid in ids else self.default(cid, token) for cid in fn["inputs"]]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.count = 0

    def add(self, name: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.count += 1
            self.lat.setdefault(name, []).append(seconds)
            if error:
                self.errors.append(f"{name}: {error}"[:300])

    def reset(self) -> None:
        with self.lock:
            self.lat, self.errors, self.count = {}, [], 0


def call(http: httpx.Client, url: str, session: str, fn: dict, data: list, timeout: float = 60) -> tuple[list, str | None]:
    """One event through the queue as the page sends it; its output data, or an error message."""
    body = {"data": data, "event_data": None, "fn_index": fn["fn_index"], "trigger_id": fn["trigger_id"],
            "session_hash": session}
    r = http.post(f"{url}{API}/queue/join", json=body, timeout=timeout)
    if r.status_code != 200:
        return [], f"join HTTP {r.status_code}: {r.text[:200]}"
    event_id = r.json()["event_id"]
    t0 = time.time()
    with http.stream("GET", f"{url}{API}/queue/data", params={"session_hash": session}, timeout=timeout) as s:
        for line in s.iter_lines():
            if time.time() - t0 > timeout:
                return [], "timed out"
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "unexpected_error":
                return [], f"unexpected_error: {msg.get('message')}"
            if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                if not msg.get("success"):
                    return [], f"failed: {str(msg.get('output'))[:200]}"
                return msg["output"].get("data", []), None
    return [], "stream ended without a result"


def shown_ticks(ticks: dict[str, dict], shown: str, k: int) -> dict[str, dict]:
    """The Timers client k's page ticks: one tab's (`spread`: the k-th in turn; a tab's name), or `all`."""
    if shown == "all":
        return ticks
    order = sorted(ticks, key=lambda t: (TAB_ORDER.index(t) if t in TAB_ORDER else len(TAB_ORDER), t))
    name = order[k % len(order)] if shown == "spread" else shown  # one client: the Train tab a page opens on
    if name not in ticks:
        raise SystemExit(f"--shown {shown}: the page has Timers on {', '.join(sorted(ticks))}")
    return {name: ticks[name]}


def client_loop(k: int, url: str, page: Page, run_id: str | None, stop_at: float, stats: Stats, list_every: float,
                reload_every: float, shown: str = "spread") -> None:
    http = httpx.Client(timeout=60)
    ticks, loads = shown_ticks(page.ticks(), shown, k), page.loads()
    runs_fn, compare_fn = page.by_api("runs"), page.by_api("compare")
    token = uuid.uuid4().hex  # the visitor token a browser keeps (gr.BrowserState), where the page has one

    def data_for(fn):
        return page.data(fn, token, **({"lopt-watch": run_id} if run_id else {}))

    def do(name, fn, data):
        t = time.time()
        try:
            _, err = call(http, url, session, fn, data)
        except (httpx.HTTPError, ValueError, KeyError) as e:
            err = f"{type(e).__name__}: {e}"
        stats.add(name, time.time() - t, err)

    session, opened, listed = None, 0.0, time.time() + k  # clients' list calls spread over time
    due: dict[str, float] = {}  # when each Timer ticks next
    try:
        while time.time() < stop_at:
            if session is None or (reload_every and time.time() - opened > reload_every):
                session, opened = uuid.uuid4().hex[:11], time.time()
                for i, fn in enumerate(loads):
                    do(f"load{i}", fn, data_for(fn))
            t0 = time.time()
            for name, fn in ticks.items():  # each Timer at its own interval, as the page's
                if t0 >= due.get(name, 0.0):
                    due[name] = t0 + fn["every"]
                    do(f"tick:{name}", fn, data_for(fn))
            if time.time() - listed > list_every:
                listed = time.time()
                do("runs", runs_fn, data_for(runs_fn))
                do("compare", compare_fn, ["(all)", "(all)", None, []] + data_for(compare_fn)[4:])
            time.sleep(max(0.0, min([t0 + 1.0, *due.values()]) - time.time()))
    finally:
        http.close()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


def all_latencies(stats: Stats) -> list[float]:
    return [x for v in stats.lat.values() for x in v]


def report_latency(stats: Stats, seconds: float) -> str:
    allx = all_latencies(stats)
    lines = [f"requests {stats.count} in {seconds:.0f} s ({stats.count / max(seconds, 1e-9):.1f}/s), "
             f"errors {len(stats.errors)}",
             f"latency all: p50 {pct(allx, 50) * 1e3:.0f} ms, p95 {pct(allx, 95) * 1e3:.0f} ms, "
             f"p99 {pct(allx, 99) * 1e3:.0f} ms"]
    for name, xs in sorted(stats.lat.items()):
        lines.append(f"  {name:<14} n={len(xs):<6} p50 {pct(xs, 50) * 1e3:6.0f} ms  p95 {pct(xs, 95) * 1e3:6.0f} ms"
                     f"  p99 {pct(xs, 99) * 1e3:6.0f} ms  mean {statistics.fmean(xs) * 1e3:6.0f} ms")
    for e in stats.errors[:10]:
        lines.append(f"  error: {e}")
    return "\n".join(lines)


def queue_run(url: str, page: Page, model: str, steps: int) -> str:
    fn = page.by_api("train")
    values = dict(model=model, task="sst2", method="lopt1", n=4, r=2, steps=steps, batch_size=4, lr="",
                  eval_every=max(1, steps // 8), seed=0, eval_size=16, upload=None, text_column="text",
                  text_b_column="", label_column="label")  # the Train form's first inputs, in their order
    data = page.data(fn, uuid.uuid4().hex)
    data[:len(values)] = list(values.values())
    with httpx.Client(timeout=60) as http:
        out, err = call(http, url, uuid.uuid4().hex[:11], fn, data)
    if err:
        raise RuntimeError(f"/train failed: {err}")
    status, watch = out[0], out[1]
    run_id = watch.get("value") if isinstance(watch, dict) else watch
    if not run_id:
        raise RuntimeError(f"/train queued nothing: {status}")
    return run_id


def soak(clients: int, warmup_min: float, minutes: float, url: str, page: Page, run_id: str | None, pid, a) -> dict:
    """`clients` clients for warm-up + measured minutes; the measured latencies (a Stats), their seconds, and the
    server's RSS after the warm-up and at the end, with a line every --sample-every seconds."""
    stats = Stats()
    stop_at = time.time() + 60 * (warmup_min + minutes)
    threads = [threading.Thread(target=client_loop, args=(k, url, page, run_id, stop_at, stats, a.list_every,
                                                         a.reload_every, a.shown), daemon=True)
               for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(60 * warmup_min)
    base = rss(pid)
    print(f"after warm-up:   {fmt_rss(base)}  ({stats.count} requests, {len(stats.errors)} errors during warm-up)",
          flush=True)
    stats.reset()
    t_meas, next_sample = time.time(), time.time() + a.sample_every
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        if time.time() >= next_sample and time.time() < stop_at:
            next_sample += a.sample_every
            now = rss(pid)
            if now["server"] is not None:
                print(f"  +{(time.time() - t_meas) / 60:5.1f} min: server {now['server']:.1f} MiB "
                      f"({now['server'] - base['server']:+.1f}), children {sum(now['children'].values()):.1f} MiB, "
                      f"{stats.count} requests, {len(stats.errors)} errors", flush=True)
    return {"stats": stats, "seconds": time.time() - t_meas, "base": base, "end": rss(pid)}


def _store_rows(home: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of the started server's store, read-only."""
    import sqlite3
    with sqlite3.connect(f"file:{home / 'runs.sqlite'}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()


def run_state(home: Path, run_id: str) -> str | None:
    rows = _store_rows(home, "SELECT state FROM runs WHERE run_id = ?", (run_id,))
    return rows[0][0] if rows else None


def training_line(home: Path | None) -> str:
    """Whether a run was training: each run's state and steps done, read from the server's store."""
    if home is None:
        return "runs: unknown (attached to a running server)"
    rows = _store_rows(home, "SELECT run_id, state, steps_done FROM runs ORDER BY created")
    return "runs: " + ("; ".join(f"{r} {st} at step {s}" for r, st, s in rows) or "none")


def summary_line(name: str, stats: Stats) -> str:
    xs = all_latencies(stats)
    return (f"{name}: p50 {pct(xs, 50) * 1e3:.0f} ms, p95 {pct(xs, 95) * 1e3:.0f} ms, p99 {pct(xs, 99) * 1e3:.0f} ms "
            f"({len(xs)} requests, {len(stats.errors)} errors)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=30.0, help="measured time after the warm-up")
    ap.add_argument("--warmup", type=float, default=2.0, help="minutes of load before the baseline RSS")
    ap.add_argument("--baseline-minutes", type=float, default=2.0,
                    help="measured minutes of one client first, for the p95 ratio (0: no baseline)")
    ap.add_argument("--baseline-warmup", type=float, default=0.5, help="minutes of one client before they count")
    ap.add_argument("--url", help="attach to a running server on 127.0.0.1/localhost instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for its RSS")
    ap.add_argument("--train", choices=("tiny", "default", "none"), default="tiny",
                    help="queue one run to watch: a tiny random model, the offline default, or none")
    ap.add_argument("--steps", type=int, default=400, help="steps of that run")
    ap.add_argument("--list-every", type=float, default=10.0, help="seconds between a client's /runs + /compare")
    ap.add_argument("--reload-every", type=float, default=0.0, help="seconds between a client's page reloads (0: never)")
    ap.add_argument("--shown", default="spread", choices=("spread", *TAB_ORDER, "all"),
                    help="the tab each page shows (spread: the four in turn over the clients)")
    ap.add_argument("--sample-every", type=float, default=60.0, help="seconds between RSS lines")
    ap.add_argument("--log", help="keep the server's log at this path")
    ap.add_argument("--app", default=str(ROOT / "app.py"), help="the server script to start (a wrapper for profiling)")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the started server (repeatable)")
    a = ap.parse_args(argv)
    if a.minutes <= 0 or a.clients < 1 or a.baseline_minutes < 0 or \
            a.minutes + a.warmup + a.baseline_minutes + a.baseline_warmup > 240:
        ap.error("--clients >= 1, 0 < --minutes, 0 <= --baseline-minutes, all the minutes together <= 240")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed soak still stops its server (finally:)
    tmp = Path(tempfile.mkdtemp(prefix="lopt-soak-"))
    proc, pid, started, home = None, a.pid, [], None
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; host: {os.cpu_count()} cores, "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    try:
        if a.url:
            host = urlparse(a.url).hostname or ""
            if host not in LOOPBACK:
                ap.error(f"--url must be on 127.0.0.1/localhost (got {host!r}): a soak never leaves this machine")
            url = a.url if a.url.endswith("/") else a.url + "/"
        else:
            home = tmp / "home"
            home.mkdir()
            env = dict(kv.split("=", 1) for kv in a.env)
            log_path = Path(a.log) if a.log else tmp / "app.log"
            proc, url = start_app(home, log_path, env, Path(a.app), started)
            pid = proc.pid
            print(f"started app.py pid {pid} at {url} with LOPT_HOME={home}", flush=True)
        page = Page(url)
        model = None
        if a.train != "none":
            model = make_tiny_model(tmp / "tiny-llama") if a.train == "tiny" \
                else page.default(page.by_api("train")["inputs"][0])  # the Train form's model: the offline default
        print(f"start:           {fmt_rss(rss(pid))}", flush=True)

        def live_run(previous: str | None = None) -> str | None:
            """The run to watch, training: the previous one while it still trains (a new one would wait behind
            it, and the pages would watch a queued run), else a fresh one."""
            if model is None:
                return None
            if previous and home is not None and run_state(home, previous) == "running":
                print(f"run {previous} still training: watched again", flush=True)
                return previous
            run_id = queue_run(url, page, model, a.steps)
            print(f"queued run {run_id} ({a.train} model, {a.steps} steps) to watch", flush=True)
            return run_id

        one = watched = None
        if a.baseline_minutes > 0:
            print(f"== 1 client for {a.baseline_minutes:g} min (baseline)", flush=True)
            watched = live_run()
            one = soak(1, a.baseline_warmup, a.baseline_minutes, url, page, watched, pid, a)
            print(report_latency(one["stats"], one["seconds"]), flush=True)
            print(training_line(home), flush=True)
        print(f"== {a.clients} clients for {a.minutes:g} min", flush=True)
        many = soak(a.clients, a.warmup, a.minutes, url, page, live_run(watched), pid, a)
        print(training_line(home), flush=True)
        base, end, stats = many["base"], many["end"], many["stats"]
        print(f"end:             {fmt_rss(end)}", flush=True)
        print(report_latency(stats, many["seconds"]), flush=True)
        if end["server"] is not None and base["server"] is not None:
            print(f"server RSS growth after warm-up: {end['server'] - base['server']:+.1f} MiB over {a.minutes:g} min "
                  f"with {a.clients} clients", flush=True)
        print("== summary", flush=True)
        if one is not None:
            print(summary_line("1 client", one["stats"]), flush=True)
        print(summary_line(f"{a.clients} clients", stats), flush=True)
        if one is not None:
            p95_one, p95_many = pct(all_latencies(one["stats"]), 95), pct(all_latencies(stats), 95)
            print(f"p95 ratio {a.clients} clients / 1 client: {p95_many / p95_one:.2f} "
                  f"({p95_many * 1e3:.0f} ms / {p95_one * 1e3:.0f} ms)", flush=True)
        if proc is not None and proc.poll() is not None:
            print(f"the server exited with {proc.returncode} during the soak", flush=True)
            return 1
        return 0 if not stats.errors and not (one and one["stats"].errors) else 1
    finally:
        for p in started:
            stop_app(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
