"""Prompt tuning (Lester et al. 2021): the n x d prompt itself is the parameter."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import register
from .base import PromptContext, SoftPrompt, seeded_generator


@register
class PromptTuning(SoftPrompt):
    name = "prompt_tuning"
    label = "Prompt tuning"
    color = "#636EFA"
    formula_text = "n·d"
    has_rank = False
    reference = True
    sweep_default = True
    default_lr = 1e-2

    def __init__(self, n: int, d: int, init: torch.Tensor | None = None):
        super().__init__(n, d)
        init = torch.zeros(n, d) if init is None else init
        if tuple(init.shape) != (n, d):
            raise ConfigError(f"init prompt must be ({n}, {d}), got {tuple(init.shape)}")
        self.prompt = nn.Parameter(init.detach().clone().float())  # (n, d)

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext) -> "PromptTuning":
        return cls(cfg.n, ctx.d, init_prompt(cfg.init or "vocab", cfg.n, ctx, cfg.init_text))

    @classmethod
    def formula(cls, n, r, d, **_):
        return n * d

    def forward(self, summary=None):
        return self.prompt  # (n, d)


def init_prompt(kind: str, n: int, ctx: PromptContext, text: str = "") -> torch.Tensor:
    """(n, d) starting prompt: sampled vocabulary rows, a text's embeddings (cycled), or random at token scale."""
    g = seeded_generator(ctx.seed, 1)
    E = ctx.embeddings.detach().float()  # (V, d)
    if kind == "vocab":
        # sample from the first 5000 ids (frequent tokens in BPE vocabularies), as in Lester et al.
        ids = torch.randint(0, min(5000, E.shape[0]), (n,), generator=g)
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
