"""lm/attention.py: a bf16 body's attention runs on fp32 copies while training and in bf16 without gradients,
and the output stays the body's dtype."""
from __future__ import annotations

import torch

from lopt_core.lm import attention
from lopt_core.lm.models import load_model


def test_training_attention_runs_in_fp32_and_evaluation_in_bf16(tiny_model_dir, monkeypatch):
    lm = load_model(tiny_model_dir, "cpu", "bf16", fp32_attention=True)
    assert attention.using_fp32(lm.model) and lm.dtype == torch.bfloat16
    seen = []
    real = attention.sdpa_attention_forward

    def spy(module, q, k, v, mask, **kw):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real(module, q, k, v, mask, **kw)
    monkeypatch.setattr(attention, "sdpa_attention_forward", spy)
    x = torch.randn(2, 5, lm.d, dtype=torch.bfloat16, requires_grad=True)
    h = lm.model.base_model(inputs_embeds=x).last_hidden_state                  # (B, L, d)
    assert h.dtype == torch.bfloat16
    h.float().sum().backward()
    assert seen and set(seen) == {(torch.float32,) * 3}, "with gradients: q, k, v in fp32"
    seen.clear()
    with torch.no_grad():
        lm.model.base_model(inputs_embeds=x.detach())
    assert seen and set(seen) == {(torch.bfloat16,) * 3}, "without gradients: the bf16 kernel"
    assert not attention.using_fp32(load_model(tiny_model_dir, "cpu", "bf16").model), "a second copy, switched off"
    assert attention.fp32_attention(lm.model, False) is False and attention.fp32_attention(lm.model, True)
