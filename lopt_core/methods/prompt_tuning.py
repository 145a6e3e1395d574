"""Prompt tuning (Lester et al. 2021): the n x d prompt itself is the parameter."""
from __future__ import annotations

import torch
import torch.nn as nn

from lopt_core.errors import ConfigError
from lopt_core.methods.registry import register
from lopt_core.methods.base import Knob, PromptContext, SoftPrompt, seeded_generator


@register
class PromptTuning(SoftPrompt):
    name = "prompt_tuning"
    label = "Prompt tuning"
    color = "#636EFA"
    symbol = "circle"
    formula_text = "n·d"
    has_rank = False
    reference = True
    sweep_default = True
    default_lr = 1e-2
    vocab_ids = "1000-10000"  # measured best (bench/pt-defaults-2026-11-24.md)
    knobs = (Knob("vocab_ids", str, vocab_ids, "init 'vocab': prompt rows copied from ordinary tokens (no special "
                  "or control tokens) with ids in this range, e.g. 0-5000 or 1000-10000"),)

    def __init__(self, n: int, d: int, init: torch.Tensor | None = None):
        super().__init__(n, d)
        init = torch.zeros(n, d) if init is None else init
        if tuple(init.shape) != (n, d):
            raise ConfigError(f"init prompt must be ({n}, {d}), got {tuple(init.shape)}")
        self.prompt = nn.Parameter(init.detach().clone().float())  # (n, d)

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext) -> "PromptTuning":
        return cls(cfg.n, ctx.d, init_prompt(cfg.init or "vocab", cfg.n, ctx, cfg.init_text,
                                             **cls.knob_values(cfg)))

    @classmethod
    def formula(cls, n, r, d, **_):
        return n * d

    def forward(self, summary=None):
        return self.prompt  # (n, d)


def vocab_range(text: str, vocab_size: int) -> tuple[int, int]:
    """'1000-10000' -> (1000, 10000), clipped to the vocabulary (a vocabulary smaller than the range's start uses
    its own first ids); ConfigError naming the knob when the text is not a range."""
    try:
        lo, hi = (int(x) for x in str(text).split("-"))
    except ValueError:
        raise ConfigError(f"vocab_ids must look like 0-5000 (two whole numbers), got {text!r}") from None
    if not 0 <= lo < hi:
        raise ConfigError(f"vocab_ids must be a range lo-hi with 0 <= lo < hi, got {text!r}")
    if lo >= vocab_size:
        return 0, min(hi - lo, vocab_size)
    return lo, min(hi, vocab_size)


def ordinary_ids(tokenizer, lo: int, hi: int) -> torch.Tensor:
    """Ids in [lo, hi) of ordinary tokens: not special (<|im_start|>, <|endoftext|>, ...), not control
    characters, blanks or bare bytes of a multi-byte character (decoded as U+FFFD), so an initial prompt never
    starts on a token the model treats as structure."""
    if tokenizer is None:  # a stand-in context (parameter counts, shape checks)
        return torch.arange(lo, hi)
    special = set(tokenizer.all_special_ids or [])
    keep = [i for i in range(lo, hi) if i not in special
            and (t := tokenizer.decode([i])).strip() and t.isprintable() and "\ufffd" not in t]
    if not keep:
        raise ConfigError(f"no ordinary tokens among ids {lo}-{hi}")
    return torch.tensor(keep)


def init_prompt(kind: str, n: int, ctx: PromptContext, text: str = "", vocab_ids: str = "1000-10000") -> torch.Tensor:
    """(n, d) starting prompt: sampled vocabulary rows, a text's embeddings (cycled), or random at token scale."""
    g = seeded_generator(ctx.seed, 1)
    E = ctx.embeddings.detach().float()  # (V, d)
    if kind == "vocab":
        # rows of frequent ordinary tokens (low ids in BPE vocabularies), as in Lester et al.
        pool = ordinary_ids(ctx.tokenizer, *vocab_range(vocab_ids, E.shape[0]))
        ids = pool[torch.randint(0, len(pool), (n,), generator=g)]
        return E[ids].clone()
    if kind == "text":
        assert ctx.tokenizer is not None, "init from text needs the tokenizer"
        ids = ctx.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"init_text {text!r} has no tokens")
        ids = torch.tensor([ids[i % len(ids)] for i in range(n)])
        return E[ids].clone()
    if kind == "random":
        x = torch.rand(n, ctx.d, generator=g) * 2 - 1  # U(-1, 1)
        return x * (ctx.token_norm / x.norm(dim=-1, keepdim=True))
    raise ConfigError(f"unknown prompt init {kind!r}; choose vocab, text or random")
