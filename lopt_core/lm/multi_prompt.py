"""K soft prompts in one model pass: the batched forward a sweep trains with.

One training batch, K input-independent prompts (possibly of different lengths n_k). Each prompt gets one row
of the model's batch: its prompt first, then every example of the batch packed after it (as in the engine's
packed path), so one forward and one backward serve all K configurations:

    row k:  [pad x (N - n_k) | prompt_k (n_k) | example 1 tokens | example 2 tokens | ... ]      N = max n_k
    positions: pads 0 (masked out), prompt 0..n_k-1, each example n_k + its own position
    mask: a token sees the prompt and the earlier tokens of its own example; pads are seen by no one

Rows never see each other and the left pads are masked, so row k computes exactly what the prompt-k run
computes alone (up to float summation order): gradients of loss_k reach only prompt k's parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lopt_core.lm import attention, engine, fast_path
from lopt_core.lm.engine import decoder
from lopt_core.lm.models import LoadedModel

PAD_SEG, PROMPT_SEG = -2, -1


def supported(lm: LoadedModel) -> bool:
    """Causal LMs whose attention takes a custom 4-D additive mask (sdpa, eager, sdpa in fp32)."""
    impl = getattr(lm.model.config, "_attn_implementation", None)
    return not lm.is_seq2seq and impl in ("sdpa", "eager", attention.NAME)


def pays(lm: LoadedModel, mask: torch.Tensor, n: int) -> bool:
    """Pack this batch behind the prompts unless packing would cost over twice the padded layout (the
    engine's cost model): long rows, where the packed row's attention (n + S)^2 dominates. Short-text batches
    always pack (SST-2 at batch 8: at most ~1.5x), so a sweep's numbers do not depend on a borderline choice."""
    if engine.PACK != "auto":
        return engine.PACK == "always"
    B, L = mask.shape
    S, w = int(mask.sum()), engine.attention_weight(lm)
    return S * (1 + w * (n + S)) <= 2 * B * L * (1 + w * (n + L))


def layout(mask: torch.Tensor, ns: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions (K, T), the additive attention mask's allowed pattern (K, T, T) and the answer index (B,)
    for a right-padded batch `mask` (B, L) behind prompts of lengths `ns`."""
    B, dev = mask.shape[0], mask.device
    keep = mask.bool()                                                         # (B, L)
    seg = torch.arange(B, device=dev).unsqueeze(1).expand_as(mask)[keep]      # (S,) example of each token
    pos = (mask.cumsum(1) - 1)[keep]                                           # (S,) position in its example
    K, N, S = len(ns), max(ns), seg.shape[0]
    n_t = torch.tensor(ns, device=dev)                                         # (K,)
    slot = torch.arange(N, device=dev)                                         # (N,)
    lead = (N - n_t).unsqueeze(1)                                              # (K, 1) left pads per row
    is_pad = slot.unsqueeze(0) < lead                                          # (K, N)
    p_pos = (slot.unsqueeze(0) - lead).clamp_min(0)                            # (K, N)
    positions = torch.cat([p_pos, n_t.unsqueeze(1) + pos.unsqueeze(0)], 1)     # (K, T)
    p_seg = torch.where(is_pad, PAD_SEG, PROMPT_SEG)                           # (K, N)
    segs = torch.cat([p_seg, seg.unsqueeze(0).expand(K, S)], 1)                # (K, T)
    q_seg, k_seg = segs.unsqueeze(2), segs.unsqueeze(1)                        # (K, T, 1), (K, 1, T)
    q_pos, k_pos = positions.unsqueeze(2), positions.unsqueeze(1)
    allowed = (k_pos <= q_pos) & ((k_seg == PROMPT_SEG) | (k_seg == q_seg)) & (k_seg != PAD_SEG)  # (K, T, T)
    pads_self = (q_seg == PAD_SEG) & torch.eye(N + S, dtype=torch.bool, device=dev).unsqueeze(0)
    allowed = allowed | pads_self                                              # a pad row sees itself: no empty row
    ends = N + mask.sum(1).cumsum(0) - 1                                       # (B,) last real token of each
    return positions, allowed, ends


def hidden(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, prompts: list[torch.Tensor],
           pick: torch.Tensor | None = None) -> torch.Tensor:
    """Final hidden states of one batch under each of K prompts, from one model pass: at each example's answer
    position (K, B, d), or at positions `pick` (B, P) of each example's own tokens (K, B, P, d)."""
    assert prompts and all(p.dim() == 2 and p.shape[1] == lm.d for p in prompts), \
        f"prompts must be (n_k, {lm.d}) matrices"
    fp = fast_path.decide(lm)
    if not fp.packed:
        raise engine.EngineError(f"K prompts in one pass are not exact here: {fp.reason}")
    ns = [int(p.shape[0]) for p in prompts]
    N = max(ns)
    dtype = lm.embeddings.dtype
    positions, allowed, ends = layout(mask, ns)
    att = torch.zeros(allowed.shape, dtype=dtype, device=ids.device)
    att = att.masked_fill_(~allowed, torch.finfo(dtype).min).unsqueeze(1)  # (K, 1, T, T) additive
    lead = torch.stack([F.pad(p.to(dtype), (0, 0, N - p.shape[0], 0)) for p in prompts])  # (K, N, d)
    tokens = lm.model.get_input_embeddings()(ids[mask.bool()])            # (S, d)
    x = torch.cat([lead, tokens.unsqueeze(0).expand(len(prompts), -1, -1)], 1)  # (K, N + S, d)
    h = decoder(lm.model)(inputs_embeds=x, attention_mask=att, position_ids=positions,
                          use_cache=False).last_hidden_state              # (K, T, d)
    if pick is None:
        return h[:, ends]                                                 # (K, B, d)
    lengths = mask.sum(1)
    starts = ends + 1 - lengths                                           # (B,) first token of each example
    return h[:, starts.unsqueeze(1) + pick]                               # (K, B, P, d)


def class_logits(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, prompts: list[torch.Tensor],
                 label_ids: list[int]) -> torch.Tensor:
    """Label-word logits of one batch under each of K prompts, (K, B, C), from one model pass."""
    return engine.label_logits(lm, hidden(lm, ids, mask, prompts), label_ids)  # (K, B, C)


def target_logprob(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, n_target: torch.Tensor,
                   prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """engine.target_logprob under each of K prompts from one pass: summed log-probabilities (K, B), counts (B,)."""
    pick, targets, valid = engine.target_positions(mask.sum(1), n_target, ids)
    h = hidden(lm, ids, mask, prompts, pick)                              # (K, B, P, d)
    lp = engine.token_logprobs(lm, h, targets.expand(len(prompts), -1, -1)) * valid  # (K, B, P)
    return lp.sum(-1), valid.sum(1)
