"""Every method: shapes, trainable counts (tensors vs formula), init scale, frozen parts, gradients."""
from __future__ import annotations

import pytest
import torch

from lopt_core.config import ConfigError, RunConfig
from lopt_core.methods import METHODS, PromptContext, get_method

PROMPT_METHODS = ["prompt_tuning", "lopt1", "lopt2", "ulpt", "lopa"]
D = 48


@pytest.fixture
def ctx():
    g = torch.Generator().manual_seed(0)
    return PromptContext(d=D, embeddings=torch.randn(1000, D, generator=g) * 0.1, tokenizer=None, seed=3)


def build(name, ctx, n=7, r=3, **kw):
    return METHODS[name].from_config(RunConfig(method=name, n=n, r=r, method_knobs=kw), ctx)


def test_registry_has_all_methods():
    assert set(METHODS) == {"prompt_tuning", "lopt1", "lopt2", "ulpt", "lopa", "lora", "prefix"}
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        get_method("nope")


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_shape_and_count_match_formula(name, ctx):
    m = build(name, ctx)
    summary = torch.randn(4, getattr(m, "h", D))  # LoPA reads its sentence encoder's width h
    out = m(summary) if m.input_dependent else m()
    assert out.shape == ((4, 7, D) if m.input_dependent else (7, D))
    counted = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert m.num_trainable() == counted == type(m).formula(7, 3, D, hidden=16)


def test_formulas_are_the_papers():
    n, r, d = 20, 5, 576
    assert METHODS["prompt_tuning"].formula(n, r, d) == 11_520
    assert METHODS["lopt1"].formula(n, r, d) == 2_980
    assert METHODS["lopt2"].formula(n, r, d) == 5_760
    assert METHODS["ulpt"].formula(n, r, d) == n * r + 2 * d == 1_252


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_gradients_reach_every_trainable_tensor(name, ctx):
    m = build(name, ctx)
    out = m(torch.randn(2, getattr(m, "h", D))) if m.input_dependent else m()
    (out ** 2).sum().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"
    for bname, b in m.named_buffers():
        assert not b.requires_grad, f"{name}.{bname} must be frozen"


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_optimizer_groups_hold_every_trainable_tensor_once(name, ctx):
    m = build(name, ctx)
    groups = m.param_groups(0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a tensor appears in two optimiser groups"
    assert set(ids) == {id(p) for p in m.parameters() if p.requires_grad}
    assert groups[0]["lr"] == 0.01, "the first group trains at the run's learning rate (the one reported)"


def test_ulpt_trains_z_at_its_scaled_rate(ctx):
    m = build("ulpt", ctx)
    lr_of = {id(p): g["lr"] for g in m.param_groups(0.02) for p in g["params"]}
    assert lr_of[id(m.s)] == lr_of[id(m.b)] == 0.02
    assert lr_of[id(m.Z)] == pytest.approx(0.02 * type(m).z_lr_scale)


@pytest.mark.parametrize("name", ["lopt1", "lopt2", "ulpt"])
def test_low_rank_prompt_has_rank_at_most_r(name, ctx):
    m = build(name, ctx, n=12, r=3)
    # ULPT adds a rank-one bias b, so its rank is at most r + 1
    assert m.rank_of_prompt() <= (4 if name == "ulpt" else 3)


@pytest.mark.parametrize("name", ["prompt_tuning", "lopt1", "lopt2"])
def test_initial_rows_have_token_scale(name, ctx):
    m = build(name, ctx, n=10, r=4)
    rows = m().detach().norm(dim=-1).mean()
    assert rows == pytest.approx(ctx.token_norm, rel=0.35)


def test_frozen_random_tensors_rebuild_from_seed_and_are_not_saved(ctx):
    a, b = build("lopt2", ctx), build("lopt2", ctx)
    assert torch.equal(a.X0, b.X0) and "X0" not in a.state_dict()
    u1, u2 = build("ulpt", ctx), build("ulpt", ctx)
    assert torch.equal(u1.P, u2.P) and "P" not in u1.state_dict()
    other = METHODS["ulpt"].from_config(RunConfig(method="ulpt", n=7, r=3),
                                        PromptContext(D, ctx.embeddings, None, seed=4))
    assert not torch.equal(u1.P, other.P), "a different seed must give a different projection"


def test_ulpt_starts_with_unit_scale_and_shift_at_the_token_mean(ctx):
    offset = torch.linspace(-0.5, 0.5, D)                         # a token cloud centred away from 0
    ctx = PromptContext(D, ctx.embeddings + offset, None, ctx.seed)
    m = build("ulpt", ctx)
    assert torch.equal(m.s.data, torch.ones(D))
    assert torch.allclose(m.b.data, ctx.embeddings.mean(0))
    assert torch.allclose(m(), m.Z @ m.P + ctx.embeddings.mean(0))
    assert torch.equal(METHODS["ulpt"](7, D, 3).b.data, torch.zeros(D)), "without a shift b starts at 0 (the paper)"


@pytest.mark.parametrize("act", ["elu", "relu", "gelu"])
def test_lopt2_activation_is_selectable(act, ctx):
    m = build("lopt2", ctx, activation=act)
    fn = {"elu": torch.nn.functional.elu, "relu": torch.relu, "gelu": torch.nn.functional.gelu}[act]
    assert torch.allclose(m(), fn(m.X0 @ m.U) @ m.V)


def test_lopa_prompt_depends_on_input(ctx):
    m = build("lopa", ctx)
    s = torch.randn(2, m.h)
    out = m(s)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(AssertionError, match="summary"):
        m()


def test_prompt_tuning_init_from_text_uses_token_embeddings(smol_tokenizer):
    E = torch.randn(len(smol_tokenizer), 16)
    ctx = PromptContext(16, E, smol_tokenizer, 0)
    m = METHODS["prompt_tuning"].from_config(RunConfig(n=4, init="text", init_text="positive or negative"), ctx)
    ids = smol_tokenizer("positive or negative", add_special_tokens=False)["input_ids"]
    assert torch.equal(m().detach()[0], E[ids[0]])


@pytest.mark.parametrize("name,r", [("lopt1", 8), ("ulpt", 0)])
def test_bad_rank_is_rejected(name, r, ctx):
    with pytest.raises((AssertionError, ConfigError)):
        RunConfig(method=name, n=7, r=r).validate()
        build(name, ctx, n=7, r=r)


def test_prompt_tuning_vocab_init_never_samples_special_or_control_tokens(tiny_lm):
    """Issue 10: the first ids of SmolLM's vocabulary are special tokens (<|endoftext|>, <|im_start|>, ...);
    the vocabulary init must copy ordinary tokens only, from the ids its knob names."""
    from lopt_core.config import ConfigError, RunConfig
    from lopt_core.methods import PromptContext, get_method
    from lopt_core.methods.prompt_tuning import ordinary_ids
    tok = tiny_lm.tokenizer
    pool = ordinary_ids(tok, 0, 200)
    special = set(tok.all_special_ids)
    assert special & set(range(200)) and not special & set(pool.tolist())
    E = tiny_lm.embeddings.detach()
    for knob in ({"vocab_ids": "0-5000"}, {}):
        cfg = RunConfig(method="prompt_tuning", n=64, method_knobs=knob)
        P = get_method("prompt_tuning").from_config(cfg, PromptContext(tiny_lm.d, E, tok, 0))()
        ids = [int((E - row).abs().sum(-1).argmin()) for row in P.detach()]
        assert not special & set(ids)
        lo, hi = (0, 5000) if knob else (1000, 10000)  # the default: the measured best (issue 10)
        assert all(lo <= i < hi for i in ids)
    with pytest.raises(ConfigError, match="vocab_ids"):
        get_method("prompt_tuning").from_config(RunConfig(method="prompt_tuning", method_knobs={"vocab_ids": "a-b"}),
                                                PromptContext(tiny_lm.d, E, tok, 0))


def test_constant_lr_schedule_keeps_the_lr_after_warm_up():
    from lopt_core.training.loop import lr_lambda
    lin, const = lr_lambda(100, 0.1), lr_lambda(100, 0.1, "constant")
    assert lin(5) == const(5) == 0.6 and const(99) == 1.0 and lin(99) < 0.02
