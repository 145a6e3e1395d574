"""Attention in fp32 inside a bf16 body while training: one op at the precision where this CPU runs it faster.

    NAME                       "sdpa_fp32", registered with transformers' AttentionInterface (and its mask)
    fp32_attention(model, on)  switch a loaded model's attention to NAME (on) or back to plain sdpa (off)
    using_fp32(model)          whether a model's attention runs through NAME

On a CPU with bf16 matrix units (AMX) the matmuls gain ~3x in bf16, but PyTorch's CPU flash-attention kernel does
not: its bf16 backward ran slower than fp32's (Intel Xeon with AMX: 138 ms against 92 ms per SmolLM2 training
step, 2 threads; bench/precision-*.txt). So while gradients are recorded (training), q, k and v are cast up to
fp32 for the attention product and the output cast back to the body's dtype. Without gradients (evaluation,
generation) the bf16 kernel runs: its forward alone was the faster one (eval 3.16x fp32's speed in bf16, 2.91x
with fp32 attention, same bench). Whether a machine's training gains from it is measured, like bf16 itself
(lm/precision.py). The masks are sdpa's, so every fast path (shared prompt cache, packed rows with a 4-D mask)
takes it as it takes sdpa; the exactness tests run it too.
"""
from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_fp32"


def _forward(module, query, key, value, attention_mask, **kw):
    """sdpa on fp32 copies of q, k, v (B, heads, L, head_dim); the output back in the body's dtype."""
    dtype = query.dtype
    if dtype == torch.float32 or not torch.is_grad_enabled():  # forward-only (evaluation, generation): bf16 wins
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)
    up = lambda t: t.float() if torch.is_tensor(t) and t.is_floating_point() else t  # noqa: E731 (bool masks stay)
    kw = {k: up(v) for k, v in kw.items()}   # an additive bias beside the mask (T5's position_bias) goes up too
    out, weights = sdpa_attention_forward(module, up(query), up(key), up(value), up(attention_mask), **kw)
    return out.to(dtype), weights


AttentionInterface.register(NAME, _forward)
AttentionMaskInterface.register(NAME, sdpa_mask)


def using_fp32(model) -> bool:
    return getattr(model.config, "_attn_implementation", None) == NAME


def fp32_attention(model, on: bool) -> bool:
    """Switch `model` between NAME and sdpa. Only a model that runs sdpa (or NAME) is switched: eager and the
    rest keep their own. Returns whether its attention now runs in fp32."""
    impl = getattr(model.config, "_attn_implementation", None)
    if impl in ("sdpa", NAME) and impl != (NAME if on else "sdpa"):
        model.set_attn_implementation(NAME if on else "sdpa")
    return using_fp32(model)
