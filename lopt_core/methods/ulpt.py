"""ULPT (arXiv 2502.04501): ultra-low-dimensional prompt tuning.

X = (Z P) * s + b,  Z (n, r) trained, P (r, d) random and frozen (rebuilt from a seed, Xavier-uniform),
s, b in R^d trained (s = 1, b = 0 at the start): n r + 2 d trainable.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register
from .base import PromptContext, SoftPrompt, seeded_generator


@register
class ULPT(SoftPrompt):
    name = "ulpt"
    label = "ULPT"
    default_lr = 3e-2

    def __init__(self, n: int, d: int, r: int, seed: int = 0):
        super().__init__(n, d)
        assert 1 <= r <= d, f"ULPT rank r must be in [1, d] = [1, {d}], got {r}"
        self.seed = seed
        self.register_buffer("P", self._make_projection(r, d, seed), persistent=False)  # (r, d) frozen
        self.Z = nn.Parameter(torch.randn(n, r, generator=seeded_generator(seed, 31)))  # (n, r)
        self.s = nn.Parameter(torch.ones(d))   # (d,)
        self.b = nn.Parameter(torch.zeros(d))  # (d,)

    @staticmethod
    def _make_projection(r, d, seed):
        bound = (6.0 / (r + d)) ** 0.5  # Xavier-uniform
        return (torch.rand(r, d, generator=seeded_generator(seed, 30)) * 2 - 1) * bound

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, seed=ctx.seed)

    @classmethod
    def formula(cls, n, r, d, **_):
        return n * r + 2 * d

    def forward(self, summary=None):
        return (self.Z @ self.P) * self.s + self.b  # (n, r) @ (r, d) -> (n, d), scaled and shifted per dim
