"""ULPT (arXiv 2502.04501): ultra-low-dimensional prompt tuning.

X = (Z P) * s + b,  Z (n, r) trained, P (r, d) random and frozen (rebuilt from a seed, Xavier-uniform),
s, b in R^d trained: n r + 2 d trainable.

Chosen by measurement on SST-2 (README): s starts at 1 and b at the mean token embedding (the paper starts b
at 0; starting at the centre of the token cloud puts every prompt row among real tokens), and Z, whose
entries are O(1) while s and b live at the embedding scale (~0.1), trains at 30x the base learning rate.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lopt_core.errors import ConfigError
from lopt_core.methods.registry import register
from lopt_core.methods.base import Knob, PromptContext, SoftPrompt, seeded_generator


@register
class ULPT(SoftPrompt):
    name = "ulpt"
    label = "ULPT"
    color = "#AB63FA"
    symbol = "triangle-up"
    formula_text = "n·r + 2·d"
    default_lr = 1e-2
    sweep_default = True
    z_lr_scale = 30.0  # Z's learning rate, as a multiple of the run's (which s and b train at)
    knobs = (Knob("z_lr_scale", float, z_lr_scale, "the learning-rate split: Z trains at this multiple of the "
                  "run's learning rate, s and b at the run's own (measured on SST-2, README)", low=0.01, high=1000.0),)

    def __init__(self, n: int, d: int, r: int, seed: int = 0, shift: torch.Tensor | None = None,
                 z_lr_scale: float = z_lr_scale):
        super().__init__(n, d)
        if not 1 <= r <= d:
            raise ConfigError(f"ULPT rank r must be in [1, d] = [1, {d}], got {r}")
        self.knobs[0].check(z_lr_scale)
        self.seed, self.z_lr_scale = seed, float(z_lr_scale)
        self.register_buffer("P", self._make_projection(r, d, seed), persistent=False)  # (r, d) frozen
        self.Z = nn.Parameter(torch.randn(n, r, generator=seeded_generator(seed, 31)))  # (n, r)
        self.s = nn.Parameter(torch.ones(d))   # (d,)
        if shift is not None and tuple(shift.shape) != (d,):
            raise ConfigError(f"ULPT shift must have shape ({d},), got {tuple(shift.shape)}")
        self.b = nn.Parameter(torch.zeros(d) if shift is None else shift.detach().float().clone())  # (d,)

    @staticmethod
    def _make_projection(r, d, seed):
        bound = (6.0 / (r + d)) ** 0.5  # Xavier-uniform
        return (torch.rand(r, d, generator=seeded_generator(seed, 30)) * 2 - 1) * bound

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, seed=ctx.seed, shift=ctx.embeddings.detach().float().mean(0),  # (d,)
                   **cls.knob_values(cfg))

    @classmethod
    def formula(cls, n, r, d, **_):
        return n * r + 2 * d

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [self.s, self.b], "lr": lr}, {"params": [self.Z], "lr": lr * self.z_lr_scale}]

    def forward(self, summary=None):
        return (self.Z @ self.P) * self.s + self.b  # (n, r) @ (r, d) -> (n, d), scaled and shifted per dim
