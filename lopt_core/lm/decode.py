"""Batched greedy decoding under a soft prompt, an adapter or no prompt: what a generation task is scored on.

Each example's prompt embeddings lead its own token embeddings (plain concatenation, the reference every fast
path is tested against), rows are left-padded so that every row ends at its last input token, and the model's
own `generate` continues them greedily: the attention mask hides the pads and position ids count from each
row's first real position, so a row decodes what it decodes alone. A row stops at its first token holding a
newline, at EOS, or after max_new_tokens; the answer is the text before the first newline, stripped.
"""
from __future__ import annotations

import functools

import torch

from lopt_core.errors import EngineError
from lopt_core.lm.models import LoadedModel


@functools.lru_cache(maxsize=8)
def stop_ids(tokenizer) -> tuple[int, ...]:
    """EOS and every token whose text holds a newline: any of them ends an answer."""
    eos = tokenizer.eos_token_id
    newline = [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]
    return tuple(dict.fromkeys(([eos] if eos is not None else []) + newline))


def answer_text(tokenizer, new_ids: list[int]) -> str:
    """The answer in generated ids: up to the first stop token, then up to the first newline, stripped."""
    stops = set(stop_ids(tokenizer))
    cut = next((i for i, t in enumerate(new_ids) if t in stops), len(new_ids))
    text = tokenizer.decode(new_ids[: cut + 1], skip_special_tokens=True)
    return text.split("\n", 1)[0].strip()


@torch.inference_mode()
def greedy(lm: LoadedModel, id_lists: list[list[int]], max_new_tokens: int, method=None,
           peft_model=None) -> list[list[int]]:
    """New token ids per row, greedy, each row under the prompt (method) or through the adapter (peft_model)."""
    if lm.is_seq2seq:
        raise EngineError("generation tasks need a causal LM (this model is encoder-decoder)")
    from lopt_core.lm.engine import collate
    B, pad = len(id_lists), lm.tokenizer.pad_token_id
    ids, mask, _ = collate(id_lists, pad, lm.device)                                # right-padded (B, L)
    model = peft_model if peft_model is not None else lm.model
    stops = list(stop_ids(lm.tokenizer))
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops, pad_token_id=pad,
              temperature=None, top_p=None, top_k=None)
    if peft_model is not None:  # the adapter runs inside the model: left-padded ids
        left, lmask = _left([torch.tensor(x, device=lm.device) for x in id_lists], pad)
        out = model.generate(input_ids=left, attention_mask=lmask, **kw)[:, left.shape[1]:]
    else:
        emb = lm.model.get_input_embeddings()(ids)                                 # (B, L, d)
        if method is not None:
            P = method.prompt_for(lm, ids, mask)                                   # (n, d) or (B, n, d)
            P = (P.unsqueeze(0).expand(B, -1, -1) if P.dim() == 2 else P).to(emb.dtype)
        rows = [emb[i, : len(x)] if method is None else torch.cat([P[i], emb[i, : len(x)]])
                for i, x in enumerate(id_lists)]
        left, lmask = _left(rows, 0)                                               # (B, T, d), (B, T)
        out = model.generate(inputs_embeds=left, attention_mask=lmask, **kw)       # new tokens only
    return [_until_stop(row.tolist(), set(stops), pad) for row in out]


def _left(rows: list[torch.Tensor], pad) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad rows of shape (L_i,) or (L_i, d) to the longest: (B, T[, d]) and the mask (B, T)."""
    T = max(r.shape[0] for r in rows)
    out = rows[0].new_full((len(rows), T, *rows[0].shape[1:]), pad)
    mask = torch.zeros(len(rows), T, dtype=torch.long, device=rows[0].device)
    for i, r in enumerate(rows):
        out[i, T - r.shape[0]:] = r
        mask[i, T - r.shape[0]:] = 1
    return out, mask


def _until_stop(ids: list[int], stops: set[int], pad: int) -> list[int]:
    """A row's tokens up to and including its first stop (generate pads finished rows)."""
    for i, t in enumerate(ids):
        if t in stops:
            return ids[: i + 1]
    return ids
