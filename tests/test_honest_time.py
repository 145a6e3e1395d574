"""Honest time: estimates come from this machine (its runs, else its calibration, never another CPU's atlas),
and a run slowed by load says so while it runs."""
from __future__ import annotations

import time

import pytest

from lopt_core.config import RunConfig
from lopt_core.jobs.manager import run_progress
from lopt_core.lm import precision
from lopt_core.store.sqlite import Store
from lopt_core.sweeps import estimate, results_file
from lopt_core.training import loop, objectives, runs
from lopt_core.ui.train import progress_html


def cfg_for(model_dir, csv, **kw):
    base = dict(model=model_dir, task="file", data_file=str(csv), n=4, r=2, steps=10, batch_size=4,
                eval_every=0, eval_size=8, lr=0.05, device="cpu", precision="fp32")
    return RunConfig(**(base | kw))


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "_cache_path", lambda: tmp_path / "precision.json")
    estimate._PACE_CACHE.clear()


BASE_S = 0.3  # every step's own delay: a tiny model's millisecond steps, stalled by a busy CI host, would make
# the pace a coin toss; against 0.3 s a stall has to average 0.15 s a step to look like a slow-down


def _delayed(delay_s: float):
    """Every training step's batch building delayed by delay_s: a slow-down injected into the real loop's step
    (inside the time a step is measured by), for solo runs and batched groups alike."""
    real = objectives.Objective.batch

    def batch(*a, **kw):
        time.sleep(delay_s)
        return real(*a, **kw)
    return real, batch


def _watch_run(store, cfg, lm, delay_s: float) -> list[dict]:
    """Train cfg in this process with its steps delayed, reading the page's progress the way a poll does after
    every step from the fourth on."""
    run_id = loop.new_run_id(cfg)
    store.create(run_id, cfg, state="running")
    seen = []
    real, objectives.Objective.batch = _delayed(delay_s)
    try:
        runs.run_and_record(cfg, store=store, run_id=run_id, lm=lm,
                            on_event=lambda ev: ev["type"] == "step" and ev["step"] >= 4 and
                            seen.append(run_progress(store, run_id)))
    finally:
        objectives.Objective.batch = real
    return seen


def _watch_group(store, cfgs, lm, delay_s: float) -> list:
    """Train cfgs as one batched group with its steps delayed, reading the Sweep tab's pace after each step."""
    ids = [f"{loop.new_run_id(c)}-{i}" for i, c in enumerate(cfgs)]
    for rid, c in zip(ids, cfgs):
        store.create(rid, c, state="running")
    seen = []

    def on_event(rid, ev):
        if rid == ids[0] and ev["type"] == "step" and ev["step"] >= 4:
            seen.append(estimate.group_pace(store, [store.get(r) for r in ids]))
    real, objectives.Objective.batch = _delayed(delay_s)
    try:
        runs.record_group(cfgs, ids, store, lm, on_event=on_event)
    finally:
        objectives.Objective.batch = real
    return seen


def test_a_run_slowed_by_load_says_so_and_a_normal_one_does_not(tiny_model_dir, sentiment_csv, tmp_path):
    import torch
    from lopt_core.lm.models import load_model
    torch.set_num_threads(1)  # two threads' spin-waits on a loaded 2-core host stall a millisecond step for seconds
    store = Store(tmp_path / "runs.sqlite")
    lm = load_model(tiny_model_dir, "cpu")
    _watch_run(store, cfg_for(tiny_model_dir, sentiment_csv, seed=0), lm, BASE_S)  # this machine's pace
    assert estimate.measured_speed(store, tiny_model_dir, solo=True).runs == 1

    real_eval = loop.evaluate

    def slow_eval(*a, **kw):  # a periodic evaluation between two steps: the wall clock jumps, the steps do not slow
        time.sleep(8 * BASE_S)
        return real_eval(*a, **kw)
    loop.evaluate = slow_eval
    try:
        normal = _watch_run(store, cfg_for(tiny_model_dir, sentiment_csv, seed=1, eval_every=5), lm, BASE_S)
    finally:
        loop.evaluate = real_eval
    assert normal and not any(p["slower"] for p in normal), "a run at the machine's own pace is not called slow, " \
        "not even just after an evaluation"
    assert "slower" not in progress_html(normal[-1])

    estimate._PACE_CACHE.clear()
    slowed = _watch_run(store, cfg_for(tiny_model_dir, sentiment_csv, seed=2), lm, 5 * BASE_S)
    late = [p for p in slowed if p["step"] >= 5]
    assert late and all(p["slower"] and p["slower"] >= estimate.SLOW for p in late), \
        [p["slower"] for p in slowed]
    html = progress_html(late[-1])
    assert "slower than this machine measured before" in html and "host is busy" in html


def test_a_sweep_slowed_by_load_says_so_and_a_normal_one_does_not(tiny_model_dir, sentiment_csv, tmp_path):
    import torch
    from lopt_core.lm.models import load_model
    from lopt_core.ui.sweep import progress_html as sweep_progress
    torch.set_num_threads(1)
    store = Store(tmp_path / "runs.sqlite")
    lm = load_model(tiny_model_dir, "cpu")
    group = lambda seed: [cfg_for(tiny_model_dir, sentiment_csv, method=m, seed=seed)  # noqa: E731
                          for m in ("prompt_tuning", "lopt1")]
    _watch_group(store, group(0), lm, BASE_S)  # this machine's batched pace
    estimate._PACE_CACHE.clear()
    assert not any(_watch_group(store, group(1), lm, BASE_S)), "a group at the machine's own pace is not slow"
    estimate._PACE_CACHE.clear()
    slowed = _watch_group(store, group(2), lm, 5 * BASE_S)
    assert all(x and x >= estimate.SLOW for x in slowed[1:]), slowed
    sweep = {"sweep_id": "s", "state": "running", "stop_requested": 0}
    assert "slower than this machine measured before" in sweep_progress([sweep], [], slowed[-1])


def test_a_new_machine_estimates_from_its_own_calibration_not_another_cpus_atlas(monkeypatch):
    cfgs = [RunConfig(model="smollm2-135m", task="sst2", method="lopt1", n=20, r=r, steps=150, eval_every=0,
                      eval_size=0) for r in (1, 2, 5)]
    monkeypatch.setattr(precision, "cpu_model", lambda: "A CPU no atlas file was made on")
    assert estimate.sweep_seconds(cfgs, store=None).batched_s is None, \
        "with no run, no calibration and no atlas from this CPU, the time is unknown, not borrowed"

    key = precision.cache_key("smollm2-135m", precision.torch.get_num_threads())
    precision._remember(key, {"fp32_s": 0.3, "bf16_s": 6.0, "speedup": 0.05, "precision": "fp32", "steps": 2,
                              "shape": [2, 24], "step_s": 1.0, "step_shape": [8, 50], "calibrated": True,
                              "cpu": precision.cpu_model(), "threads": 2})
    est = estimate.sweep_seconds(cfgs, store=None)
    assert "calibration of smollm2-135m on this machine" in est.basis
    per_example = 1.0 / 8 * estimate.CALIBRATION_OVERHEAD
    assert est.batched_s == pytest.approx(estimate.STARTUP_S + 872 * per_example / 3 +
                                          3 * (150 * 8 * per_example + 872 * per_example / 3), rel=1e-6)


def test_the_atlas_times_only_a_machine_with_its_cpu():
    docs = results_file.atlas()
    if not docs:
        pytest.skip("no atlas file in this build")
    cpu = docs[0]["machine"]["cpu"]
    model = docs[0]["runs"][0]["config"]["model"]
    import unittest.mock as mock
    with mock.patch.object(precision, "cpu_model", lambda: cpu):
        assert estimate.atlas_speed(model) is not None and cpu in estimate.atlas_speed(model).basis
    with mock.patch.object(precision, "cpu_model", lambda: "some other CPU"):
        assert estimate.atlas_speed(model) is None


def test_an_estimate_times_the_precision_the_sweep_will_run_in(monkeypatch):
    """bf16 runs ~2x fp32 on a CPU with AMX: a sweep's estimate comes from its own precision's speed, from the
    calibration (which times both at a run's shape) and from finished runs alike."""
    monkeypatch.setattr(precision, "cpu_model", lambda: "A CPU with bf16 units")
    key = precision.cache_key("smollm2-135m", precision.torch.get_num_threads())
    precision._remember(key, {"fp32_s": 1.0, "bf16_s": 0.5, "speedup": 2.0, "precision": "bf16", "steps": 3,
                              "shape": [8, 50], "step_s": 0.5, "step_shape": [8, 50], "calibrated": True,
                              "fp32_attention": False, "cpu": precision.cpu_model(), "threads": 2})
    cfg = lambda p: RunConfig(model="smollm2-135m", task="sst2", method="lopt1", n=20, r=2, steps=150,  # noqa: E731
                              eval_every=0, eval_size=0, precision=p)
    auto, bf16, fp32 = (estimate.sweep_seconds([cfg(p)], store=None) for p in ("auto", "bf16", "fp32"))
    assert auto.batched_s == pytest.approx(bf16.batched_s) and "bf16" in auto.basis
    assert fp32.batched_s - estimate.STARTUP_S == pytest.approx(2 * (bf16.batched_s - estimate.STARTUP_S))
    assert "fp32" in fp32.basis

    class FakeStore:  # finished runs: fp32 at 1 s per example, bf16 at 0.25 s
        def list(self, states=()):
            return [{"model": "smollm2-135m", "method": "lopt1", "config": {"batch_size": 8},
                     "result": {"steps_done": 10, "train_seconds": 80.0 * s, "precision": p, "device": "cpu"}}
                    for p, s in (("fp32", 1.0), ("fp32", 1.0), ("bf16", 0.25))]
    assert estimate.measured_speed(FakeStore(), "smollm2-135m", precision="bf16").train_s == pytest.approx(0.25)
    assert estimate.measured_speed(FakeStore(), "smollm2-135m", precision="fp32").train_s == pytest.approx(1.0)
    assert "1 run(s)" in estimate.sweep_seconds([cfg("bf16")], FakeStore()).basis
