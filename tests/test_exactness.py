"""Exactness of the engine's fast paths, on tiny random Llama- and GPT-2-style models with the real tokenizer.

Every fast path (shared prompt keys/values, padded or packed; answer-only label-word scoring; evaluation with
sorted batches; generation with a reused cache) is compared with a reference computed a different way: plain
concatenation of the prompt in front of the token embeddings and a full-vocabulary forward of the model.
"""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from lopt_core.lm import attention, engine
from lopt_core.config import RunConfig
from lopt_core.methods import PromptContext, get_method
from lopt_core.lm.models import LoadedModel, offline_default_folder

TEXTS = ["Review: a gorgeous, witty film.\nSentiment:",
         "Review: dull.\nSentiment:",
         "Review: the plot goes nowhere and the actors seem to know it, which is a shame for everyone.\nSentiment:",
         "Review: fine\nSentiment:",
         "Review: I laughed, I cried, I checked my watch twice.\nSentiment:"]
LABELS = [1, 0, 0, 1, 1]
WORDS = [" negative", " positive"]
METHODS = ["prompt_tuning", "lopt1", "lopt2", "ulpt"]


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(str(offline_default_folder()))
    t.pad_token = t.eos_token
    t.padding_side = "right"
    return t


# every fast path is exact against plain concatenation at the same precision: to float rounding in fp32, to
# bf16's rounding (8 bits of mantissa: a different order of the same sums moves the last bit) in bf16
TOL = {"fp32": dict(rtol=1e-5, atol=1e-5), "bf16": dict(rtol=2e-2, atol=5e-3)}
GRAD_TOL = {"fp32": 1e-4, "bf16": 5e-2}  # relative to each gradient's largest entry


def tol(lm) -> dict:
    return TOL[lm.precision]


def _tiny(arch: str, tok, precision: str = "fp32") -> LoadedModel:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    if arch == "llama":
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2)
        model = LlamaForCausalLM(cfg)
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4))
    dtype, _, fa = precision.partition("+")   # "bf16+fa": a bf16 body with its attention in fp32 (lm/attention.py)
    model.requires_grad_(False).eval().to({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])
    if fa:
        assert attention.fp32_attention(model, True), "the variant under test must be the one that runs"
    return LoadedModel(arch, model, tok, False, torch.device("cpu"), precision=dtype)


@pytest.fixture(scope="module", params=["llama", "gpt2", "llama-bf16", "gpt2-bf16", "llama-bf16+fa", "gpt2-bf16+fa"])
def lm(request, tok):
    arch, _, precision = request.param.partition("-")
    return _tiny(arch, tok, precision or "fp32")


@pytest.fixture(autouse=True)
def _restore_pack():
    yield
    engine.PACK = "auto"


def _method(lm, name, n=6, r=2, seed=0):
    cfg = RunConfig(method=name, n=n, r=r, seed=seed)
    m = get_method(name).from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, seed))
    with torch.no_grad():  # move away from the initialisation so every parameter matters
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def _batch(lm, texts=TEXTS):
    enc = engine.encode(lm.tokenizer, texts, 256)
    assert len({len(x) for x in enc}) > 1, "the batch must need padding"
    return engine.collate(enc, lm.tokenizer.pad_token_id, lm.device)


def _reference_logits(lm, P, ids, mask, lengths, label_ids):
    """Plain concatenation, full model forward with its LM head, full-vocabulary logits at the answer."""
    B = ids.shape[0]
    P = P.unsqueeze(0).expand(B, -1, -1) if P.dim() == 2 else P
    n = P.shape[1]
    emb = torch.cat([P.to(lm.dtype), lm.model.get_input_embeddings()(ids)], 1)
    full = lm.model(inputs_embeds=emb, attention_mask=torch.cat([mask.new_ones(B, n), mask], 1)).logits  # (B,T,V)
    return full[torch.arange(B), n + lengths - 1][:, label_ids].float()


def _grads(m):
    return {k: p.grad.detach().clone() for k, p in m.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("pack", ["never", "always"])
@pytest.mark.parametrize("name", METHODS)
def test_shared_prefix_matches_plain_concatenation(lm, name, pack):
    engine.PACK = pack
    m = _method(lm, name)
    ids, mask, lengths = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    y = torch.tensor(LABELS)
    out = {}
    for shared in (False, True):
        m.zero_grad(set_to_none=True)
        logits = engine.class_logits(lm, ids, mask, lengths, label_ids, m, shared_prefix=shared)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        out[shared] = (logits.detach(), loss.item(), _grads(m))
    (l0, loss0, g0), (l1, loss1, g1) = out[False], out[True]
    assert l0.shape == (len(TEXTS), 2)
    torch.testing.assert_close(l1, l0, **tol(lm))
    assert abs(loss1 - loss0) < tol(lm)["atol"]
    assert set(g0) == set(g1) and g0
    for k in g0:
        assert g0[k].abs().max() > 0, f"{name}: gradient of {k} is zero; the test would prove nothing"
        scale = float(g0[k].abs().max())
        torch.testing.assert_close(g1[k], g0[k], rtol=GRAD_TOL[lm.precision], atol=GRAD_TOL[lm.precision] * scale)
        assert g1[k].dtype == torch.float32, "trainable tensors and their gradients stay fp32"


@pytest.mark.parametrize("pack", ["never", "always"])
def test_answer_logits_equal_full_vocabulary_forward(lm, pack):
    engine.PACK = pack
    m = _method(lm, "prompt_tuning")
    ids, mask, lengths = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    with torch.no_grad():
        ref = _reference_logits(lm, m(), ids, mask, lengths, label_ids)
        got = engine.class_logits(lm, ids, mask, lengths, label_ids, m)
        plain = engine.class_logits(lm, ids, mask, lengths, label_ids, m, shared_prefix=False)
        kv = engine.prefix_kv(lm, m())
        with_kv = engine.class_logits(lm, ids, mask, lengths, label_ids, m, kv=kv)
    assert ref.abs().max() > 1e-3
    for x in (got, plain, with_kv):
        torch.testing.assert_close(x, ref, **tol(lm))
    # a different prompt gives different answers: the comparison above can fail
    with torch.no_grad():
        other = engine.class_logits(lm, ids, mask, lengths, label_ids, _method(lm, "prompt_tuning", seed=1))
    assert (other - ref).abs().max() > 1e-4


def test_zero_shot_answer_logits(lm):
    ids, mask, lengths = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    with torch.no_grad():
        full = lm.model(input_ids=ids, attention_mask=mask).logits
        ref = full[torch.arange(ids.shape[0]), lengths - 1][:, label_ids].float()
        got = engine.class_logits(lm, ids, mask, lengths, label_ids, None)
    torch.testing.assert_close(got, ref, **tol(lm))


def test_evaluate_independent_of_batch_size_and_order(lm):
    m = _method(lm, "lopt1")
    texts = TEXTS * 3
    labels = LABELS * 3
    data = engine.Encoded(engine.encode(lm.tokenizer, texts, 256), labels)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)
    with torch.no_grad():  # reference: one example at a time, plain concatenation, full forward
        ref = torch.cat([_reference_logits(lm, m(), *engine.collate([x], lm.tokenizer.pad_token_id, "cpu"),
                                           label_ids) for x in data.ids]).softmax(-1)
    results = [engine.evaluate(lm, data, label_ids, m, batch_size=bs, shared_prefix=sp)
               for bs in (1, 4, 32) for sp in (True, False)]
    rev = engine.Encoded(data.ids[::-1], labels[::-1])
    r_rev = engine.evaluate(lm, rev, label_ids, m, batch_size=4)
    close = dict(rtol=1e-5, atol=1e-6) if lm.precision == "fp32" else tol(lm)
    for r in results:
        torch.testing.assert_close(r.probs, ref, **close)
        sure = (ref.max(-1).values - ref.min(-1).values) > 2 * close["atol"]  # bf16 may flip a near-tie
        assert [p for p, ok in zip(r.preds, sure) if ok] == [p for p, ok in zip(ref.argmax(-1).tolist(), sure) if ok]
        assert r.accuracy == sum(int(p == y) for p, y in zip(r.preds, labels)) / len(labels)
    torch.testing.assert_close(r_rev.probs, ref.flip(0), **close)
    assert m.training, "evaluate must give the method back in training mode"


def _greedy_reference(lm, P, text, steps):
    """Greedy decoding by recomputing the whole sequence (prompt embeddings + tokens) at every step."""
    ids = engine.encode(lm.tokenizer, [text], 4096)[0]
    out = []
    with torch.no_grad():
        for _ in range(steps):
            x = torch.tensor([ids + out])
            emb = lm.model.get_input_embeddings()(x)
            emb = torch.cat([P.to(lm.dtype).unsqueeze(0), emb], 1) if P is not None else emb
            nxt = int(lm.model(inputs_embeds=emb).logits[0, -1].argmax())
            if nxt == lm.tokenizer.eos_token_id:
                break
            out.append(nxt)
    return lm.tokenizer.decode(out, skip_special_tokens=True)


def test_generate_reuses_cache_exactly(lm):
    m = _method(lm, "ulpt")
    with torch.no_grad():
        P = m()
        kv = engine.prefix_kv(lm, P)
    before = [(k.clone(), v.clone()) for k, v in kv]
    ref = _greedy_reference(lm, P, TEXTS[0], 8)
    a = engine.generate(lm, TEXTS[0], m, max_new_tokens=8)
    b = engine.generate(lm, TEXTS[0], m, kv=kv, max_new_tokens=8)
    c = engine.generate(lm, TEXTS[2], m, kv=kv, max_new_tokens=8)   # a second generation on the same cache
    d = engine.generate(lm, TEXTS[0], m, kv=kv, max_new_tokens=8)
    assert a == ref and b == ref and d == ref
    assert c == _greedy_reference(lm, P, TEXTS[2], 8)
    for (k0, v0), (k1, v1) in zip(before, kv):
        assert torch.equal(k0, k1) and torch.equal(v0, v1), "generation modified the shared cache"
    assert engine.generate(lm, TEXTS[0], None, max_new_tokens=8) == _greedy_reference(lm, None, TEXTS[0], 8)


def test_lopa_takes_the_plain_path(lm, monkeypatch):
    cfg = RunConfig(method="lopa", n=4, r=2)
    m = get_method("lopa").from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, 0))
    assert not engine.uses_shared_prefix(lm, m)
    ids, mask, lengths = _batch(lm)
    label_ids = engine.label_token_ids(lm.tokenizer, WORDS)

    def boom(*a, **k):
        raise AssertionError("LoPA must not use the shared prefix cache")
    monkeypatch.setattr(engine, "prefix_kv", boom)
    monkeypatch.setattr(engine, "_packed_answer_hidden", boom)
    got = engine.class_logits(lm, ids, mask, lengths, label_ids, m, shared_prefix=True)
    with torch.no_grad():
        P = m.prompt_for(lm, ids, mask)      # (B, n, d): one prompt per input
        assert (P[0] - P[1]).abs().max() > 0
        ref = _reference_logits(lm, P, ids, mask, lengths, label_ids)
    torch.testing.assert_close(got.detach(), ref, **tol(lm))


def test_pack_cost_model():
    engine.PACK = "auto"
    assert engine.packs(8, 60, 8 * 25, 20)          # lots of padding: pack
    assert not engine.packs(8, 30, 8 * 29, 20)      # sorted batch, little padding: keep the padded batch
    assert not engine.packs(1, 30, 30, 20)
