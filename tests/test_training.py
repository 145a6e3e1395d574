"""The training loop on tiny random models: frozen base, reproducibility, artifacts, stop, events, baselines."""
from __future__ import annotations

import json

import pytest
import torch

from lopt_core.training import artifacts
from lopt_core.lm import engine
from lopt_core.config import ConfigError, RunConfig
from lopt_core.lm.models import load_model
from lopt_core.training.runs import evaluate_run, run_and_record
from lopt_core.store.sqlite import Store
from lopt_core.training.loop import train


def cfg_for(model_dir, csv, **kw):
    base = dict(model=model_dir, task="file", data_file=str(csv), n=4, r=2, steps=6, batch_size=4,
                eval_every=3, eval_size=0, lr=0.05, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def test_base_model_stays_bit_identical(tiny_model_dir, sentiment_csv):
    lm = load_model(tiny_model_dir, "cpu")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    for method in ("prompt_tuning", "lopt1", "lopt2", "ulpt", "lopa", "lora", "prefix"):
        train(cfg_for(tiny_model_dir, sentiment_csv, method=method, steps=3, eval_every=0), lm=lm, save=False)
        after = lm.model.state_dict()
        assert after.keys() == before.keys(), f"{method} left modules in the base model"
        for k, v in before.items():
            assert torch.equal(v, after[k]), f"{method} changed base weight {k}"
        assert not any(p.requires_grad for p in lm.model.parameters())


def test_same_config_and_seed_give_the_same_loss_curve(tiny_model_dir, sentiment_csv):
    curves = []
    for _ in range(2):
        losses = []
        train(cfg_for(tiny_model_dir, sentiment_csv, method="lopt1"),
              on_event=lambda ev: ev["type"] == "step" and losses.append(ev["loss"]), save=False)
        curves.append(losses)
    assert len(curves[0]) == 6 and curves[0] == curves[1]
    other = []
    train(cfg_for(tiny_model_dir, sentiment_csv, method="lopt1", seed=1),
          on_event=lambda ev: ev["type"] == "step" and other.append(ev["loss"]), save=False)
    assert other != curves[0]


def test_training_lowers_the_loss(tiny_model_dir, tmp_path):
    """On a 3:1 class imbalance even a random tiny model can be steered: the prompt must learn the prior."""
    rows = ["text,label"] + [f"example number {i},{'yes' if i % 4 else 'no'}" for i in range(80)]
    csv = tmp_path / "prior.csv"
    csv.write_text("\n".join(rows) + "\n")
    cfg = cfg_for(tiny_model_dir, csv, method="prompt_tuning", n=8, steps=40, batch_size=8, lr=0.3, eval_every=0)
    losses = []
    train(cfg, on_event=lambda ev: ev["type"] == "step" and losses.append(ev["loss"]), save=False)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.05, losses


@pytest.mark.parametrize("method", ["prompt_tuning", "lopt2", "ulpt", "lopa", "lora", "prefix"])
def test_artifact_reload_reproduces_accuracy_exactly(tiny_model_dir, sentiment_csv, method):
    store = Store()
    res = run_and_record(cfg_for(tiny_model_dir, sentiment_csv, method=method), store=store)
    folder = res["artifact_dir"]
    saved = json.loads((artifacts.Path(folder) / "run.json").read_text())
    assert saved["result"]["accuracy"] == res["accuracy"] and saved["config"]["method"] == method
    again = evaluate_run(res["run_id"], store=store)
    assert again["accuracy"] == res["accuracy"]
    row = store.get(res["run_id"])
    assert row["state"] == "done" and row["trainable_params"] == res["trainable_params"]
    assert [m["step"] for m in store.metrics(res["run_id"], "loss")] == list(range(1, 7))


def test_prompt_artifact_holds_factors_and_materialised_prompt(tiny_model_dir, sentiment_csv):
    res = train(cfg_for(tiny_model_dir, sentiment_csv, method="lopt1"))
    from safetensors.torch import load_file
    t = load_file(f"{res['artifact_dir']}/prompt.safetensors")
    assert set(t) == {"U", "V", "prompt"}
    assert torch.allclose(t["U"] @ t["V"], t["prompt"], atol=1e-6)
    assert t["prompt"].shape == (4, 32)


def test_stop_flag_is_honoured_within_one_step(tiny_model_dir, sentiment_csv):
    steps = []
    res = train(cfg_for(tiny_model_dir, sentiment_csv, steps=50, eval_every=0),
                on_event=lambda ev: ev["type"] == "step" and steps.append(ev["step"]),
                should_stop=lambda: len(steps) >= 3)
    assert res["state"] == "stopped" and res["steps_done"] == 3 and steps == [1, 2, 3]
    assert res["accuracy"] is not None and res["evaluated_after_stop"], "a stopped run is scored on what it trained"
    assert (artifacts.Path(res["artifact_dir"]) / "prompt.safetensors").exists(), "a stop keeps what was trained"


def test_events_carry_what_a_ui_draws(tiny_model_dir, sentiment_csv):
    events = []
    train(cfg_for(tiny_model_dir, sentiment_csv, steps=10, warmup=0.3, eval_every=5), on_event=events.append,
          save=False)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert [e["step"] for e in events if e["type"] == "eval"] == [5, 10]
    step = next(e for e in events if e["type"] == "step")
    assert {"loss", "lr", "examples_per_s", "eta_s"} <= set(step)
    lrs = [e["lr"] for e in events if e["type"] == "step"]
    assert lrs[0] < max(lrs) and lrs[-1] < max(lrs), "warm-up then decay"


def test_peft_baseline_counts_match_their_formulas(tiny_model_dir, sentiment_csv):
    lm = load_model(tiny_model_dir, "cpu")
    c = lm.model.config
    kv = c.hidden_size // c.num_attention_heads * c.num_key_value_heads
    lora = train(cfg_for(tiny_model_dir, sentiment_csv, method="lora", r=2, steps=1, eval_every=0), save=False)
    # LoRA on q_proj (d -> d) and v_proj (d -> kv) in every layer: r (in + out) each
    assert lora["trainable_params"] == c.num_hidden_layers * 2 * ((32 + 32) + (32 + kv))
    prefix = train(cfg_for(tiny_model_dir, sentiment_csv, method="prefix", n=4, steps=1, eval_every=0), save=False)
    assert prefix["trainable_params"] == 4 * c.num_hidden_layers * 2 * kv


def test_gpt2_architecture_trains_too(tiny_gpt2_dir, sentiment_csv):
    res = train(cfg_for(tiny_gpt2_dir, sentiment_csv, method="ulpt", steps=3), save=False)
    assert res["trainable_params"] == 4 * 2 + 2 * 32 and 0 <= res["accuracy"] <= 1


def test_a_crash_marks_only_that_run_failed(tiny_model_dir, sentiment_csv):
    store = Store()
    ok = run_and_record(cfg_for(tiny_model_dir, sentiment_csv, steps=2), store=store)
    with pytest.raises(FloatingPointError):
        _explode(tiny_model_dir, sentiment_csv, store)
    rows = {r["run_id"]: r for r in store.list()}
    failed = [r for r in rows.values() if r["state"] == "failed"]
    assert len(failed) == 1 and "FloatingPointError" in failed[0]["error"]
    assert rows[ok["run_id"]]["state"] == "done" and rows[ok["run_id"]]["accuracy"] == ok["accuracy"]


def _explode(model_dir, csv, store):
    """A run that raises mid-training (as a NaN loss would)."""
    def poison(ev):
        if ev["type"] == "step" and ev["step"] == 1:
            raise FloatingPointError("loss became nan at step 2; lower the learning rate")
    run_and_record(cfg_for(model_dir, csv, steps=3), on_event=poison, store=store)


@pytest.mark.parametrize("field,value,msg", [
    ("n", 0, "n must be between"), ("r", -1, "r must be between"), ("steps", 0, "steps must be between"),
    ("lr", -0.1, "lr must be a positive"), ("method", "nope", "unknown method"), ("method_knobs", {"activation": "tanh"}, "activation"),
    ("task", "file", "needs data_file"), ("batch_size", 2.5, "batch_size must be an integer"),
])
def test_bad_config_gets_a_clear_error(field, value, msg):
    with pytest.raises(ConfigError, match=msg):
        RunConfig(**{field: value}).validate()


def test_label_words_that_share_a_first_token_are_rejected(smol_tokenizer):
    with pytest.raises(engine.EngineError, match="start with the same token"):
        engine.label_token_ids(smol_tokenizer, [" 1", " 2"])


@pytest.mark.parametrize("method", ["lopt1", "lopa", "lora"])
def test_seq2seq_t5_trains_and_generates(tiny_t5_dir, sentiment_csv, method):
    lm = load_model(tiny_t5_dir, "cpu")
    assert lm.is_seq2seq
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    res = run_and_record(cfg_for(tiny_t5_dir, sentiment_csv, method=method, steps=3), store=Store(), lm=lm)
    assert res["state"] == "done" and 0 <= res["accuracy"] <= 1
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in before.items())
    if method != "lora":
        _, m = artifacts.load_method(res["artifact_dir"], lm)
        text = engine.generate(lm, "this film is great", method=m, max_new_tokens=4)
        assert isinstance(text, str)


def test_a_seed_too_large_for_the_generators_is_named():
    with pytest.raises(ConfigError, match="seed must be at most 4,294,967,295"):
        RunConfig(seed=2**70).validate()
