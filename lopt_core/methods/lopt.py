"""LoPT (Guo et al. 2024, arXiv 2406.19486): low-rank soft prompts.

LoPT-1: X = U V                  U (n, r), V (r, d)               r(n + d) trainable
LoPT-2: X = act(X0 U) V          X0 (n, d) frozen from seed, U (d, r), V (r, d)   2rd trainable
Factors start uniform random, scaled so the first prompt's rows have the norm of real token embeddings.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lopt_core.errors import ConfigError
from lopt_core.methods.registry import register
from lopt_core.methods.base import Knob, PromptContext, SoftPrompt, seeded_generator

ACTIVATIONS = {"elu": F.elu, "relu": F.relu, "gelu": F.gelu}


def _uniform(shape, g: torch.Generator, bound: float = 1.0) -> torch.Tensor:
    return (torch.rand(*shape, generator=g) * 2 - 1) * bound


def _rescale(X: torch.Tensor, target_norm: float) -> float:
    """Factor that brings X's mean row norm to target_norm."""
    return target_norm / float(X.norm(dim=-1).mean().clamp_min(1e-8))


@register
class LoPT1(SoftPrompt):
    name = "lopt1"
    label = "LoPT-1"
    color = "#EF553B"
    symbol = "square"
    formula_text = "r·(n + d)"
    default_lr = 3e-2
    default = True
    sweep_default = True

    def __init__(self, n: int, d: int, r: int, seed: int = 0, token_norm: float = 1.0):
        super().__init__(n, d)
        if not 1 <= r <= min(n, d):
            raise ConfigError(f"LoPT-1 rank r must be in [1, min(n, d)] = [1, {min(n, d)}], got {r} "
                              f"(n={n}, d={d}: U is n x r, so r <= n)")
        g = seeded_generator(seed, 11)
        U, V = _uniform((n, r), g), _uniform((r, d), g)
        c = _rescale(U @ V, token_norm) ** 0.5  # split the scale evenly between the factors
        self.U = nn.Parameter(U * c)  # (n, r)
        self.V = nn.Parameter(V * c)  # (r, d)

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, seed=ctx.seed, token_norm=ctx.token_norm)

    @classmethod
    def formula(cls, n, r, d, **_):
        return r * (n + d)

    @classmethod
    def max_rank(cls, n, d):
        """U is (n, r) and V is (r, d): a rank above min(n, d) cannot exist (the check in __init__)."""
        return min(n, d)

    def forward(self, summary=None):
        return self.U @ self.V  # (n, r) @ (r, d) -> (n, d)


@register
class LoPT2(SoftPrompt):
    name = "lopt2"
    label = "LoPT-2"
    color = "#00CC96"
    symbol = "diamond"
    formula_text = "2·r·d"
    default_lr = 3e-2
    sweep_default = True
    knobs = (Knob("activation", str, "elu", "the nonlinearity in X = act(X0 U) V", choices=tuple(ACTIVATIONS)),)

    def __init__(self, n: int, d: int, r: int, activation: str = "elu", seed: int = 0, token_norm: float = 1.0):
        super().__init__(n, d)
        if not 1 <= r <= d:
            raise ConfigError(f"LoPT-2 rank r must be in [1, d] = [1, {d}], got {r}")
        self.knobs[0].check(activation)
        self.activation, self.seed, self.token_norm = activation, seed, token_norm
        # X0: fixed random input, rows at token scale; rebuilt from the seed, never saved
        self.register_buffer("X0", self._make_x0(n, d, seed, token_norm), persistent=False)  # (n, d)
        g = seeded_generator(seed, 21)
        U = _uniform((d, r), g, bound=3 ** 0.5 / token_norm)  # X0 U has unit-variance entries
        V = _uniform((r, d), g)
        V = V * _rescale(ACTIVATIONS[activation](self.X0 @ U) @ V, token_norm)
        self.U = nn.Parameter(U)  # (d, r)
        self.V = nn.Parameter(V)  # (r, d)

    @staticmethod
    def _make_x0(n, d, seed, token_norm):
        x = torch.randn(n, d, generator=seeded_generator(seed, 20))
        return x * (token_norm / x.norm(dim=-1, keepdim=True))

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, **cls.knob_values(cfg), seed=ctx.seed, token_norm=ctx.token_norm)

    @classmethod
    def formula(cls, n, r, d, **_):
        return 2 * r * d

    def forward(self, summary=None):
        h = ACTIVATIONS[self.activation](self.X0 @ self.U)  # (n, d) @ (d, r) -> (n, r)
        return h @ self.V                                   # (n, r) @ (r, d) -> (n, d)
