"""LoPA as its official code builds it: a frozen sentence encoder's normalised summary of each input, two
Dropout-Linear-tanh-Linear heads with the official initialisation, Z_S ~ N(0, 1), exact trainable counts."""
from __future__ import annotations

import math

import pytest
import torch

from lopt_core.methods import encoders
from lopt_core.lm import engine, models
from lopt_core.config import ConfigError, RunConfig
from lopt_core.methods import METHODS, PromptContext, count_trainable
from lopt_core.lm.models import load_model
from lopt_core.training.loop import train

LoPA = METHODS["lopa"]
D = 48
TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]


def ctx(seed=0):
    return PromptContext(D, torch.randn(100, D, generator=torch.Generator().manual_seed(0)), None, seed)


def build(n=6, r=2, seed=0, **knobs):
    return LoPA.from_config(RunConfig(method="lopa", n=n, r=r, method_knobs=knobs), ctx(seed))


def test_minilm_gives_unit_norm_384_wide_deterministic_summaries():
    a = encoders.encode_texts("minilm", TEXTS)
    assert a.shape == (3, 384) and a.dtype == torch.float32
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    assert torch.equal(a, encoders.encode_texts("minilm", TEXTS))
    sim = a @ a.T   # the real all-MiniLM-L6-v2: paraphrases close, unrelated sentences far
    assert sim[0, 1] > 0.7 and abs(sim[0, 2]) < 0.2
    # padding does not change a summary: mean pooling over real tokens only
    torch.testing.assert_close(encoders.encode_texts("minilm", TEXTS[:1])[0], a[0], atol=1e-5, rtol=0)


def test_encoder_names_and_widths_come_from_configs():
    assert encoders.canonical("sentence-transformers/all-MiniLM-L6-v2") == "minilm"
    assert encoders.spec("minilm", D) == encoders.EncoderSpec("minilm", 384, 0.1, 0.02)
    assert encoders.spec("base-mean", D) == encoders.EncoderSpec("base-mean", D, 0.1, 0.02)
    assert encoders.minilm_folder().joinpath("model.safetensors").exists()


def test_summary_of_base_model_ids(tiny_model_dir):
    lm = load_model(tiny_model_dir, "cpu")
    ids, mask, _ = engine.collate(engine.encode(lm.tokenizer, TEXTS, 64), lm.tokenizer.pad_token_id, lm.device)
    torch.testing.assert_close(encoders.summary("minilm", lm, ids, mask), encoders.encode_texts("minilm", TEXTS),
                               atol=1e-5, rtol=0)
    assert torch.equal(encoders.summary("base-mean", lm, ids, mask), encoders.input_summary(lm, ids, mask))
    m = LoPA.from_config(RunConfig(method="lopa", n=3, r=2), PromptContext(lm.d, lm.embeddings, lm.tokenizer, 0))
    assert m.encoder == "minilm" and encoders.summary(m.encoder, lm, ids, mask).shape == (3, 384)


def test_two_sentences_give_two_prompts():
    m = build().eval()
    P = m(encoders.encode_texts("minilm", TEXTS[:2]))
    assert P.shape == (2, 6, D) and (P[0] - P[1]).abs().max() > 0


def test_heads_and_init_are_the_official_ones():
    n, r = 20, 3
    m = build(n=n, r=r)
    assert (m.h, m.encoder) == (384, "minilm")
    for head, out in ((m.u_head, n * r), (m.v_head, D * r)):
        drop, dense, act, proj = head
        assert isinstance(drop, torch.nn.Dropout) and drop.p == 0.1 and isinstance(act, torch.nn.Tanh)
        assert (dense.in_features, dense.out_features, proj.in_features, proj.out_features) == (384, 384, 384, out)
        assert dense.weight.std().item() == pytest.approx(0.02, rel=0.05) and abs(dense.weight.mean()) < 2e-3
        assert proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.equal(proj.bias, torch.zeros(out))
        assert dense.bias.abs().max() <= 1 / math.sqrt(384) and dense.bias.std() > 0.5 / math.sqrt(3 * 384)
    z = m.Z_S.detach()  # PEFT's PromptTuningInit.RANDOM: nn.Embedding's N(0, 1)
    assert z.shape == (n, D) and z.std().item() == pytest.approx(1.0, rel=0.1) and abs(z.mean()) < 0.1
    # at the start the gate is about one half everywhere, as in the official code
    gate = m.eval()(encoders.encode_texts("minilm", TEXTS)) / z
    assert (gate - 0.5).abs().max() < 0.01
    # seeded: the same run seed rebuilds the same method, another seed does not
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), build(n=n, r=r).state_dict().values()))
    assert not torch.equal(LoPA.from_config(RunConfig(method="lopa", n=n, r=r), ctx(1)).Z_S, m.Z_S)


def test_knobs_dropout_encoder_and_init():
    assert build(lopa_dropout=0.3).u_head[0].p == 0.3
    m = build(lopa_encoder="base-mean")
    assert (m.h, m.encoder) == (D, "base-mean") and m.u_head[1].in_features == D
    vocab = LoPA.from_config(RunConfig(method="lopa", n=4, r=2, init="vocab"), ctx())
    E = ctx().embeddings  # LoPT Lab's init when asked for: rows copied from the vocabulary
    assert all((E == row).all(1).any() for row in vocab.Z_S.detach())
    with pytest.raises(ConfigError, match="lopa_dropout"):
        RunConfig(method="lopa", method_knobs={"lopa_dropout": 1.5}).validate()


@pytest.mark.parametrize("encoder", ["minilm", "base-mean"])
def test_trainable_count_equals_the_formula(encoder, tiny_model_dir):
    n, r = 5, 3
    m = build(n=n, r=r, lopa_encoder=encoder)
    counted = sum(p.numel() for p in m.parameters() if p.requires_grad)
    h = 384 if encoder == "minilm" else D
    assert m.num_trainable() == counted == LoPA.formula(n, r, D, lopa_encoder=encoder) \
        == n * D + 2 * h * (h + 1) + (h + 1) * r * (n + D)
    cfg = RunConfig(method="lopa", model=tiny_model_dir, n=n, r=r, method_knobs={"lopa_encoder": encoder})
    lm = load_model(tiny_model_dir, "cpu")
    built = LoPA.from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, 0))
    assert count_trainable(cfg) == built.num_trainable()


@pytest.mark.parametrize("encoder", ["minilm", "base-mean"])
def test_two_training_steps_on_the_tiny_model(tiny_model_dir, sentiment_csv, encoder, monkeypatch):
    calls = []
    real = encoders.summary
    monkeypatch.setattr(encoders, "summary", lambda name, *a: calls.append(name) or real(name, *a))
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(sentiment_csv), method="lopa", n=4, r=2,
                    steps=2, batch_size=4, eval_every=0, eval_size=0, device="cpu",
                    method_knobs={"lopa_encoder": encoder})
    res = train(cfg, save=False)
    assert res["state"] == "done" and res["steps_done"] == 2 and 0 <= res["accuracy"] <= 1
    assert res["trainable_params"] == count_trainable(cfg)
    assert calls and set(calls) == {encoder}, "the engine reads the encoder the method names"


def test_an_unknown_encoder_offline_is_a_clear_config_error(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
    encoders.spec.cache_clear()
    with pytest.raises(ConfigError, match="'nobody/no-such-encoder' is not available.*offline you can use: minilm"):
        build(lopa_encoder="nobody/no-such-encoder")
    with pytest.raises(ConfigError, match="not available"):
        LoPA.formula(4, 2, D, lopa_encoder="nobody/no-such-encoder")
    with pytest.raises(ConfigError, match="must name a sentence encoder"):
        build(lopa_encoder=" ")


def test_a_lopa_saved_before_the_official_heads_is_refused():
    old = {"Z_S": torch.zeros(6, D), "u_head.0.weight": torch.zeros(16, D), "u_head.0.bias": torch.zeros(16)}
    with pytest.raises(ConfigError, match="train it again"):
        build().load_state_dict(old)
