"""Sweeps on a Ray cluster of two nodes started here on loopback (ray.cluster_utils, 1 CPU each, no dashboard):
the same runs and accuracies as the local backend, curves that grow while the tasks train, stop through the job
manager, and a worker node killed mid-sweep: its runs interrupted with the reason, the others untouched."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from lopt_core.sweeps import ray_backend, spec as sweep
from lopt_core.config import RunConfig
from lopt_core.store.sqlite import Store
from lopt_core.sweeps.spec import SweepSpec

# every Ray process of this test (the cluster's, the drivers') on loopback only: Ray otherwise advertises the
# machine's network address for 127.0.0.1 (services.resolve_ip_for_localhost); read when ray is imported
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

NODE = dict(num_cpus=1, object_store_memory=100 * 2**20, node_ip_address="127.0.0.1")
FAST_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 2}


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray", reason="ray is not installed (pip install ray==2.60.0, requirements.txt)")
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, connect=False,
                head_node_args=dict(NODE, include_dashboard=False, _system_config=FAST_DEATH))
    c.add_node(**NODE)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture
def backend(cluster):
    return ray_backend.RayBackend(cluster.address)


def spec_for(model_dir, csv, **kw):
    knobs = dict(data_file=str(csv), steps=20, batch_size=4, eval_every=0, eval_size=0, device="cpu")
    knobs.update(kw.pop("knobs", {}))
    return SweepSpec(**dict(dict(model=model_dir, task="file", methods=["prompt_tuning", "lopt1", "lora"], n=[4],
                                 r=[1, 2], seeds=[0, 1], knobs=knobs), **kw))


def by_config(store: Store, sweep_id: str) -> dict:
    return {(r["method"], r["n"], r["r"], r["config"]["seed"]): r for r in store.list(sweep_id=sweep_id)}


def training(store: Store, sweep_id: str) -> list[dict]:
    """The sweep's runs that are running and have logged a few steps."""
    return [r for r in store.list(sweep_id=sweep_id) if r["state"] == "running" and r["steps_done"] >= 3]


def watch(store: Store, sweep_id: str, until) -> list[tuple]:
    """(run_id, state, loss rows) snapshots of the sweep's runs until `until()` is true."""
    seen = []
    while not until():
        for r in store.list(sweep_id=sweep_id):
            seen.append((r["run_id"], r["state"], len(store.metrics(r["run_id"], "loss"))))
        time.sleep(0.05)
    return seen


# ---------------------------------------------------------------- without a cluster

def test_tasks_ask_for_a_gpu_for_cuda_runs_and_cpus_otherwise():
    b = ray_backend.RayBackend("10.0.0.5:6379", cpus_per_task=4)
    on = lambda device: RunConfig(device=device)  # noqa: E731
    assert ray_backend.task_resources(on("cuda"), 2, b) == {"num_gpus": 1, "num_cpus": 4}
    assert ray_backend.task_resources(on("auto"), 2, b) == {"num_gpus": 1, "num_cpus": 4}
    assert ray_backend.task_resources(on("auto"), 0, b) == {"num_cpus": 4}
    assert ray_backend.task_resources(on("cpu"), 2, b) == {"num_cpus": 4}
    with pytest.raises(ray_backend.RayBackendError, match="device cuda but the Ray cluster at 10.0.0.5:6379 has no"):
        ray_backend.task_resources(on("cuda"), 0, b)


def test_the_backend_comes_from_the_environment_or_the_flags(monkeypatch, capsys):
    from lopt_core import cli
    monkeypatch.delenv(ray_backend.ENV_ADDRESS, raising=False)
    assert ray_backend.from_env() is None
    assert ray_backend.from_env("head:6379") == ray_backend.RayBackend("head:6379", 1)
    monkeypatch.setenv(ray_backend.ENV_ADDRESS, "10.0.0.5:6379")
    monkeypatch.setenv(ray_backend.ENV_CPUS, "4")
    assert ray_backend.from_env() == ray_backend.RayBackend("10.0.0.5:6379", 4)
    monkeypatch.setenv(ray_backend.ENV_CPUS, "0")
    with pytest.raises(ray_backend.RayBackendError, match="LOPT_RAY_CPUS must be a whole number >= 1, got '0'"):
        ray_backend.from_env()
    monkeypatch.delenv(ray_backend.ENV_ADDRESS)
    assert cli.main(["sweep", "--backend", "ray", "--steps", "1"]) == 2
    assert "--backend ray needs --ray-address ADDR or LOPT_RAY_ADDRESS" in capsys.readouterr().err
    assert Store().list_sweeps() == [], "nothing was queued"


def test_what_a_node_without_our_disk_needs_travels_as_bytes(tmp_path, sentiment_csv):
    from lopt_core.training import artifacts
    from lopt_core.sweeps import remote_store
    # an artifact folder (with a subfolder, as peft's adapter/) comes back file by file under this LOPT_HOME
    src = tmp_path / "remote" / "run-1"
    (src / "adapter").mkdir(parents=True)
    (src / "run.json").write_text("{}")
    (src / "adapter" / "adapter_model.safetensors").write_bytes(b"\x00\x01")
    folder = remote_store.unpack("run-1", remote_store.pack(src))
    assert folder == artifacts.run_dir("run-1")
    assert (folder / "adapter" / "adapter_model.safetensors").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="outside its folder"):
        remote_store.unpack("run-2", {"../escape.txt": b"x"})
    # a user data file this node cannot read is written from the driver's bytes; one it can read is used as is
    cfg = RunConfig(task="file", data_file="/nowhere/reviews.csv")
    moved = ray_backend._on_this_node(cfg, (cfg.data_file, sentiment_csv.read_bytes()), tmp_path / "home")
    assert moved.data_file == str(tmp_path / "home" / "data" / "reviews.csv")
    assert Path(moved.data_file).read_bytes() == sentiment_csv.read_bytes()
    same = RunConfig(task="file", data_file=str(sentiment_csv))
    assert ray_backend._on_this_node(same, (same.data_file, sentiment_csv.read_bytes()), tmp_path / "h2") is same


# ---------------------------------------------------------------- on a two-node cluster

def test_cluster_info_names_the_nodes(backend, capsys, monkeypatch):
    info = ray_backend.cluster_info(backend)
    assert info["backend"] == "ray" and len(info["nodes"]) == 2 and info["cpus"] == 2 and info["gpus"] == 0
    assert ray_backend.describe(info) == f"Ray cluster at {backend.address}: 2 nodes, 2 CPUs, 0 GPUs"
    from lopt_core import cli
    monkeypatch.setenv(ray_backend.ENV_ADDRESS, backend.address)
    assert cli.main(["cluster"]) == 0
    assert "2 nodes, 2 CPUs, 0 GPUs" in capsys.readouterr().out
    # the Sweep tab's line: answered in the background, the last answer shown meanwhile
    first = ray_backend.backend_line()
    assert first == f"Ray cluster at {backend.address} (asking it for its nodes…)"
    t0 = time.time()
    while ray_backend.backend_line() == first and time.time() - t0 < 60:
        time.sleep(0.2)
    assert ray_backend.backend_line() == f"Ray cluster at {backend.address}: 2 nodes, 2 CPUs, 0 GPUs"
    monkeypatch.delenv(ray_backend.ENV_ADDRESS)
    assert ray_backend.backend_line().startswith("local worker queue: this machine")


def test_a_sweep_on_ray_matches_the_local_backend(backend, tiny_model_dir, sentiment_csv, tmp_path):
    local, remote = Store(tmp_path / "local.sqlite"), Store()
    # fp32 on both sides: `auto` measures per thread count, and a Ray worker's one thread is measured apart from
    # this process's two, so under load the two backends could pick different precisions (this compared
    # final losses 0.0013 apart once, with the atlas training beside it)
    spec = lambda: spec_for(tiny_model_dir, sentiment_csv, r=[2], knobs={"precision": "fp32"})  # noqa: E731
    a = sweep.create(spec(), local)
    sweep.run(a, local)
    # the same grid through the command line on the cluster (its store: this test's LOPT_HOME)
    from lopt_core import cli
    argv = ["sweep", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv), "--methods",
            "prompt_tuning,lopt1,lora", "--n", "4", "--r", "2", "--seeds", "0,1", "--steps", "20", "--batch-size", "4",
            "--eval-every", "0", "--eval-size", "0", "--device", "cpu", "--precision", "fp32", "--ray-address",
            backend.address, "--json"]
    rc = []
    t = threading.Thread(target=lambda: rc.append(cli.main(argv)))
    t.start()
    while not remote.list_sweeps() and t.is_alive():
        time.sleep(0.05)
    b = remote.list_sweeps()[0]["sweep_id"]
    seen = watch(remote, b, until=lambda: not t.is_alive())
    t.join()
    assert rc == [0]
    assert remote.get_sweep(b)["state"] == "done"
    # curves grow while the tasks train: a run seen running with some but not all of its loss rows
    assert any(state == "running" and 0 < n < 20 for _, state, n in seen), seen[-5:]
    want, got = by_config(local, a), by_config(remote, b)
    assert set(want) == set(got) and len(got) == 6
    for key, w in want.items():
        g = got[key]
        assert g["state"] == w["state"] == "done", (key, g["error"])
        assert g["accuracy"] == w["accuracy"], key
        assert g["result"]["final_loss"] == pytest.approx(w["result"]["final_loss"], abs=1e-5), \
            (key, g["result"].get("precision"), w["result"].get("precision"))
        assert g["result"]["backend"] == "ray" and g["result"]["ray_node"] == "127.0.0.1"
        assert g["zero_shot_accuracy"] == w["zero_shot_accuracy"]
        assert [m["value"] for m in remote.metrics(g["run_id"], "loss")] == \
            pytest.approx([m["value"] for m in local.metrics(w["run_id"], "loss")], abs=1e-5)
        # the artifact came back as files into this machine's LOPT_HOME, and loads like a local one
        folder = Path(g["artifact_dir"])
        assert folder.parent == Path(w["artifact_dir"]).parent and folder.name == g["run_id"]
        assert sorted(p.name for p in folder.rglob("*")) == sorted(p.name for p in Path(w["artifact_dir"]).rglob("*"))
    from lopt_core.training.runs import evaluate_run
    g = got[("lopt1", 4, 2, 1)]  # an artifact written here from a remote task's bytes evaluates to its accuracy
    assert evaluate_run(g["run_id"], remote)["accuracy"] == g["accuracy"]


def test_stop_through_the_job_manager_reaches_the_remote_task(cluster, tiny_model_dir, sentiment_csv, tmp_path,
                                                             monkeypatch):
    from lopt_core.jobs.manager import JobManager
    monkeypatch.setenv(ray_backend.ENV_ADDRESS, cluster.address)  # the worker process drives the cluster
    jm = JobManager(tmp_path / "jobs.sqlite", max_concurrent=1, poll_s=0.2, worker_threads=1)
    try:
        spec = spec_for(tiny_model_dir, sentiment_csv, methods=["prompt_tuning", "lopt1"], r=[1], seeds=[0],
                        knobs=dict(steps=5000))
        sid = jm.submit_sweep(spec)
        store = jm.store
        watch(store, sid, until=lambda: len(training(store, sid)) == 2 or store.get_sweep(sid)["state"] != "running")
        asked_at = {r["run_id"]: r["steps_done"] for r in store.list(sweep_id=sid)}
        jm.stop_sweep(sid)
        sw = jm.wait_sweep(sid, timeout=120)
    finally:
        jm.close()
    assert sw["state"] == "stopped"
    for r in store.list(sweep_id=sid):
        assert r["state"] == "stopped" and r["result"]["backend"] == "ray", r["error"]
        # the stop reaches the task through the driver's next poll of the store (0.1 s) and the relay, at the
        # task's next step: the training time between the request and the end is a fraction of a second
        assert asked_at[r["run_id"]] <= r["steps_done"] < 5000
        after = [m for m in store.metrics(r["run_id"], "loss") if m["step"] > asked_at[r["run_id"]]]
        lag_s = sum(4 / m["examples_per_s"] for m in after)  # each step's own seconds (batch 4)
        print(f"stop asked at step {asked_at[r['run_id']]}, ended at step {r['steps_done']} ({lag_s:.2f} s later)")
        assert lag_s < 1.0
        assert Path(r["artifact_dir"], "run.json").is_file()  # what it trained came back


def test_a_task_that_raises_fails_its_runs_with_the_reason(backend, tiny_model_dir, sentiment_csv, tmp_path):
    import shutil
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    store = Store()
    sid = sweep.create(spec_for(str(model), sentiment_csv, methods=["lopt1"], r=[1], seeds=[0]), store)
    shutil.rmtree(model)  # queued, then the model is gone: the task cannot load it on its node
    out = ray_backend.run_sweep(sid, store, backend)
    assert out["state"] == "failed" and "every configuration failed" in store.get_sweep(sid)["error"]
    (run,) = store.list(sweep_id=sid)
    assert run["state"] == "failed" and str(model) in run["error"], run["error"]


def test_a_dead_node_interrupts_its_runs_only(cluster, backend, tiny_model_dir, sentiment_csv):
    """Runs last: it kills the cluster's worker node."""
    store = Store()
    spec = spec_for(tiny_model_dir, sentiment_csv, methods=["prompt_tuning", "lopt1"], r=[1], seeds=[0, 1],
                    knobs=dict(steps=5000))
    sid = sweep.create(spec, store)  # two batched groups (one per seed): one task on each node
    t = threading.Thread(target=ray_backend.run_sweep, args=(sid, store, backend))
    t.start()
    watch(store, sid, until=lambda: len(training(store, sid)) == 4 or not t.is_alive())
    assert len(training(store, sid)) == 4, [(r["state"], r["error"]) for r in store.list(sweep_id=sid)]
    cluster.remove_node(cluster.list_all_nodes()[1], allow_graceful=False)  # the worker node, not the head
    watch(store, sid, until=lambda: any(r["state"] == "interrupted" for r in store.list(sweep_id=sid))
          or not t.is_alive())
    at_death = {r["run_id"]: r["steps_done"] for r in store.list(sweep_id=sid)}
    time.sleep(1.0)
    sweep.stop(sid, store)
    t.join(timeout=120)
    runs = by_config(store, sid)
    dead = {k for k, r in runs.items() if r["state"] == "interrupted"}
    assert {k[3] for k in dead} in ({0}, {1}) and len(dead) == 2, "exactly the group on the dead node"
    for k, r in runs.items():
        if k in dead:
            assert "Ray node 127.0.0.1" in r["error"] and "died" in r["error"] and "Resume" in r["error"]
        else:  # untouched: it kept training after the death, then ended by our stop with what it trained
            assert r["state"] == "stopped" and r["steps_done"] > at_death[r["run_id"]], r
            assert Path(r["artifact_dir"], "run.json").is_file()
    assert store.get_sweep(sid)["state"] == "stopped"
