"""Running a frozen LM under a soft prompt: answer-only class scores, evaluation and generation.

Shared prefix (input-independent prompts, on models where fast_path.py proves it exact): a prompt at the front
never attends to the tokens after it, so its keys/values are the same for every example. They are computed once
per batch with batch size 1 and broadcast, which is exact and saves n positions of work per example; gradients
flow back through the shared cache into the prompt. Answer-only scoring: only the hidden state at the answer position is
projected, and only onto the label words' rows of the output matrix, never the full vocabulary, followed by
what the model's own head applies after that matrix (fast_path.head: softcapping, logit scales).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from lopt_core.lm import fast_path
from lopt_core.lm.models import LoadedModel
from lopt_core.errors import EngineError

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: key, value (1, heads, n, head_dim)


# ---------------------------------------------------------------- tokens

@dataclass
class Encoded:
    ids: list[list[int]]
    labels: list[int]

    def __len__(self):
        return len(self.ids)


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, left-truncated to max_length so the answer cue at the end survives."""
    out = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    return [ids[-max_length:] if len(ids) > max_length else ids for ids in out]


def encode_examples(tokenizer, examples, max_length: int) -> Encoded:
    return Encoded(encode(tokenizer, [e.text for e in examples], max_length), [e.label for e in examples])


def label_token_ids(tokenizer, words) -> list[int]:
    """First token of each label word; the words must start with different tokens."""
    ids = []
    for w in words:
        toks = tokenizer(w, add_special_tokens=False)["input_ids"]
        if not toks:
            raise EngineError(f"label word {w!r} has no tokens")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        pieces = [tokenizer.decode([i]) for i in ids]
        raise EngineError(f"label words {list(words)} start with the same token(s) {pieces}; choose words "
                          f"whose first tokens differ")
    return ids


def collate(id_lists: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad to the longest in the batch: ids (B, L), mask (B, L), lengths (B,)."""
    L = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), L), dtype=torch.long)
    for i, x in enumerate(id_lists):
        ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    lengths = mask.sum(1)
    return ids.to(device), mask.to(device), lengths.to(device)


# ---------------------------------------------------------------- pieces of the model

def decoder(model):
    """The transformer body without the LM head (LlamaModel, GPT2Model, ...)."""
    return model.base_model


def label_head(model, label_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows of the output matrix for the label words: W (C, d), bias (C,) or None."""
    head = model.get_output_embeddings()
    idx = torch.tensor(label_ids, device=head.weight.device)
    bias = head.bias[idx] if getattr(head, "bias", None) is not None else None
    return head.weight[idx], bias


def label_logits(lm: LoadedModel, h: torch.Tensor, label_ids: list[int], model=None) -> torch.Tensor:
    """Label-word logits (..., C) from answer hidden states h (..., d), as the model's own head gives them."""
    W, b = label_head(model if model is not None else lm.model, label_ids)             # (C, d), (C,)
    logits = h.float() @ W.float().t()  # label logits and the loss in fp32 whatever the body's precision
    return fast_path.head(lm)(logits + b.float() if b is not None else logits)


def token_logprobs(lm: LoadedModel, h: torch.Tensor, targets: torch.Tensor, model=None) -> torch.Tensor:
    """log p(target token) from the hidden states that predict it: h (..., d), targets (...) -> (...), fp32.
    Only these positions are projected onto the vocabulary, as the model's own head gives it."""
    head = (model if model is not None else lm.model).get_output_embeddings()
    logits = h.float() @ head.weight.float().t()                                      # (..., V)
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias.float()
    logits = fast_path.head(lm)(logits)
    return logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def target_positions(lengths: torch.Tensor, n_target: torch.Tensor, ids: torch.Tensor):
    """Teacher forcing over each row's last n_target tokens: the positions whose hidden states predict them
    (B, P), the target ids (B, P) and which of the P slots are real (B, P); P = the longest target."""
    P = int(n_target.max())
    j = torch.arange(P, device=ids.device).unsqueeze(0)                              # (1, P)
    valid = j < n_target.unsqueeze(1)                                                 # (B, P)
    first = (lengths - n_target - 1).unsqueeze(1)                                     # (B, 1) predicts target 0
    pick = torch.where(valid, first + j, (lengths - 2).unsqueeze(1)).clamp_min(0)     # (B, P)
    targets = ids.gather(1, pick + 1)                                                 # (B, P)
    return pick, targets, valid


def target_logprob(lm: LoadedModel, ids, mask, lengths, n_target, method=None, peft_model=None,
                   shared_prefix: bool = True, kv: KV | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's last n_target tokens given what precedes them (under the prompt),
    and the count of those tokens: (B,), (B,). Teacher forcing, the answer tokens only."""
    if lm.is_seq2seq:
        raise EngineError("generation and multiple-choice scoring need a causal LM (this model is encoder-decoder)")
    pick, targets, valid = target_positions(lengths, n_target, ids)
    h = answer_hidden(lm, ids, mask, lengths, method, kv, peft_model, shared_prefix, pick=pick)  # (B, P, d)
    lp = token_logprobs(lm, h, targets, peft_model) * valid                           # (B, P)
    return lp.sum(1), valid.sum(1)


def uses_shared_prefix(lm: LoadedModel, method) -> bool:
    """The prompt's cache is computed once and shared: the method allows it and fast_path proves it exact."""
    return method is not None and fast_path.for_run(lm, method)["shared_prefix"]


def prefix_kv(lm: LoadedModel, prompt: torch.Tensor) -> KV:
    """Keys/values of the prompt alone, batch 1: computed once, shared by every example."""
    assert prompt.dim() == 2 and prompt.shape[1] == lm.d, f"prompt must be (n, {lm.d}), got {tuple(prompt.shape)}"
    # a cache without the model's config keeps every layer whole: a sliding-window layer's own cache would cut
    # the prompt at the window, while the model's mask builder applies the window to a whole cache exactly
    out = decoder(lm.model)(inputs_embeds=prompt.to(lm.dtype).unsqueeze(0), past_key_values=DynamicCache(),
                            use_cache=True)
    kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    if any(k.shape[-2] != prompt.shape[0] for k, _ in kv):
        raise EngineError(f"the prompt cache of {lm.model.config.model_type} does not hold all "
                          f"{prompt.shape[0]} prompt positions")
    return kv


def broadcast_cache(kv: KV, B: int) -> DynamicCache:
    """A fresh cache whose layers view the shared prompt keys/values for B examples (no copy until use)."""
    return DynamicCache(ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])


# Packing: a right-padded batch wastes B * L_max - sum(L) positions of work in every layer, forward and
# backward. Packed, the batch's real tokens form one row of sum(L) tokens after the shared prompt (batch 1, so
# the cache needs no broadcast); a 4-D mask lets each token see the prompt and the earlier tokens of its own
# example only, and position ids restart at n for each example. The attention scores grow to sum(L) x (n + sum(L))
# per head, so packing is chosen only when the positions it saves outweigh the extra attention work.
PACK = "auto"   # "auto" | "always" | "never" (tests force each path)


def packs(B: int, L_max: int, S: int, n: int, attn_weight: float = 1e-3) -> bool:
    """Cost model: per-token linear work 1, per (query, key) pair attn_weight (SmolLM2: ~3e-4 in FLOPs; the CPU
    attention kernel with a mask runs well below matmul speed, hence the larger default)."""
    if PACK != "auto":
        return PACK == "always"
    padded = B * L_max * (1 + attn_weight * (n + L_max))
    packed = S * (1 + attn_weight * (n + S))
    return B > 1 and packed < 0.9 * padded


def _packable(lm: LoadedModel) -> bool:
    return fast_path.decide(lm).packed


def attention_weight(lm: LoadedModel) -> float:
    """Cost of one (query, key) pair relative to one token through a layer's linears, for the packing choice."""
    cfg = lm.model.config
    d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None) or lm.d
    inner = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
    # FLOP ratio of one (query, key) pair (4 d) to one token through a layer's linears (~2 (4 d^2 + 3 d inner))
    ratio = 4 * d / (2 * (4 * d * d + 3 * d * inner))
    return max(1e-3, 3 * ratio)


def _choose_pack(lm: LoadedModel, B: int, L_max: int, S: int, n: int) -> bool:
    return packs(B, L_max, S, n, attn_weight=attention_weight(lm))


def _packed_answer_hidden(lm: LoadedModel, ids, mask, lengths, kv: KV | None = None,
                          prompt: torch.Tensor | None = None, pick: torch.Tensor | None = None) -> torch.Tensor:
    """Answer-position hidden states of a right-padded batch run as one packed row.

    With `kv` the row follows the cached prompt (batch 1, no broadcast). With `prompt` (n, d) the prompt's
    embeddings lead the row itself: one pass computes the prompt once and every example after it, so training
    runs one forward and one backward through the layers instead of two (prompt pass + batch pass)."""
    B = ids.shape[0]
    dev = ids.device
    keep = mask.bool()                                                         # (B, L)
    flat = ids[keep]                                                           # (S,)
    seg = torch.arange(B, device=dev).unsqueeze(1).expand_as(ids)[keep]        # (S,) example of each token
    pos = (mask.cumsum(1) - 1)[keep]                                           # (S,) position within its example
    body = decoder(lm.model)
    dtype = lm.dtype
    if prompt is not None:
        n = prompt.shape[0]
        seg = torch.cat([seg.new_full((n,), -1), seg])                         # -1: the prompt
        pos = torch.cat([torch.arange(n, device=dev), n + pos])                # absolute positions
        q_seg, q_pos, k_seg, k_pos = seg, pos, seg, pos
    else:
        n = kv[0][0].shape[-2]
        pos = n + pos
        q_seg, q_pos = seg, pos
        k_seg = torch.cat([seg.new_full((n,), -1), seg])
        k_pos = torch.cat([torch.arange(n, device=dev), pos])
    # a token sees the prompt and the earlier tokens of its own example; prompt tokens see earlier prompt tokens
    allowed = (k_pos[None, :] <= q_pos[:, None]) & ((k_seg[None, :] == -1) | (k_seg[None, :] == q_seg[:, None]))
    att = torch.zeros(allowed.shape, dtype=dtype, device=dev).masked_fill_(~allowed, torch.finfo(dtype).min)
    att = att[None, None]                                                      # (1, 1, T, keys) additive
    if prompt is not None:
        x = torch.cat([prompt.to(dtype), lm.model.get_input_embeddings()(flat)], 0).unsqueeze(0)  # (1, n + S, d)
        h = body(inputs_embeds=x, attention_mask=att, position_ids=pos.unsqueeze(0),
                 use_cache=False).last_hidden_state                            # (1, n + S, d)
        off = n
    else:
        cache = DynamicCache(ddp_cache_data=[(k, v) for k, v in kv])          # batch 1: no broadcast
        h = body(input_ids=flat.unsqueeze(0), attention_mask=att, position_ids=pos.unsqueeze(0),
                 past_key_values=cache).last_hidden_state                      # (1, S, d)
        off = 0
    starts = off + mask.sum(1).cumsum(0) - mask.sum(1)                         # (B,) first token of each
    out = h[0, starts.unsqueeze(1) + _pick(lengths, pick)]                     # (B, P, d)
    return out.squeeze(1) if pick is None else out


def _pick(lengths: torch.Tensor, pick: torch.Tensor | None) -> torch.Tensor:
    """The positions to read, (B, P): the given ones, or each example's last real token (B, 1)."""
    return (lengths - 1).unsqueeze(1) if pick is None else pick


def _gather(h: torch.Tensor, index: torch.Tensor, squeeze: bool) -> torch.Tensor:
    """h (B, T, d), index (B, P) -> (B, P, d), or (B, d) when squeeze (one position per example)."""
    out = h[torch.arange(h.shape[0], device=h.device).unsqueeze(1), index]
    return out.squeeze(1) if squeeze else out


def answer_hidden(lm: LoadedModel, ids, mask, lengths, method=None, kv: KV | None = None,
                  peft_model=None, shared_prefix: bool = True, pick: torch.Tensor | None = None) -> torch.Tensor:
    """Final hidden states at the answer position (the last real input token), (B, d); or, with `pick` (B, P),
    at those positions of each example's own tokens (0 = its first), (B, P, d). Every path reads the same
    positions: plain concatenation, the shared prompt cache, packed rows, PEFT adapters."""
    B, one = ids.shape[0], pick is None
    at = _pick(lengths, pick)                                                        # (B, P)
    if peft_model is not None:  # LoRA / prefix tuning: run the wrapped model, project the positions only
        out = peft_model(input_ids=ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1)
        return _gather(out.hidden_states[-1], at, one)
    body = decoder(lm.model)
    if method is None:  # zero-shot: the template alone
        return _gather(body(input_ids=ids, attention_mask=mask).last_hidden_state, at, one)
    if shared_prefix and uses_shared_prefix(lm, method):
        S = int(mask.sum())
        if kv is None:
            P = method()                                                             # (n, d)
            if _packable(lm) and _choose_pack(lm, B, ids.shape[1], S, P.shape[0]):
                return _packed_answer_hidden(lm, ids, mask, lengths, prompt=P, pick=pick)
            kv = prefix_kv(lm, P)
        n = kv[0][0].shape[-2]
        if _packable(lm) and _choose_pack(lm, B, ids.shape[1], S, n):
            return _packed_answer_hidden(lm, ids, mask, lengths, kv=kv, pick=pick)
        full_mask = torch.cat([mask.new_ones(B, n), mask], dim=1)                  # (B, n + L)
        h = body(input_ids=ids, attention_mask=full_mask, past_key_values=broadcast_cache(kv, B)).last_hidden_state
        return _gather(h, at, one)                                                   # h: (B, L, d)
    # plain path: concatenate the prompt in front of the token embeddings. A prompt that reads its input reads
    # the tokens up to the first picked position only: never the answer tokens it is asked to predict.
    seen = mask if one else mask * (torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) <= at[:, :1])
    P = method.prompt_for(lm, ids, seen)  # (n, d), or (B, n, d) for a prompt that reads the input
    P = P.unsqueeze(0).expand(B, -1, -1) if P.dim() == 2 else P                      # (B, n, d)
    n = P.shape[1]
    emb = torch.cat([P.to(lm.dtype), lm.model.get_input_embeddings()(ids)], dim=1)  # (B, n + L, d)
    full_mask = torch.cat([mask.new_ones(B, n), mask], dim=1)
    h = body(inputs_embeds=emb, attention_mask=full_mask).last_hidden_state         # (B, n + L, d)
    return _gather(h, n + at, one)


def class_logits(lm: LoadedModel, ids, mask, lengths, label_ids: list[int], method=None, kv: KV | None = None,
                 peft_model=None, shared_prefix: bool = True) -> torch.Tensor:
    """Label-word logits at the answer position, (B, C). Never forms full-vocabulary logits (causal LMs)."""
    if lm.is_seq2seq:
        return _seq2seq_logits(lm, ids, mask, label_ids, method, peft_model)
    h = answer_hidden(lm, ids, mask, lengths, method, kv, peft_model, shared_prefix)   # (B, d)
    return label_logits(lm, h, label_ids, peft_model)                                   # (B, C)


def _seq2seq_logits(lm, ids, mask, label_ids, method, peft_model):
    """Encoder-decoder (T5): prompt in front of the encoder input; score the first decoded token."""
    model = peft_model if peft_model is not None else lm.model
    B = ids.shape[0]
    start = torch.full((B, 1), lm.model.config.decoder_start_token_id, dtype=torch.long, device=ids.device)
    if method is None or peft_model is not None:
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=start)
    else:
        P = method.prompt_for(lm, ids, mask)  # (n, d), or (B, n, d) for a prompt that reads the input
        P = P.unsqueeze(0).expand(B, -1, -1) if P.dim() == 2 else P
        emb = torch.cat([P.to(lm.dtype), lm.model.get_input_embeddings()(ids)], dim=1)
        out = model(inputs_embeds=emb, attention_mask=torch.cat([mask.new_ones(B, P.shape[1]), mask], 1),
                    decoder_input_ids=start)
    return out.logits[:, 0, label_ids].float()


# ---------------------------------------------------------------- evaluation

@dataclass
class EvalResult:
    accuracy: float
    probs: torch.Tensor   # (N, C) label probabilities, in the order of the examples
    preds: list[int]


@torch.inference_mode()
def evaluate(lm: LoadedModel, data: Encoded, label_ids: list[int], method=None, peft_model=None,
             batch_size: int = 32, shared_prefix: bool = True, on_progress=None) -> EvalResult:
    """Accuracy over `data`, batches sorted by length (little padding), the prompt's cache computed once.
    on_progress(done, total) is called before the first batch and after each one (it may raise to abort)."""
    assert len(data) > 0, "nothing to evaluate"
    progress = on_progress or (lambda done, total: None)
    progress(0, len(data))
    was_training = [m.training for m in (method,) if m is not None]
    if method is not None:
        method.eval()
    kv = None
    if shared_prefix and uses_shared_prefix(lm, method):
        kv = prefix_kv(lm, method())
    order = sorted(range(len(data)), key=lambda i: len(data.ids[i]))
    probs = torch.empty(len(data), len(label_ids))
    pad = lm.tokenizer.pad_token_id
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        ids, mask, lengths = collate([data.ids[i] for i in idx], pad, lm.device)
        logits = class_logits(lm, ids, mask, lengths, label_ids, method, kv, peft_model, shared_prefix)
        probs[idx] = logits.softmax(-1).cpu()
        progress(min(s + batch_size, len(order)), len(data))
    if method is not None and was_training[0]:
        method.train()
    preds = probs.argmax(-1).tolist()
    acc = sum(int(p == y) for p, y in zip(preds, data.labels)) / len(data)
    return EvalResult(acc, probs, preds)


def loss_on_batch(lm, ids, mask, lengths, labels, label_ids, method=None, peft_model=None, shared_prefix=True):
    """Cross-entropy over the label words (the training objective)."""
    logits = class_logits(lm, ids, mask, lengths, label_ids, method, None, peft_model, shared_prefix)  # (B, C)
    return F.cross_entropy(logits, labels)


# ---------------------------------------------------------------- generation

@torch.inference_mode()
def generate(lm: LoadedModel, text: str, method=None, kv: KV | None = None, max_new_tokens: int = 40,
             temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> str:
    """Continue `text` under a prompt. Pass `kv` (from prefix_kv) to reuse a prompt's cache across calls:
    the shared tensors are never modified, so one cache serves every generation under that prompt."""
    assert max_new_tokens >= 1, "max_new_tokens must be at least 1"
    tok = lm.tokenizer
    ids = torch.tensor([encode(tok, [text], 4096)[0]], device=lm.device)  # (1, L)
    g = torch.Generator(device="cpu").manual_seed(seed)
    if lm.is_seq2seq:
        return _generate_seq2seq(lm, ids, method, max_new_tokens, temperature, top_p, g)
    step = {"input_ids": ids}
    if method is not None and kv is None:
        P = method.prompt_for(lm, ids, torch.ones_like(ids))
        P = P[0] if P.dim() == 3 else P  # (n, d)
        if fast_path.decide(lm).shared_prefix:
            kv = prefix_kv(lm, P)
        else:  # plain path: the prompt's embeddings lead the text, the model keeps its own cache
            emb = lm.model.get_input_embeddings()(ids)
            step = {"inputs_embeds": torch.cat([P.unsqueeze(0).to(emb.dtype), emb], 1)}   # (1, n + L, d)
    cache = broadcast_cache(kv, 1) if kv is not None else None
    past = kv[0][0].shape[-2] if kv is not None else 0
    mask = torch.ones(1, past + next(iter(step.values())).shape[1], dtype=torch.long, device=lm.device)
    out_ids: list[int] = []
    for _ in range(max_new_tokens):
        out = lm.model(**step, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        nxt = _sample(out.logits[0, -1].float(), temperature, top_p, g)
        if nxt == tok.eos_token_id:
            break
        out_ids.append(nxt)
        step = {"input_ids": torch.tensor([[nxt]], device=lm.device)}
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
    return tok.decode(out_ids, skip_special_tokens=True)


def _sample(logits: torch.Tensor, temperature: float, top_p: float, g: torch.Generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = (logits / temperature).softmax(-1).cpu()
    if top_p < 1.0:
        sp, si = probs.sort(descending=True)
        keep = sp.cumsum(0) - sp < top_p
        probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=g))


def _generate_seq2seq(lm, ids, method, max_new_tokens, temperature, top_p, g):
    emb = lm.model.get_input_embeddings()(ids)
    if method is not None:
        P = method.prompt_for(lm, ids, torch.ones_like(ids))
        P = P if P.dim() == 3 else P.unsqueeze(0)  # (1, n, d)
        emb = torch.cat([P.to(emb.dtype), emb], dim=1)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    out = lm.model.generate(inputs_embeds=emb, attention_mask=torch.ones(emb.shape[:2], dtype=torch.long,
                            device=lm.device), max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                            temperature=temperature if temperature > 0 else None, top_p=top_p)
    return lm.tokenizer.decode(out[0], skip_special_tokens=True)
