"""Sweeps on a Ray cluster: each group of a sweep's plan is a Ray task; the store stays on this machine.

    LOPT_RAY_ADDRESS=head-node:6379 python app.py                      # the app's sweeps train on the cluster
    python -m lopt_core sweep ... --backend ray --ray-address head-node:6379
    python -m lopt_core cluster                                      # the backend and the cluster's nodes

Without LOPT_RAY_ADDRESS (a laptop, a Space) nothing here runs: sweeps train in the local worker queue.

The driver is the sweep's worker process (jobs.py) or the CLI. It claims the sweep (sweep.begin), starts a
Relay actor on its own node, submits one task per group of sweep.plan (a batched K-prompt group, or the
configurations that train one after another), each asking for a GPU when its runs are on CUDA and CPUs
otherwise, and then every POLL_S:
  events     the relay's ops (remote_store.py: metrics, states, results) are written into the store, so curves
             grow as they do for a local run; a finished run's artifact arrives as its files' bytes and is
             written under this machine's LOPT_HOME
  stop       the runs' stop levels and the sweep's stop flag, read from the store, go to the relay; a task asks
             for them at every step through the same stop check a local run uses (runs.run_and_record)
  ends       a task that raised: its unfinished runs fail with the reason; a task whose worker or node died:
             its unfinished runs become interrupted with the reason (no retry: Resume trains them again);
             no other run is touched
The task loads the model on its node and trains its group with sweep.run_group against a RemoteStore.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lopt_core.sweeps import spec as sweep
from lopt_core.config import RunConfig
from lopt_core.sweeps.remote_store import RemoteStore, apply
from lopt_core.store.sqlite import Store
from lopt_core.errors import RayBackendError

ENV_ADDRESS = "LOPT_RAY_ADDRESS"
ENV_CPUS = "LOPT_RAY_CPUS"
POLL_S = 0.1
RAY_PIN = "ray==2.60.0"


@dataclass
class RayBackend:
    address: str                # a Ray cluster's address: host:port, "auto", or ray://host:port
    cpus_per_task: int = 1      # CPUs a CPU task asks for (and torch threads it uses); a GPU task asks for one GPU
    ship_code: bool = True      # send this lopt_core to the nodes (runtime_env py_modules): no shared disk needed


def from_env(address: str | None = None) -> RayBackend | None:
    """The backend the environment (or an explicit address) asks for; None: the local worker queue."""
    address = address or os.environ.get(ENV_ADDRESS, "").strip()
    if not address:
        return None
    raw = os.environ.get(ENV_CPUS, "1").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise RayBackendError(f"{ENV_CPUS} must be a whole number >= 1, got {raw!r}")
    return RayBackend(address, int(raw))


def _ray():
    try:
        import ray
    except ImportError:
        raise RayBackendError(f"the Ray backend needs ray: pip install '{RAY_PIN}' (see requirements.txt)") from None
    return ray


@contextlib.contextmanager
def connected(backend: RayBackend, ship_code: bool | None = None):
    """This process as a driver of the cluster (disconnected again at the end if it connected here)."""
    ray = _ray()
    mine = not ray.is_initialized()
    if mine:
        ship = backend.ship_code if ship_code is None else ship_code
        env = {"py_modules": [str(Path(__file__).resolve().parents[1])]} if ship else None  # lopt_core/
        try:
            ray.init(address=backend.address, runtime_env=env, log_to_driver=False, logging_level="ERROR",
                     namespace="lopt")
        except Exception as e:  # noqa: BLE001  any failure to connect, said once with the address
            raise RayBackendError(f"cannot reach the Ray cluster at {backend.address!r}: {type(e).__name__}: {e}") \
                from None
    try:
        yield ray
    finally:
        if mine:
            ray.shutdown()


# ---------------------------------------------------------------- what the app and `cluster` show

def cluster_info(backend: RayBackend | None = None) -> dict:
    """The backend in use and its machines: {"backend", "address", "nodes": [{ip, cpus, gpus}], "cpus", "gpus"}."""
    if backend is None:
        import torch
        nodes = [{"ip": "this machine", "cpus": os.cpu_count() or 1, "gpus": torch.cuda.device_count()}]
        return {"backend": "local", "address": None, "nodes": nodes, "cpus": nodes[0]["cpus"],
                "gpus": nodes[0]["gpus"]}
    with connected(backend, ship_code=False) as ray:
        nodes = [{"ip": n["NodeManagerAddress"], "cpus": int(n["Resources"].get("CPU", 0)),
                  "gpus": int(n["Resources"].get("GPU", 0))} for n in ray.nodes() if n["Alive"]]
    return {"backend": "ray", "address": backend.address, "nodes": nodes, "cpus": sum(n["cpus"] for n in nodes),
            "gpus": sum(n["gpus"] for n in nodes)}


def describe(info: dict) -> str:
    """One line: 'Ray cluster at ADDR: 2 nodes, 8 CPUs, 2 GPUs' or 'local worker queue: this machine, ...'."""
    k = len(info["nodes"])
    where = (f"Ray cluster at {info['address']}: {k} node{'s' * (k != 1)}" if info["backend"] == "ray"
             else "local worker queue: this machine")
    return f"{where}, {info['cpus']} CPUs, {info['gpus']} GPUs"


_LINE: dict = {}     # address -> (time, line): the app asks often, the cluster changes seldom
_ASKING: set = set()  # addresses being asked right now
_LOCK = threading.Lock()


def backend_line(max_age_s: float = 60.0) -> str:
    """The Sweep tab's line, never blocking the page: the cluster is asked in the background by
    `python -m lopt_core cluster --json` (a child process, so the app's own process never becomes a Ray
    driver), and the last answer is shown meanwhile; an unreachable cluster is said, not raised."""
    backend = from_env()
    if backend is None:
        return describe(cluster_info(None))
    with _LOCK:
        hit = _LINE.get(backend.address)
        if (hit is None or time.time() - hit[0] >= max_age_s) and backend.address not in _ASKING:
            _ASKING.add(backend.address)
            threading.Thread(target=_ask, args=(backend.address,), daemon=True).start()
    return hit[1] if hit else f"Ray cluster at {backend.address} (asking it for its nodes…)"


def _ask(address: str) -> None:
    try:
        out = subprocess.run([sys.executable, "-m", "lopt_core", "cluster", "--json", "--ray-address", address],
                             capture_output=True, text=True, timeout=30)
        line = describe(json.loads(out.stdout)) if out.returncode == 0 else \
            f"Ray cluster at {address}: unreachable ({(out.stderr.strip().splitlines() or ['?'])[-1]})"
    except (subprocess.TimeoutExpired, ValueError) as e:
        line = f"Ray cluster at {address}: no answer ({type(e).__name__})"
    with _LOCK:
        _LINE[address] = (time.time(), line)
        _ASKING.discard(address)


# ---------------------------------------------------------------- the remote side

class Relay:
    """The one actor of a sweep, on the driver's node: ops from the tasks wait here for the driver; the
    driver's word (stop levels, states, the sweep's stop flag) waits here for the tasks."""

    def __init__(self, zero_shots: dict):
        self.ops: list = []
        self.word = {"levels": {}, "states": {}, "sweep_stop": 0}
        self.zero_shots = dict(zero_shots)

    def push(self, ops: list) -> None:
        self.ops.extend(ops)
        self.zero_shots.update({key: acc for kind, key, acc in ops if kind == "zero_shot"})

    def exchange(self, ops: list) -> dict:
        self.push(ops)
        return self.word

    def zero_shot(self, key: str):
        return self.zero_shots.get(key)

    def drain(self) -> list:
        ops, self.ops = self.ops, []
        return ops

    def tell(self, word: dict) -> None:
        self.word = word


class _Link:
    """A task's end of the relay (remote_store.RemoteStore's link)."""

    def __init__(self, ray, relay):
        self.ray, self.relay = ray, relay

    def exchange(self, ops):
        return self.ray.get(self.relay.exchange.remote(ops))

    def push(self, ops):
        self.relay.push.remote(ops)  # ordered after this caller's earlier calls

    def zero_shot(self, key):
        return self.ray.get(self.relay.zero_shot.remote(key))


def _train_task(sweep_id: str, batched: bool, cfg_dicts: list[dict], run_ids: list[str], relay, threads: int,
                prompts_per_pass: int | None, data: tuple | None) -> None:
    """A Ray task: one group of a sweep's plan, trained on this node; every write goes back through the relay."""
    import ray
    import torch
    from lopt_core.lm import precision
    node = {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}
    store = RemoteStore(_Link(ray, relay), sweep_id, run_ids, node)
    todo = [i for i, rid in enumerate(run_ids) if sweep.may_start(store, sweep_id, rid)]
    if todo:
        torch.set_num_threads(threads)
        with _staging_home() as home:
            cfgs = [_on_this_node(RunConfig.from_dict(cfg_dicts[i]), data, home) for i in todo]
            lm = precision.load(cfgs[0].model, cfgs[0].device, cfgs[0].precision)
            sweep.run_group(sweep_id, batched, cfgs, [run_ids[i] for i in todo], store, lm,
                            prompts_per_pass=prompts_per_pass)
    store.exchange()  # the last ops, synchronously: they are at the relay before this task ends


@contextlib.contextmanager
def _staging_home():
    """Artifacts are written to a private LOPT_HOME and sent to the driver, never into a home that a node
    might share with the driver; the model cache stays where it was."""
    from lopt_core import paths
    keep = {k: os.environ.get(k) for k in ("LOPT_HOME", "LOPT_MODEL_CACHE")}
    os.environ["LOPT_MODEL_CACHE"] = str(paths.models_dir())
    home = tempfile.mkdtemp(prefix="lopt-ray-")
    os.environ["LOPT_HOME"] = home
    try:
        yield Path(home)
    finally:
        for k, v in keep.items():  # this worker process may run another task next
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(home, ignore_errors=True)


def _on_this_node(cfg: RunConfig, data: tuple | None, home: Path) -> RunConfig:
    """A user data file that this node cannot read as the driver does: the driver's bytes, written here."""
    if data is None:
        return cfg
    path, content = data
    p = Path(path)
    if p.is_file() and p.read_bytes() == content:
        return cfg
    local = home / "data" / p.name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(content)
    return RunConfig.from_dict({**cfg.to_dict(), "data_file": str(local)})


# ---------------------------------------------------------------- the driver

def task_resources(cfg: RunConfig, cluster_gpus: float, backend: RayBackend) -> dict:
    """A GPU where the run is on CUDA (device cuda, or auto on a cluster with GPUs), CPUs otherwise."""
    if cfg.device == "cuda" and not cluster_gpus:
        raise RayBackendError(f"the runs ask for device cuda but the Ray cluster at {backend.address} has no GPU")
    if cfg.device == "cuda" or (cfg.device == "auto" and cluster_gpus):
        return {"num_gpus": 1, "num_cpus": backend.cpus_per_task}
    return {"num_cpus": backend.cpus_per_task}


def run_sweep(sweep_id: str, store: Store, backend: RayBackend, on_event=None, prompts_per_pass: int | None = None,
              poll_s: float = POLL_S) -> dict:
    """sweep.run with every group of the plan a Ray task; returns the sweep's summary. on_event(run_id, ev)
    sees start, step and end events as they reach the store."""
    ids, cfgs = sweep.begin(sweep_id, store)
    try:
        with connected(backend) as ray:
            _drive(ray, sweep_id, store, backend, ids, cfgs, on_event, prompts_per_pass, poll_s)
    except BaseException as e:
        sweep.fail(sweep_id, store, e)
        why = f"the Ray driver stopped: {type(e).__name__}: {e}"
        for r in store.list(states=("running",), sweep_id=sweep_id):
            store.update(r["run_id"], state="interrupted", error=why)
        raise
    return sweep.finish(sweep_id, store)


def _drive(ray, sweep_id, store, backend, ids, cfgs, on_event, prompts_per_pass, poll_s) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    relay = ray.remote(num_cpus=0)(Relay).options(scheduling_strategy=here).remote(store.zero_shots())
    task = ray.remote(_train_task)
    gpus = ray.cluster_resources().get("GPU", 0)
    widest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    if backend.cpus_per_task > widest:  # such a task would wait for a node forever
        raise RayBackendError(f"{ENV_CPUS}={backend.cpus_per_task} but the largest node of the Ray cluster at "
                              f"{backend.address} has {widest:g} CPUs")
    by_id = dict(zip(ids, cfgs))
    tasks = {}  # ref -> the run ids of its group
    for g in sweep.plan(cfgs):
        group = [cfgs[i] for i in g.indices]
        data = None
        if group[0].task == "file":
            data = (group[0].data_file, Path(group[0].data_file).read_bytes())
        res = task_resources(group[0], gpus, backend)
        ref = task.options(**res, max_retries=0, name=f"lopt-{sweep_id}-{len(tasks)}").remote(
            sweep_id, g.batched, [c.to_dict() for c in group], [ids[i] for i in g.indices], relay,
            backend.cpus_per_task, prompts_per_pass, data)
        tasks[ref] = [ids[i] for i in g.indices]
    nodes: dict[str, dict] = {}
    while tasks:
        ready, _ = ray.wait(list(tasks), num_returns=len(tasks), timeout=poll_s)
        relay.tell.remote(_word(store, sweep_id))
        ops = ray.get(relay.drain.remote())  # drained before reading ends: an ended task's last ops are all here
        apply(store, ops, nodes)
        if on_event:
            _events(ops, store, by_id, on_event)
        for ref in ready:
            _end_task(ray, ref, tasks.pop(ref), store, nodes)
        _cancel_unwanted(ray, tasks, store, sweep_id)


def _cancel_unwanted(ray, tasks: dict, store: Store, sweep_id: str) -> None:
    """Tasks whose runs were all stopped from the queue, or not yet started when the sweep was stopped, are
    cancelled: one still waiting for a node (a GPU that died) would otherwise hold the sweep running forever."""
    sweep_stop = bool(store.get_sweep(sweep_id)["stop_requested"])
    for ref, run_ids in list(tasks.items()):
        rows = [store.get(i) for i in run_ids]
        if any(r["trainable_params"] is not None for r in rows):  # started: its end (and artifacts) will come
            continue
        if sweep_stop or all(r["state"] in ("stopped", "failed", "interrupted") for r in rows):
            ray.cancel(ref, force=True)
            del tasks[ref]
            for r in rows:
                if r["state"] == "queued":
                    store.update(r["run_id"], state="stopped", error=None)


def _word(store: Store, sweep_id: str) -> dict:
    """What the tasks need to know: each run's stop level, the runs stopped from the queue, the sweep's flag."""
    runs = store.list(sweep_id=sweep_id)
    return {"levels": {r["run_id"]: int(r["stop_requested"] or 0) for r in runs},
            "states": {r["run_id"]: r["state"] for r in runs if r["state"] not in ("queued", "running")},
            "sweep_stop": int(store.get_sweep(sweep_id)["stop_requested"] or 0)}


def _events(ops: list[tuple], store: Store, by_id: dict, on_event) -> None:
    """The start, step, eval and end events a local sweep's on_event sees, from ops now in the store (the CLI's
    bars, --report-to). An evaluation's metric is named once the run's result is (the store keeps the value)."""
    for kind, key, payload in ops:
        if kind == "metric" and payload[1] == "loss":
            on_event(key, {"type": "step", "step": payload[0], "loss": payload[2], "lr": payload[3],
                           "examples_per_s": payload[4]})
        elif kind == "metric":
            on_event(key, {"type": "eval", "step": payload[0], "accuracy": payload[2]})
        elif kind == "update" and payload.get("state") == "running" and "trainable_params" in payload:
            on_event(key, {"type": "start", "total_steps": by_id[key].steps})
        elif kind == "update" and isinstance(payload.get("result"), dict) and "accuracy" in payload["result"]:
            on_event(key, {"type": "end", "state": payload["state"], "result": store.get(key)["result"]})


def _end_task(ray, ref, run_ids: list[str], store: Store, nodes: dict) -> None:
    """A task has ended: if it raised or its worker/node died, its unfinished runs say so; others stay as they are."""
    try:
        ray.get(ref)
        return
    except ray.exceptions.RayTaskError as e:  # the task itself raised (e.g. the model would not load here)
        state, why = "failed", f"{type(e.cause).__name__}: {e.cause}"
    except ray.exceptions.RayError as e:  # the worker process or its node is gone
        ip = next((nodes[r]["ip"] for r in run_ids if r in nodes), None)
        state = "interrupted"
        why = (f"the Ray node{f' {ip}' if ip else ''} running this configuration died or lost its worker "
               f"({type(e).__name__}); not retried: Resume trains it again")
    for rid in run_ids:
        if store.get(rid)["state"] in ("queued", "running"):
            store.update(rid, state=state, error=why)


def run(sweep_id: str, store: Store, backend: RayBackend | None, on_event=None,
        prompts_per_pass: int | None = None) -> dict:
    """A sweep on the backend in use: the Ray cluster when one is given, else this process (sweep.run)."""
    if backend is None:
        return sweep.run(sweep_id, store, on_event=on_event, prompts_per_pass=prompts_per_pass)
    return run_sweep(sweep_id, store, backend, on_event=on_event, prompts_per_pass=prompts_per_pass)
