"""LoPA (arXiv 2405.15282): an instance-dependent prompt.

Z = Z_S * sigmoid(u v^T) per input. Z_S (n, d) is shared; u (n, r) and v (d, r) come from two small
Linear-tanh-Linear heads over a frozen encoder's summary of the input (here: the frozen base model's
mean-pooled input embeddings, computed by the engine and passed in as `summary`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import register
from .base import Knob, PromptContext, SoftPrompt
from .prompt_tuning import init_prompt


def _head(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out))


@register
class LoPA(SoftPrompt):
    name = "lopa"
    label = "LoPA"
    color = "#FFA15A"
    formula_text = "n·d + two small heads"
    default_lr = 1e-2
    input_dependent = True
    exportable = False
    export_refusal = "its prompt depends on each input"
    knobs = (Knob("lopa_hidden", int, 16, "the hidden width of its two heads (Linear-tanh-Linear)", low=1, high=4096,
                  field=True),)

    def __init__(self, n: int, d: int, r: int, hidden: int = 16, init: torch.Tensor | None = None):
        super().__init__(n, d)
        if r < 1 or hidden < 1:
            raise ConfigError(f"LoPA needs r >= 1 and hidden >= 1, got r={r}, hidden={hidden}")
        self.r = r
        self.Z_S = nn.Parameter(torch.zeros(n, d) if init is None else init.detach().clone().float())  # (n, d)
        self.u_head = _head(d, hidden, n * r)
        self.v_head = _head(d, hidden, d * r)

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, hidden=cls.knob_values(cfg)["lopa_hidden"],
                   init=init_prompt(cfg.init or "vocab", cfg.n, ctx, cfg.init_text))

    @classmethod
    def formula(cls, n, r, d, lopa_hidden=16, hidden=None, **_):
        """Knobs come by knob name (lopa_hidden); `hidden` is the older keyword runs.count_params still passes."""
        hidden = lopa_hidden if hidden is None else hidden
        return n * d + (d * hidden + hidden + hidden * n * r + n * r) + (d * hidden + hidden + hidden * d * r + d * r)

    def forward(self, summary=None):
        assert summary is not None and summary.dim() == 2 and summary.shape[1] == self.d, \
            f"LoPA needs a (B, {self.d}) input summary, got {None if summary is None else tuple(summary.shape)}"
        B = summary.shape[0]
        u = self.u_head(summary).view(B, self.n, self.r)       # (B, n, r)
        v = self.v_head(summary).view(B, self.d, self.r)       # (B, d, r)
        gate = torch.sigmoid(u @ v.transpose(1, 2))            # (B, n, d)
        return self.Z_S.unsqueeze(0) * gate                    # (B, n, d)
