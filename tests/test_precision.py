"""Precision by measurement (lm/precision.py): auto picks bf16 only where this machine ran it clearly faster,
remembers the verdict per machine and model, and every run records the precision it used and why."""
from __future__ import annotations

import json

import pytest
import torch

from lopt_core import cli
from lopt_core.config import ConfigError, RunConfig
from lopt_core.lm import attention, precision
from lopt_core.lm.models import load_model
from lopt_core.training.loop import train


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Verdicts of these tests go to a file of their own, not the shared model cache's."""
    monkeypatch.setattr(precision, "_cache_path", lambda: tmp_path / "precision.json")


@pytest.fixture
def fake_speed(monkeypatch):
    """measure() replaced by a given speed-up; counts how often it ran."""
    calls = []

    def set_speedup(speedup: float, fp32_attention: bool = False):
        def fake(name, device="cpu", repeats=2):
            calls.append(name)
            return {"fp32_s": 1.0, "bf16_s": 1.0 / speedup, "speedup": speedup, "step_s": 2.0,
                    "step_shape": [8, 50], "calibrated": True, "fp32_attention": fp32_attention,
                    "attention_speedup": 1.2 if fp32_attention else 0.9}
        monkeypatch.setattr(precision, "measure", fake)
        return calls
    return set_speedup


@pytest.mark.parametrize("speedup,expected", [(2.1, "bf16"), (1.29, "fp32"), (0.03, "fp32")])
def test_auto_decides_by_the_measured_speedup(fake_speed, speedup, expected):
    calls = fake_speed(speedup)
    v = precision.decide("some-model", "cpu", "auto", threads=1)
    assert v.precision == expected and v.speedup == speedup and f"{speedup:.2f}x" in v.reason
    assert precision.decide("some-model", "cpu", "auto", threads=1) == v and calls == ["some-model"], \
        "measured once per machine, model and thread count, then read back"
    entry = precision.cached()[precision.cache_key("some-model", 1)]
    assert entry["cpu"] == precision.cpu_model() and entry["precision"] == expected
    assert precision.decide("some-model", "cpu", "auto", threads=2, measure_now=False) is None  # not measured


def test_an_explicit_precision_is_taken_as_asked(fake_speed):
    calls = fake_speed(0.01)
    assert precision.decide("m", "cpu", "bf16") == precision.Verdict("bf16", "bf16, as asked")
    assert precision.decide("m", "cpu", "fp32").precision == "fp32" and calls == []
    with pytest.raises(ConfigError, match="precision must be auto, fp32 or bf16"):
        RunConfig(precision="fp16").validate()


def test_the_real_measurement_times_both(tiny_model_dir):
    m = precision.measure(tiny_model_dir, "cpu", repeats=1)
    assert m["fp32_s"] > 0 and m["bf16_s"] > 0 and m["speedup"] == pytest.approx(m["fp32_s"] / m["bf16_s"])
    if m["shape"] == list(precision.STEP_SHAPE):  # a CPU without bf16 units: the warm-ups decided, fp32 it is
        assert m["speedup"] < 1 / precision.CLEARLY_SLOWER and not m["fp32_attention"]
    else:
        assert m["shape"] == list(precision.CALIBRATION_SHAPE), "timed at a run's shape, not the warm-ups' toy one"
        assert m["attention_speedup"] > 0 and m["fp32_attention"] == (m["attention_speedup"] > 1)
    assert not attention.using_fp32(load_model(tiny_model_dir, "cpu", "bf16").model), "the cached model is restored"


def test_attention_goes_to_fp32_only_where_measured_faster(tiny_model_dir, fake_speed):
    """A bf16 verdict carries the attention choice of the same measurement; auto and an explicit bf16 load the
    model with it, fp32 never; a machine that measured bf16 attention faster keeps it in bf16."""
    fake_speed(2.0, fp32_attention=True)
    v = precision.decide(tiny_model_dir, "cpu", "auto")
    assert v.precision == "bf16" and v.fp32_attention and "attention in fp32 (1.20x" in v.reason
    lm = precision.load(tiny_model_dir, "cpu", "auto")
    assert lm.dtype == torch.bfloat16 and attention.using_fp32(lm.model) and "attention in fp32" in lm.precision_reason
    assert precision.decide(tiny_model_dir, "cpu", "bf16").fp32_attention, "an explicit bf16 keeps the measured op"
    assert not precision.decide(tiny_model_dir, "cpu", "fp32").fp32_attention
    assert not attention.using_fp32(precision.load(tiny_model_dir, "cpu", "fp32").model)
    precision._cache_path().unlink()
    fake_speed(2.0, fp32_attention=False)
    v = precision.decide(tiny_model_dir, "cpu", "auto")
    assert v.precision == "bf16" and not v.fp32_attention and "attention" not in v.reason
    assert not attention.using_fp32(precision.load(tiny_model_dir, "cpu", "auto").model)


def test_a_bf16_run_keeps_its_trainable_state_in_fp32(tiny_model_dir, sentiment_csv):
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(sentiment_csv), method="lopt1", n=4, r=2,
                    steps=3, batch_size=4, eval_every=0, eval_size=8, precision="bf16")
    losses = []
    res = train(cfg, on_event=lambda ev: ev["type"] == "step" and losses.append(ev["loss"]))
    assert res["state"] == "done" and res["precision"] == "bf16" and res["precision_reason"] == "bf16, as asked"
    assert all(torch.isfinite(torch.tensor(losses)))
    saved = json.loads((__import__("pathlib").Path(res["artifact_dir"]) / "run.json").read_text())
    assert saved["result"]["precision"] == "bf16"
    fp32 = train(RunConfig(**{**cfg.to_dict(), "precision": "fp32"}), save=False)
    assert fp32["precision"] == "fp32" and fp32["accuracy"] is not None


def test_auto_runs_record_the_measured_reason(tiny_model_dir, sentiment_csv, fake_speed):
    fake_speed(0.5)
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(sentiment_csv), method="ulpt", n=4, r=1,
                    steps=2, batch_size=4, eval_every=0, eval_size=8)
    res = train(cfg, save=False)
    assert res["precision"] == "fp32" and res["precision_reason"].startswith("auto: bf16 steps ran 0.50x")


def test_the_cli_shows_the_verdict(tiny_model_dir, fake_speed, capsys):
    fake_speed(1.8)
    assert cli.main(["precision", "--model", tiny_model_dir, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == "bf16" and out["speedup"] == 1.8 and out["cpu"] == precision.cpu_model()


def test_a_load_spike_does_not_make_bf16_look_faster(tiny_model_dir, monkeypatch):
    """A busy host slows some samples down: the fastest sample of each precision counts, so a spike in fp32's
    timing cannot hand bf16 the verdict (a tiny model once measured bf16 '4x faster' on an AMD EPYC that has
    no bf16 units, which made fp32-tolerance tests run in bf16)."""
    import time
    import torch
    calls = {"fp32": 0}

    def fake_step(lm, x):
        if lm.dtype == torch.float32:
            calls["fp32"] += 1
            time.sleep(0.002 if calls["fp32"] % 7 else 0.05)  # every 7th fp32 step hits a spike
        else:
            time.sleep(0.003)  # 1.5x fp32: far from CLEARLY_SLOWER, so a loaded machine's late wake-up keeps to rounds
    monkeypatch.setattr(precision, "_step", fake_step)
    m = precision.measure(tiny_model_dir, "cpu", repeats=3)
    assert m["steps"] >= 3 * 5, "a millisecond step is repeated until a sample lasts MIN_SAMPLE_S"
    assert 0.55 < m["speedup"] < 0.8, m   # 2 ms against 3 ms: bf16 at two thirds the speed, spikes or not


def test_verdicts_of_deleted_model_folders_are_dropped_on_the_next_write(fake_speed, tmp_path):
    """Every test's tiny model lives in a temporary folder: its verdict must not stay in the machine's file."""
    fake_speed(0.5)
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    precision.decide(str(folder), "cpu", "auto", threads=1)
    precision.decide("some-model", "cpu", "auto", threads=1)
    assert {e["model"] for e in precision.cached().values()} == {str(folder), "some-model"}
    folder.rmdir()
    precision.decide("other-model", "cpu", "auto", threads=1)
    assert {e["model"] for e in precision.cached().values()} == {"some-model", "other-model"}


def test_two_cpus_behind_one_model_name_get_their_own_verdicts(fake_speed, monkeypatch):
    """A hypervisor names an AMX Xeon and one without AMX alike: family, model and bf16 flags tell them apart."""
    calls = fake_speed(2.0)
    monkeypatch.setattr(precision, "cpu_signature", lambda: "family 6 model 167 avx512_bf16 amx_bf16 amx_tile")
    assert precision.decide("m", "cpu", "auto", threads=2).precision == "bf16"
    monkeypatch.setattr(precision, "cpu_signature", lambda: "family 6 model 207")
    fake_speed(0.4)
    assert precision.decide("m", "cpu", "auto", threads=2).precision == "fp32" and len(calls) == 2
    assert "model" in precision.cpu_signature() or precision.cpu_signature() == ""
