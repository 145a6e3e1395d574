"""Batched multi-prompt training is exact: a configuration trained inside a group of K gives the loss curve and
final prompt it gives when trained alone (tiny random models, different methods and different n)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lopt_core.lm import engine, multi_prompt
from lopt_core.config import RunConfig
from lopt_core.training.group import batchable, group_key
from lopt_core.training.loop import train_group
from lopt_core.methods import get_method
from lopt_core.lm.models import load_model
from lopt_core.training.loop import train

MIXED = [("prompt_tuning", 4, 1), ("lopt1", 6, 2), ("ulpt", 3, 2), ("lopt2", 5, 3)]


def cfg(model_dir, csv, method, n, r, **kw):
    # fp32 unless a test asks for bf16: "auto" follows this machine's measurement, and the tolerances differ
    base = dict(model=model_dir, task="file", data_file=str(csv), method=method, n=n, r=r, steps=6, batch_size=4,
                eval_every=3, eval_size=0, lr=0.05, device="cpu", precision="fp32")
    base.update(kw)
    return RunConfig(**base)


def solo(c):
    losses = []
    res = train(c, on_event=lambda ev: ev["type"] == "step" and losses.append(ev["loss"]))
    return losses, res


# the same precision alone and in the group: fp32 to float rounding; bf16 (frozen weights in bf16) to its own
CURVE_TOL = {"fp32": 2e-5, "bf16": 5e-2}   # bf16: the first step within 5e-3, later ones drift with the prompt
# final prompts: fp32 elementwise; bf16 as a relative distance (Adam's normalised steps turn bf16's rounding of a
# near-zero gradient into a full step of either sign, so single entries may differ by ~lr after six steps)
PROMPT_TOL = {"fp32": 1e-4, "bf16": 0.25}  # ULPT's Z trains at 30x the lr: the widest drift


@pytest.mark.parametrize("per_pass,precision", [(4, "fp32"), (1, "fp32"), (4, "bf16")])
def test_group_matches_solo_runs(tiny_model_dir, sentiment_csv, per_pass, precision, monkeypatch):
    cfgs = [cfg(tiny_model_dir, sentiment_csv, m, n, r, precision=precision) for m, n, r in MIXED]
    curves, passes = {}, []
    real = multi_prompt.class_logits
    monkeypatch.setattr(multi_prompt, "class_logits", lambda lm, ids, mask, prompts, label_ids: passes.append(
        len(prompts)) or real(lm, ids, mask, prompts, label_ids))
    monkeypatch.setattr(engine, "PACK", "always")  # the tiny model's cost model would pad its equal-length rows
    results = train_group(cfgs, on_event=lambda rid, ev: ev["type"] == "step" and curves.setdefault(rid, []).append(
        ev["loss"]), prompts_per_pass=per_pass)
    assert passes == [per_pass] * (6 * 4 // per_pass), "every step ran the K-prompt pass"
    monkeypatch.setattr(engine, "PACK", "auto")
    assert [r["state"] for r in results] == ["done"] * 4
    for c, res in zip(cfgs, results):
        alone, ref = solo(c)
        got = curves[res["run_id"]]
        assert len(got) == len(alone) == 6
        assert got == pytest.approx(alone, abs=CURVE_TOL[precision]), f"{c.method} n={c.n}: curve differs"
        assert got[0] == pytest.approx(alone[0], abs=5e-3 if precision == "bf16" else 2e-5), "the same first loss"
        P, Q = (load_file(f"{x['artifact_dir']}/prompt.safetensors")["prompt"] for x in (res, ref))
        assert P.shape == (c.n, 32), c.method
        if precision == "fp32":
            assert torch.allclose(P, Q, atol=PROMPT_TOL[precision]), f"{c.method}: final prompt differs"
        else:
            assert (P - Q).norm() / Q.norm() < PROMPT_TOL[precision], f"{c.method}: final prompt differs"
        assert res["precision"] == ref["precision"] == precision
        flips = 1 if precision == "fp32" else 2
        assert res["accuracy"] == pytest.approx(ref["accuracy"], abs=flips / 24 + 1e-9)  # at most `flips` examples
        assert res["trainable_params"] == ref["trainable_params"] and res["group_size"] == 4


def test_multi_prompt_logits_equal_concatenation_on_gpt2(tiny_gpt2_dir, smol_tokenizer):
    """Absolute position embeddings (GPT-2) too: each row equals the prompt concatenated before each example."""
    lm = load_model(tiny_gpt2_dir, "cpu")
    texts = ["a short one", "a somewhat longer example sentence here", "mid length text"]
    ids, mask, lengths = engine.collate(engine.encode(lm.tokenizer, texts, 64), lm.tokenizer.pad_token_id, "cpu")
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randn(n, lm.d, generator=g) * 0.5 for n in (2, 5, 3)]
    label_ids = engine.label_token_ids(lm.tokenizer, [" bad", " good"])
    got = multi_prompt.class_logits(lm, ids, mask, prompts, label_ids)  # (K, B, C)
    for k, P in enumerate(prompts):
        method = get_method("prompt_tuning")(P.shape[0], lm.d, P)
        ref = engine.class_logits(lm, ids, mask, lengths, label_ids, method, shared_prefix=False)  # plain concat
        assert torch.allclose(got[k], ref, atol=1e-4), (k, got[k], ref)


def test_a_failing_or_stopped_member_leaves_the_others_alone(tiny_model_dir, sentiment_csv):
    cfgs = [cfg(tiny_model_dir, sentiment_csv, m, n, r, eval_every=0) for m, n, r in MIXED[:3]]
    cfgs[1].lr = 10.0  # blows up: LoPT-1 at lr 10
    stop_after = {}
    ids = ["a-run", "b-run", "c-run"]

    def should_stop(rid):
        return rid == "c-run" and stop_after.get("steps", 0) >= 2

    order = []

    def on_event(rid, ev):
        if rid == "a-run" and ev["type"] == "step":
            stop_after["steps"] = ev["step"]
            order.append(("a-step", ev["step"]))
        if ev["type"] == "end":
            order.append((rid, "end"))
    a, b, c = train_group(cfgs, ids, on_event=on_event, should_stop=should_stop, save=False)
    assert a["state"] == "done" and a["steps_done"] == 6 and a["accuracy"] is not None
    assert c["state"] == "stopped" and c["steps_done"] == 2 and c["accuracy"] is not None  # as a solo run
    assert c["evaluated_after_stop"] is True
    assert order.index(("c-run", "end")) < order.index(("a-step", 3)), "a stopped member ends at once"
    if b["state"] == "failed":  # lr 10 may or may not diverge on a tiny model; when it does, only b fails
        assert "loss became" in b["error"] and b["accuracy"] is None
    alone, _ = solo(cfgs[0])
    assert a["final_loss"] == pytest.approx(alone[-1], abs=2e-5)


def test_group_key_and_batchable(tiny_model_dir, sentiment_csv):
    a = cfg(tiny_model_dir, sentiment_csv, "lopt1", 6, 2)
    b = cfg(tiny_model_dir, sentiment_csv, "ulpt", 20, 5, lr=0.01, eval_every=0)
    assert group_key(a) == group_key(b), "method, n, r, lr and eval cadence may differ inside a group"
    assert group_key(a) != group_key(cfg(tiny_model_dir, sentiment_csv, "lopt1", 6, 2, seed=1))
    assert group_key(a) != group_key(cfg(tiny_model_dir, sentiment_csv, "lopt1", 6, 2, batch_size=8))
    assert batchable(a) and not batchable(cfg(tiny_model_dir, sentiment_csv, "lopa", 4, 2))
    assert not batchable(cfg(tiny_model_dir, sentiment_csv, "lora", 4, 2))


def test_long_rows_fall_back_to_each_prompts_solo_path(tiny_model_dir, sentiment_csv, monkeypatch):
    """Where packing does not pay (forced here), a group trains each prompt by the solo path: still exact."""
    monkeypatch.setattr(engine, "PACK", "never")
    cfgs = [cfg(tiny_model_dir, sentiment_csv, m, n, r, eval_every=0) for m, n, r in MIXED[:3]]
    curves = {}
    results = train_group(cfgs, on_event=lambda rid, ev: ev["type"] == "step" and curves.setdefault(rid, []).append(
        ev["loss"]), save=False)
    for c, res in zip(cfgs, results):
        alone = []
        train(c, on_event=lambda ev: ev["type"] == "step" and alone.append(ev["loss"]), save=False)
        assert curves[res["run_id"]] == pytest.approx(alone, abs=1e-6)


def test_packing_choice_guards_only_against_long_rows():
    from types import SimpleNamespace
    from transformers import LlamaConfig
    smol = LlamaConfig(hidden_size=576, intermediate_size=1536)  # SmolLM2-135M's widths: no weights needed
    lm = SimpleNamespace(model=SimpleNamespace(config=smol), d=576)
    same = torch.ones(8, 75, dtype=torch.long)               # eight sentences of SST-2's longest length
    assert multi_prompt.pays(lm, same, 20), "short texts always pack"
    long = torch.ones(8, 400, dtype=torch.long)               # eight BoolQ-length passages
    assert not multi_prompt.pays(lm, long, 20)


def test_prompts_per_pass_follow_the_precision_measured_for_them():
    """bf16 matrix units gain from more prompts per pass where fp32 does not (bench/sweep-passes-*.txt)."""
    from types import SimpleNamespace

    import torch
    from lopt_core.training.group import default_prompts_per_pass
    lm = lambda dev, p: SimpleNamespace(device=torch.device(dev), precision=p)  # noqa: E731
    assert default_prompts_per_pass(lm("cpu", "fp32"), 13) == 2
    assert default_prompts_per_pass(lm("cpu", "bf16"), 13) == 8
    assert default_prompts_per_pass(lm("cpu", "bf16"), 3) == 3
    assert default_prompts_per_pass(lm("cuda", "bf16"), 13) == 13
