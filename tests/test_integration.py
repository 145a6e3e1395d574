"""Integration on the real offline default (SmolLM2-135M-Instruct from the GGUF pack) and real SST-2 data.

Each real training step costs 1-3 s on a 2-core CPU, so these runs are short: they check that every method
trains on the real model, that training lowers the loss, that the base stays frozen and that artifacts reload.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lopt_core.lm import models
from lopt_core.config import RunConfig
from lopt_core.training.runs import count_params, evaluate_run, run_and_record
from lopt_core.store.sqlite import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smol():
    return models.load_model("smollm2-135m", "cpu")


def _digest(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_offline_default_is_cached_dequantized(smol):
    folder = models.offline_default_folder()
    assert (folder / "model.safetensors").stat().st_size > 500e6, "fp32 weights, not the 4-bit GGUF"
    cfg = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert smol.d == 576 and smol.model.dtype == torch.float32 and smol.device.type == "cpu"
    assert count_params("lopt1", 20, 5) == 2_980 and count_params("prompt_tuning", 20, 5) == 11_520


def test_prompt_tuning_on_sst2_lowers_loss_keeps_base_frozen_and_reloads(smol):
    before = _digest(smol.model)
    store = Store()
    losses = []
    cfg = RunConfig(task="sst2", method="prompt_tuning", n=20, steps=24, batch_size=8, eval_every=0, eval_size=64)
    res = run_and_record(cfg, on_event=lambda ev: ev["type"] == "step" and losses.append(ev["loss"]), store=store,
                         lm=smol)
    assert res["trainable_params"] == 20 * 576
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8, losses
    assert 0.5 < res["zero_shot_accuracy"] < 1 and 0.5 < res["accuracy"] <= 1
    assert _digest(smol.model) == before, "the frozen base model changed"
    assert evaluate_run(res["run_id"], store=store, lm=smol)["accuracy"] == res["accuracy"]


@pytest.mark.parametrize("method", ["lopt1", "lopt2", "ulpt", "lopa", "lora", "prefix"])
def test_every_method_trains_on_the_offline_default(smol, method):
    cfg = RunConfig(task="sst2", method=method, n=10, r=4, steps=2, batch_size=4, eval_every=0, eval_size=16)
    res = run_and_record(cfg, store=Store(), lm=smol)
    assert res["state"] == "done" and res["steps_done"] == 2 and 0 <= res["accuracy"] <= 1
    assert res["trainable_params"] == count_params(method, 10, 4)


def test_cli_train_on_the_offline_default(lopt_home):
    env = {**os.environ, "LOPT_HOME": str(lopt_home), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "lopt_core", "train", "--task", "sst2", "--method", "lopt1", "--n", "20",
                        "--r", "5", "--steps", "2", "--batch-size", "4", "--eval-size", "16", "--json"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["model"] == "smollm2-135m" and res["trainable_params"] == 2_980 and res["task"] == "sst2"
    assert Path(res["artifact_dir"], "prompt.safetensors").exists()


def _cli(lopt_home, *args) -> dict:
    env = {**os.environ, "LOPT_HOME": str(lopt_home), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "lopt_core", *args, "--json"], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_three_task_kinds_train_from_the_cli(lopt_home, tmp_path):
    """arithmetic reports exact match, arc_easy accuracy, a user JSONL of input/output pairs exact match; and the
    answers command shows a run's answers on its test examples beside the gold answers."""
    short = ["--n", "8", "--r", "2", "--steps", "2", "--batch-size", "4", "--eval-size", "8", "--eval-every", "0"]
    res = _cli(lopt_home, "train", "--task", "arithmetic", "--method", "lopt1", *short)
    assert res["state"] == "done" and res["metric"] == "exact_match" and res["kind"] == "generation"
    assert 0 <= res["score"] <= 1 and set(res["scores"]) == {"f1", "target_loss"} and len(res["correct"]) == 8
    shown = _cli(lopt_home, "answers", "--run", res["run_id"], "--k", "3")
    assert shown["kind"] == "generation" and len(shown["rows"]) == 3
    row = shown["rows"][0]
    assert row["input"].startswith("Calculate") and row["gold"].lstrip("-").isdigit()
    assert all(row[c][:1] in "✓✗" for c in row if c not in ("input", "gold"))
    assert "without a prompt" in shown["reading"]
    res = _cli(lopt_home, "train", "--task", "arc_easy", "--method", "prompt_tuning", *short)
    assert res["state"] == "done" and res["metric"] == "accuracy" and res["kind"] == "multiple_choice"
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"input": f"Capital of {c}?", "output": a}) + "\n" for c, a in
                             [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Japan", "Tokyo"),
                              ("Peru", "Lima"), ("Chile", "Santiago"), ("Kenya", "Nairobi"), ("Egypt", "Cairo")] * 2))
    res = _cli(lopt_home, "train", "--task", "file", "--data-file", str(pairs), "--kind", "generation",
               "--text-column", "input", "--target-column", "output", "--method", "lopt1", *short)
    assert res["state"] == "done" and res["metric"] == "exact_match"
