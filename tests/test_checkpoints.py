"""Checkpoints (training/checkpoints.py): a run killed mid-training continues from its last checkpoint and
reaches the prompt, curve and result of a run never interrupted, for solo runs, K-prompt groups and a sweep
whose process is killed with SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lopt_core.config import RunConfig
from lopt_core.lm import engine
from lopt_core.training import checkpoints
from lopt_core.training.loop import train_group

ROOT = Path(__file__).resolve().parent.parent


class Killed(Exception):
    pass


def _cfgs(model, csv, specs, steps=8):
    return [RunConfig(model=model, task="file", data_file=str(csv), method=m, n=n, r=r, steps=steps, batch_size=4,
                      eval_every=3, eval_size=0, lr=0.05, device="cpu", seed=1) for m, n, r in specs]


def _curves(kill_at=None):
    curves = {}

    def on_event(rid, ev):
        if ev["type"] == "step":
            if kill_at is not None and ev["step"] == kill_at:
                raise Killed()
            curves.setdefault(rid, []).append((ev["step"], ev["loss"]))
    return curves, on_event


@pytest.mark.parametrize("specs", [[("lopt1", 6, 2)], [("lora", 4, 2)],
                                   [("prompt_tuning", 4, 1), ("ulpt", 3, 2), ("lopt2", 5, 3)]])
def test_a_killed_run_continues_from_its_checkpoint_to_the_same_prompt(tiny_model_dir, sentiment_csv, monkeypatch,
                                                                       specs):
    monkeypatch.setattr(checkpoints, "EVERY_S", 0.0)
    monkeypatch.setattr(engine, "PACK", "always")
    cfgs = _cfgs(tiny_model_dir, sentiment_csv, specs)
    ref_curves, on_ref = _curves()
    ref = train_group(cfgs, on_event=on_ref)
    ids = [f"killed-{i}" for i in range(len(cfgs))]
    got, on_kill = _curves(kill_at=6)
    with pytest.raises(Killed):
        train_group(cfgs, ids, on_event=on_kill)  # dies during step 6: the checkpoint of step 5 is the last
    from lopt_core.training import artifacts
    assert [checkpoints.step_of(artifacts.run_dir(i)) for i in ids] == [5] * len(ids)
    resumed, on_resume = _curves()
    out = train_group(cfgs, ids, on_event=on_resume)
    for i, (r0, r1) in enumerate(zip(ref, out)):
        rid = ids[i]
        steps = [s for s, _ in got[rid] + resumed[rid]]
        assert steps == list(range(1, 9)), "the curve continues: steps 1-5 before, 6-8 after"
        want = [l for _, l in ref_curves[r0["run_id"]]]
        assert [l for _, l in got[rid] + resumed[rid]] == pytest.approx(want, abs=1e-6), cfgs[i].method
        assert r1["accuracy"] == pytest.approx(r0["accuracy"]) and r1["steps_done"] == 8
        assert r1["train_seconds"] > 0 and not checkpoints.path(r1["artifact_dir"]).exists(), "removed at the end"
        a, b = (Path(x["artifact_dir"]) for x in (r0, r1))
        for f in sorted(p.name for p in a.glob("*.safetensors")):
            for k, v in load_file(a / f).items():
                torch.testing.assert_close(load_file(b / f)[k], v, rtol=0, atol=1e-6)


def test_a_damaged_or_foreign_checkpoint_starts_the_run_over(tiny_model_dir, sentiment_csv, monkeypatch):
    from lopt_core.training import artifacts
    monkeypatch.setattr(checkpoints, "EVERY_S", 0.0)
    cfgs = _cfgs(tiny_model_dir, sentiment_csv, [("lopt1", 6, 2)], steps=4)
    folder = artifacts.run_dir("damaged-1")
    folder.mkdir(parents=True)
    checkpoints.path(folder).write_bytes(b"not a checkpoint")
    steps = []
    train_group(cfgs, ["damaged-1"], on_event=lambda rid, ev: ev["type"] == "step" and steps.append(ev["step"]))
    assert steps == [1, 2, 3, 4]


def _sweep_home(tmp_path, name):
    home = tmp_path / name
    return {**os.environ, "LOPT_HOME": str(home), "PYTHONPATH": str(ROOT), "LOPT_CHECKPOINT_S": "0"}, home


def test_a_sweep_killed_with_sigkill_resumes_from_its_checkpoints(tiny_model_dir, sentiment_csv, tmp_path):
    """The whole process dies (kill -9) mid-sweep; `sweep --resume` continues each configuration from its
    checkpoint and ends with the prompts an uninterrupted sweep of the same command ends with. So does the killed
    sweep carried elsewhere: exported with --checkpoints and imported into an empty home (a new machine)."""
    args = [sys.executable, "-m", "lopt_core", "sweep", "--model", tiny_model_dir, "--task", "file", "--data-file",
            str(sentiment_csv), "--methods", "prompt_tuning,lopt1", "--n", "4", "--r", "2", "--seeds", "0",
            "--steps", "120", "--batch-size", "4", "--eval-every", "0", "--eval-size", "8", "--lr", "0.05",
            "--device", "cpu"]
    env, home = _sweep_home(tmp_path, "killed")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 240:
        steps = [checkpoints.step_of(p.parent) for p in (home / "artifacts").glob("*/checkpoint.pt")]
        if len(steps) == 2 and min(steps) >= 20:
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from lopt_core.store.sqlite import Store
    store = Store(home / "runs.sqlite")
    (sweep,) = store.list_sweeps()
    assert sweep["state"] == "running" and {r["state"] for r in store.list()} == {"running"}
    # the same killed sweep carried to another machine: exported with its checkpoints, imported into an empty home
    carried = tmp_path / "carried.json"
    subprocess.run([sys.executable, "-m", "lopt_core", "sweep-export", "--sweep", sweep["sweep_id"], "--out",
                    str(carried), "--checkpoints"], env=env, check=True, capture_output=True, timeout=120)
    env3, home3 = _sweep_home(tmp_path, "moved")
    imp = subprocess.run([sys.executable, "-m", "lopt_core", "sweep-import", str(carried), "--json"], env=env3,
                         capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0 and json.loads(imp.stdout)["state"] == "interrupted", imp.stderr[-2000:]
    assert sorted(checkpoints.step_of(p.parent) for p in (home3 / "artifacts").glob("*/checkpoint.pt")) == \
        sorted(checkpoints.step_of(p.parent) for p in (home / "artifacts").glob("*/checkpoint.pt"))
    moved = subprocess.run([sys.executable, "-m", "lopt_core", "sweep", "--resume", sweep["sweep_id"], "--json"],
                           env=env3, capture_output=True, text=True, timeout=600)
    assert moved.returncode == 0, moved.stderr[-2000:]
    done = subprocess.run([sys.executable, "-m", "lopt_core", "sweep", "--resume", sweep["sweep_id"], "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = store.list()
    assert {r["state"] for r in rows} == {"done"} and len(rows) == 2
    for r in rows:
        steps = [m["step"] for m in store.metrics(r["run_id"], "loss")]
        assert steps == list(range(1, 121)), "one continuous curve, each step once"
    env2, home2 = _sweep_home(tmp_path, "whole")
    whole = subprocess.run(args + ["--json"], env=env2, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    ref = {r["method"]: r for r in Store(home2 / "runs.sqlite").list()}
    moved_rows = Store(home3 / "runs.sqlite").list()
    assert {r["state"] for r in moved_rows} == {"done"} and len(moved_rows) == 2
    for r in rows + moved_rows:
        a = load_file(Path(r["artifact_dir"]) / "prompt.safetensors")["prompt"]
        b = load_file(Path(ref[r["method"]]["artifact_dir"]) / "prompt.safetensors")["prompt"]
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        assert r["accuracy"] == ref[r["method"]]["accuracy"]


def test_a_killed_cli_run_resumes_with_the_resume_command(tiny_model_dir, sentiment_csv, tmp_path):
    """`train` killed with SIGKILL leaves its row 'running' under a dead pid; `resume --run` continues it from
    its checkpoint to the end, one curve; a live or finished run is refused, naming why."""
    env, home = _sweep_home(tmp_path, "solo")
    args = [sys.executable, "-m", "lopt_core", "train", "--model", tiny_model_dir, "--task", "file", "--data-file",
            str(sentiment_csv), "--method", "lopt1", "--n", "4", "--r", "2", "--steps", "120", "--batch-size", "4",
            "--eval-every", "0", "--eval-size", "8", "--device", "cpu"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 240:
        found = list((home / "artifacts").glob("*/checkpoint.pt")) if (home / "artifacts").is_dir() else []
        if found and checkpoints.step_of(found[0].parent) >= 20:
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = found[0].parent.name
    out = subprocess.run([sys.executable, "-m", "lopt_core", "resume", "--run", run_id, "--json"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "continues after step" in out.stderr
    from lopt_core.store.sqlite import Store
    store = Store(home / "runs.sqlite")
    assert store.get(run_id)["state"] == "done"
    assert [m["step"] for m in store.metrics(run_id, "loss")] == list(range(1, 121))
    again = subprocess.run([sys.executable, "-m", "lopt_core", "resume", "--run", run_id], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "is done: only an interrupted or failed run can be resumed" in again.stderr
