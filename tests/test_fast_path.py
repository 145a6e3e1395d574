"""Exactness of the fast paths per architecture (lopt_core/fast_path.py), on tiny random models of each family.

For every family the engine's class logits, loss, prompt gradients, evaluation probabilities and generations
are compared with plain concatenation built here (inputs_embeds = cat(prompt, token embeddings), the model's
full forward with its own head), and the test asserts which path actually ran by counting the engine's fast-path
functions: the shared prompt cache (prefix_kv + broadcast_cache), the packed row (_packed_answer_hidden) and
the K-prompt pass (multi_prompt.class_logits). Families where a fast path is not proven exact must not take it.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lopt_core.lm import attention, engine, fast_path, multi_prompt
from lopt_core.config import RunConfig
from lopt_core.methods import get_method
from lopt_core.lm.models import LoadedModel, load_model

# family -> (its fixture, or None for tiny_family_dir; shared_prefix, packed, words of the reason)
FAMILIES = {
    "llama": ("tiny_model_dir", True, True, "full causal attention"),
    "gpt2": ("tiny_gpt2_dir", True, True, "full causal attention"),
    "qwen2": (None, True, True, "full causal attention"),
    "qwen3": (None, True, True, "full causal attention"),
    "mistral": (None, True, False, "sliding window 8"),
    "gemma2": (None, True, False, "sliding window 8"),
    "gemma3_text": (None, True, False, "sliding window 8"),
    "bloom": (None, True, False, "ALiBi"),
    "lfm2": (None, False, False, "conv layers carry state"),
    "t5": ("tiny_t5_dir", False, False, "encoder-decoder"),
}
PACKED = [f for f, (_, _, packed, _) in FAMILIES.items() if packed]
NOT_PACKED = [f for f in FAMILIES if f not in PACKED]
# rows of different lengths (padding), most of them longer than the sliding window by themselves
TEXTS = ["Movie review: tender, funny and beautifully shot from start to finish. Verdict:",
         "Movie review: meh. Verdict:",
         "Movie review: two hours of shouting, a plot with holes you could drive a truck through, and no ending. "
         "Verdict:",
         "Movie review: it works. Verdict:",
         "Movie review: the cast is wonderful, the songs stay with you for days. Verdict:"]
LABELS = [1, 0, 0, 1, 1]
WORDS = [" negative", " positive"]
WINDOW = 8   # the sliding window of the tiny Mistral, Gemma-2 and Gemma-3 (tests/conftest.py)
PATHS = ("prefix_kv", "broadcast_cache", "_packed_answer_hidden", "_seq2seq_logits")


def _folder(request, family: str) -> str:
    fixture = FAMILIES[family][0]
    return request.getfixturevalue(fixture) if fixture else request.getfixturevalue("tiny_family_dir")(family)


def _lm(request, family: str, precision: str = "fp32") -> LoadedModel:
    """precision "bf16+fp32 attention": a bf16 body whose sdpa attention runs on fp32 copies (lm/attention.py)."""
    dtype, _, fa = precision.partition("+")
    lm = load_model(_folder(request, family), "cpu", dtype, fp32_attention=bool(fa))
    if fa and lm.model.config._attn_implementation != "eager":
        assert attention.using_fp32(lm.model), "the variant under test must be the one that runs"
    return lm


# the same precision on both sides: fp32 to float rounding, bf16 to its own (a different order of the same sums)
TOL = {"fp32": dict(rtol=1e-5, atol=1e-5), "bf16": dict(rtol=2e-2, atol=5e-3)}
GRAD_TOL = {"fp32": 1e-4, "bf16": 5e-2}  # relative to the gradient's largest entry


@pytest.fixture
def ran(monkeypatch):
    """Names of the engine's path functions in the order they ran (each call recorded)."""
    calls: list[str] = []
    for name in PATHS:
        real = getattr(engine, name)
        monkeypatch.setattr(engine, name, lambda *a, _n=name, _f=real, **k: calls.append(_n) or _f(*a, **k))
    return calls


def _prompt(lm, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, lm.d, generator=torch.Generator().manual_seed(seed)) * 0.5   # (n, d)


def _method(P: torch.Tensor):
    return get_method("prompt_tuning")(P.shape[0], P.shape[1], P)


def _batch(lm, texts=TEXTS):
    return engine.collate(engine.encode(lm.tokenizer, texts, 256), lm.tokenizer.pad_token_id, lm.device)


def _reference(lm, P, ids, mask, lengths, label_ids) -> torch.Tensor:
    """Plain concatenation, the model's full forward and its own head: label-word logits at the answer (B, C)."""
    B, n = ids.shape[0], P.shape[0]
    emb = torch.cat([P.to(lm.dtype).unsqueeze(0).expand(B, -1, -1), lm.model.get_input_embeddings()(ids)], 1)
    full_mask = torch.cat([mask.new_ones(B, n), mask], 1)
    if lm.is_seq2seq:  # the first decoded token
        start = torch.full((B, 1), lm.model.config.decoder_start_token_id, dtype=torch.long)
        return lm.model(inputs_embeds=emb, attention_mask=full_mask, decoder_input_ids=start).logits[:, 0, label_ids]
    logits = lm.model(inputs_embeds=emb, attention_mask=full_mask).logits                          # (B, n + L, V)
    return logits[torch.arange(B), n + lengths - 1][:, label_ids]


def _expected_paths(family: str, pack: str) -> list[str]:
    """What one class_logits call under a fresh prompt runs."""
    _, shared, packed, _ = FAMILIES[family]
    if family == "t5":
        return ["_seq2seq_logits"]
    if not shared:
        return []
    return ["_packed_answer_hidden"] if packed and pack == "always" else ["prefix_kv", "broadcast_cache"]


@pytest.mark.parametrize("family", FAMILIES)
def test_decision_per_family(request, family):
    lm = _lm(request, family)
    _, shared, packed, why = FAMILIES[family]
    fp = fast_path.decide(lm)
    assert (fp.shared_prefix, fp.packed) == (shared, packed), fp.reason
    assert why in fp.reason and fp.reason.startswith(lm.model.config.model_type)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16+fp32 attention"])
@pytest.mark.parametrize("pack", ["never", "always"])
@pytest.mark.parametrize("n", [4, 12])            # below and beyond the sliding window
@pytest.mark.parametrize("family", FAMILIES)
def test_logits_loss_and_gradients_equal_plain_concatenation(request, ran, monkeypatch, family, n, pack, precision):
    monkeypatch.setattr(engine, "PACK", pack)      # "always": the packed row wherever packing is allowed
    lm = _lm(request, family, precision)
    precision = lm.precision
    ids, mask, lengths = _batch(lm)
    assert n + int(lengths.max()) > 2 * WINDOW, "the rows must reach past the sliding window"
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    y = torch.tensor(LABELS)
    P0 = _prompt(lm, n)
    m = _method(P0)
    logits = engine.class_logits(lm, ids, mask, lengths, label_ids, m)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    assert ran == _expected_paths(family, pack)
    P = P0.clone().requires_grad_(True)
    ref = _reference(lm, P, ids, mask, lengths, label_ids).float()  # logits and loss in fp32, as the engine's
    ref_loss = F.cross_entropy(ref, y)
    ref_loss.backward()
    assert ref.abs().max() > 1e-3 and P.grad.abs().max() > 0, "the comparison must be able to fail"
    scale = float(ref.abs().max())  # bf16 rounds h, so a logit's error scales with the logits, not with itself
    torch.testing.assert_close(logits.detach(), ref.detach(), rtol=TOL[precision]["rtol"],
                               atol=TOL[precision]["atol"] * max(1.0, scale))
    assert abs(loss.item() - ref_loss.item()) < TOL[precision]["atol"]
    g = GRAD_TOL[precision]
    torch.testing.assert_close(m.prompt.grad, P.grad, rtol=g, atol=(1e-6 if precision == "fp32" else g)
                               * float(P.grad.abs().max()))


@pytest.mark.parametrize("pack", ["never", "always"])
@pytest.mark.parametrize("family", FAMILIES)
def test_evaluation_probabilities_equal_plain_concatenation(request, ran, monkeypatch, family, pack):
    monkeypatch.setattr(engine, "PACK", pack)
    lm = _lm(request, family)
    _, shared, packed, _ = FAMILIES[family]
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    data = engine.Encoded(engine.encode(lm.tokenizer, TEXTS * 2, 256), LABELS * 2)
    P = _prompt(lm, 12, seed=1)
    with torch.no_grad():  # one example at a time, plain concatenation, full forward
        ref = torch.cat([_reference(lm, P, *engine.collate([x], lm.tokenizer.pad_token_id, "cpu"), label_ids)
                         for x in data.ids]).softmax(-1)
    got = engine.evaluate(lm, data, label_ids, _method(P), batch_size=4)
    torch.testing.assert_close(got.probs, ref, rtol=1e-5, atol=1e-6)
    batches = 3
    if family == "t5":
        assert ran == ["_seq2seq_logits"] * batches
    elif not shared:
        assert ran == []
    elif packed and pack == "always":   # the prompt's cache once, then each batch packed behind it
        assert ran == ["prefix_kv"] + ["_packed_answer_hidden"] * batches
    else:
        assert ran == ["prefix_kv"] + ["broadcast_cache"] * batches


@pytest.mark.parametrize("family", PACKED)
def test_multi_prompt_rows_equal_plain_concatenation(request, family):
    lm = _lm(request, family)
    ids, mask, lengths = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    prompts = [_prompt(lm, n, seed=n) for n in (2, 12, 5)]
    got = multi_prompt.class_logits(lm, ids, mask, prompts, label_ids)          # (K, B, C)
    with torch.no_grad():
        for k, P in enumerate(prompts):
            torch.testing.assert_close(got[k], _reference(lm, P, ids, mask, lengths, label_ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", [f for f in NOT_PACKED if f != "t5"])
def test_multi_prompt_refuses_where_packing_is_not_exact(request, family):
    lm = _lm(request, family)
    ids, mask, _ = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    with pytest.raises(engine.EngineError, match=FAMILIES[family][3]):
        multi_prompt.class_logits(lm, ids, mask, [_prompt(lm, 3), _prompt(lm, 5)], label_ids)


def _cfg(folder, csv, method="prompt_tuning", n=4, r=2, **kw):
    base = dict(model=folder, task="file", data_file=str(csv), method=method, n=n, r=r, steps=3, batch_size=4,
                eval_every=0, eval_size=0, lr=0.05, device="cpu")
    return RunConfig(**(base | kw))


@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_group_takes_the_k_prompt_pass_only_where_exact(request, sentiment_csv, monkeypatch, family):
    """Mistral's window: the group trains each prompt by its solo path, exactly as alone; Llama: one K-prompt
    pass per step. Either way each member records the path it used."""
    from lopt_core.training.loop import train_group
    from lopt_core.training.loop import train
    monkeypatch.setattr(engine, "PACK", "always")
    lm = _lm(request, family)
    folder = _folder(request, family)
    cfgs = [_cfg(folder, sentiment_csv, m, n, r) for m, n, r in (("prompt_tuning", 4, 1), ("lopt1", 12, 2))]
    passes = []
    real = multi_prompt.class_logits
    monkeypatch.setattr(multi_prompt, "class_logits", lambda *a: passes.append(len(a[3])) or real(*a))
    curves = {}
    results = train_group(cfgs, on_event=lambda rid, ev: ev["type"] == "step" and curves.setdefault(rid, []).append(
        ev["loss"]), lm=lm, save=False, prompts_per_pass=2)
    assert passes == ([2] * 3 if family == "llama" else [])
    for c, res in zip(cfgs, results):
        assert res["fast_path"] == fast_path.decide(lm).as_dict()
        alone = []
        train(c, on_event=lambda ev: ev["type"] == "step" and alone.append(ev["loss"]), lm=lm, save=False)
        assert curves[res["run_id"]] == pytest.approx(alone, abs=2e-5)


def test_runs_record_the_path_they_used(request, tiny_model_dir, tiny_t5_dir, sentiment_csv):
    from lopt_core.training.loop import train

    def path(folder, **kw):
        return train(_cfg(folder, sentiment_csv, steps=1, **kw), save=False)["fast_path"]
    got = path(_folder(request, "mistral"))
    assert (got["shared_prefix"], got["packed"]) == (True, False) and "sliding window 8" in got["reason"]
    assert path(tiny_model_dir) == {"shared_prefix": True, "packed": True, "reason": fast_path.decide(
        load_model(tiny_model_dir, "cpu")).reason}
    assert path(tiny_model_dir, shared_prefix=False) == {
        "shared_prefix": False, "packed": False, "reason": "shared_prefix is off in the run's settings: plain "
                                                           "concatenation"}
    assert path(tiny_model_dir, method="lopa")["reason"] == "one prompt per input: plain concatenation"
    got = path(tiny_t5_dir)
    assert not got["shared_prefix"] and not got["packed"] and "encoder-decoder" in got["reason"]


# ---------------------------------------------------------------- the model's own head

def _in_memory(config_cls: str, smol_tokenizer, **own) -> LoadedModel:
    import transformers
    cfg = getattr(transformers, config_cls)(vocab_size=len(smol_tokenizer), hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                            pad_token_id=smol_tokenizer.pad_token_id, initializer_range=0.2, **own)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).requires_grad_(False).eval()
    return LoadedModel(cfg.model_type, model, smol_tokenizer, False, torch.device("cpu"))


@pytest.mark.parametrize("config_cls, own", [
    ("Gemma2Config", dict(head_dim=8, sliding_window=8, final_logit_softcapping=2.0)),   # cap * tanh(z / cap)
    ("CohereConfig", dict(logit_scale=4.0)),                                              # z * logit_scale
    ("GraniteConfig", dict(logits_scaling=0.25)),                                         # z / logits_scaling
])
def test_label_scores_apply_what_the_models_head_applies(smol_tokenizer, config_cls, own):
    lm = _in_memory(config_cls, smol_tokenizer, **own)
    ids, mask, lengths = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    y = torch.tensor(LABELS)
    P = _prompt(lm, 6)
    with torch.no_grad():
        ref = _reference(lm, P, ids, mask, lengths, label_ids)
        got = engine.class_logits(lm, ids, mask, lengths, label_ids, _method(P))
        zero = engine.class_logits(lm, ids, mask, lengths, label_ids, None)
        full = lm.model(input_ids=ids, attention_mask=mask).logits[torch.arange(len(TEXTS)), lengths - 1][:, label_ids]
        h = engine.answer_hidden(lm, ids, mask, lengths, _method(P), shared_prefix=False)
        W, _ = engine.label_head(lm.model, label_ids)
    assert (h @ W.t() - ref).abs().max() > 1e-2, "the head's transform must matter for this test to prove it"
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(zero, full, rtol=1e-5, atol=1e-5)
    assert abs(F.cross_entropy(got, y).item() - F.cross_entropy(ref, y).item()) < 1e-5
    probs = engine.evaluate(lm, engine.Encoded(engine.encode(lm.tokenizer, TEXTS, 256), LABELS), label_ids,
                            _method(P), batch_size=2).probs
    torch.testing.assert_close(probs, ref.softmax(-1), rtol=1e-5, atol=1e-6)


def test_a_head_it_does_not_reproduce_is_refused(smol_tokenizer, monkeypatch):
    lm = _in_memory("Gemma2Config", smol_tokenizer, head_dim=8, final_logit_softcapping=2.0)
    monkeypatch.setattr(fast_path, "head_transform", lambda cfg: (lambda z: z))   # forgets the softcapping
    ids, mask, lengths = _batch(lm)
    with pytest.raises(fast_path.HeadMismatch, match="gemma2"):
        engine.class_logits(lm, ids, mask, lengths, engine.label_token_ids(lm.tokenizer, WORDS), None)


# ---------------------------------------------------------------- generation

def _greedy_reference(lm, P, text, steps):
    ids = engine.encode(lm.tokenizer, [text], 4096)[0]
    out = []
    with torch.no_grad():
        for _ in range(steps):
            emb = lm.model.get_input_embeddings()(torch.tensor([ids + out]))
            nxt = int(lm.model(inputs_embeds=torch.cat([P.unsqueeze(0), emb], 1)).logits[0, -1].argmax())
            if nxt == lm.tokenizer.eos_token_id:
                break
            out.append(nxt)
    return lm.tokenizer.decode(out, skip_special_tokens=True)


@pytest.mark.parametrize("family", ["mistral", "gemma2", "gemma3_text", "bloom", "lfm2"])
def test_generation_equals_plain_concatenation(request, ran, family):
    lm = _lm(request, family)
    P = _prompt(lm, 12)
    got = engine.generate(lm, TEXTS[0], _method(P), max_new_tokens=10)   # rows far past the window
    assert got == _greedy_reference(lm, P, TEXTS[0], 10) and got
    assert ran == (["prefix_kv", "broadcast_cache"] if FAMILIES[family][1] else [])


# ---------------------------------------------------------------- decisions from configs alone

def _config(cls: str, impl: str = "sdpa", **kw):
    import transformers
    cfg = getattr(transformers, cls)(**kw)
    cfg._attn_implementation = impl
    return cfg


@pytest.mark.parametrize("cfg, shared, packed, why", [
    (_config("MistralConfig", sliding_window=None), True, True, "full causal"),
    (_config("LlamaConfig", impl="eager"), True, True, "full causal"),
    (_config("LlamaConfig", impl="flash_attention_2"), False, False, "flash_attention_2 attention"),
    (_config("Qwen2Config", use_sliding_window=True, sliding_window=8, max_window_layers=0, num_hidden_layers=2),
     True, False, "sliding window 8"),
    (_config("Qwen3NextConfig", num_hidden_layers=4), False, False, "linear_attention layers"),
    (_config("FalconConfig", alibi=True), False, False, "not a family"),
    (_config("PhiConfig"), False, False, "not a family"),
])
def test_decision_from_config(cfg, shared, packed, why):
    fp = fast_path.decide_config(cfg)
    assert (fp.shared_prefix, fp.packed) == (shared, packed) and why in fp.reason, fp.reason
