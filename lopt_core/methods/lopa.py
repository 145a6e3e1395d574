"""LoPA (Jain et al., arXiv 2405.15282): an instance-dependent prompt Z = Z_S ⊙ sigmoid(u vᵀ) per input.

Z_S (n, d) is shared by every input; u (n, r) and v (d, r) come from two heads over a frozen sentence encoder's
summary x (h wide) of the input. Built as the official code does it (github.com/jabhinav/
Prompt-Tuning-Strikes-Back-with-LOPA, read in utils/model.py, class LatentPromptAttentionGenerator; its trainer
trainers/lopa.py; the gating in custom_peft/my_peft_cvae_model.py, PeftCvaeModelForCausalLM.forward):
  - encoder: a separate frozen model (codesage-small/base/large or codebert in the paper's runs), run without
    gradients; for codesage its pooled output, L2-normalised. Here: all-MiniLM-L6-v2 offline, pooled and
    normalised as sentence-transformers runs it (mean over tokens, L2), or any hub encoder, or "base-mean"
    (the base model's mean input embedding, LoPT Lab's earlier summary). See encoders.py.
  - heads, one for u and one for v, each Dropout(p) -> Linear(h, h) -> tanh -> Linear(h, n·r | d·r), with
    biases; p = the encoder config's hidden_dropout_prob (0.1 for MiniLM; 0.1 where a config has none).
    The official class takes a hidden width MLP_h but its trainer never sets it, so the heads are h -> h with
    h = the encoder's width: there is no separate hidden-width knob (RunConfig.lopa_hidden is no longer read).
  - init (init_predictor_head): both Linear weights ~ N(0, initializer_range) from the encoder config (0.02),
    the output Linear's bias zero; the first Linear's bias keeps PyTorch's default U(-1/sqrt(h), 1/sqrt(h))
    (drawn here from the run's seed).
  - Z_S: the PEFT prompt-tuning embedding with PromptTuningInit.RANDOM (trainers/lopa.py), i.e. nn.Embedding's
    default N(0, 1) entries. `--init vocab|text|random` still starts Z_S from LoPT Lab's prompt inits instead.
  - gate: sigmoid(u vᵀ) multiplies Z_S elementwise (prompts * latent_attention_weights).
Where LoPT Lab differs: the encoder reads the templated input decoded from the base model's ids (the official
code feeds the encoder its own tokenisation of the task input), and the default encoder is MiniLM, not codesage.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from lopt_core.methods import encoders
from lopt_core.errors import ConfigError
from lopt_core.methods.registry import register
from lopt_core.methods.base import Knob, PromptContext, SoftPrompt, seeded_generator
from lopt_core.methods.prompt_tuning import init_prompt

_SALT = 40


def _head(h: int, d_out: int, dropout: float, std: float, g: torch.Generator) -> nn.Sequential:
    """Dropout -> Linear(h, h) -> tanh -> Linear(h, d_out), initialised as the official init_predictor_head."""
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, d_out))
    dense, out = head[1], head[3]
    with torch.no_grad():
        dense.weight.normal_(0.0, std, generator=g)
        dense.bias.uniform_(-1 / math.sqrt(h), 1 / math.sqrt(h), generator=g)  # PyTorch's default, kept
        out.weight.normal_(0.0, std, generator=g)
        out.bias.zero_()
    return head


@register
class LoPA(SoftPrompt):
    name = "lopa"
    label = "LoPA"
    color = "#FFA15A"
    symbol = "star"
    formula_text = "n·d + 2·h·(h + 1) + (h + 1)·r·(n + d), h = the sentence encoder's width"
    default_lr = 1e-2
    input_dependent = True
    exportable = False
    export_refusal = "its prompt depends on each input"
    knobs = (Knob("lopa_encoder", str, encoders.MINILM,
                  f"the frozen sentence encoder whose summary of each input drives the heads: {encoders.MINILM} "
                  f"(all-MiniLM-L6-v2, offline), {encoders.BASE_MEAN} (the base model's mean input embedding) "
                  f"or a hub id"),
             Knob("lopa_dropout", float, None, "dropout before each head (blank: the encoder config's, 0.1 for "
                  "MiniLM, as the official code)", low=0.0, high=1.0))

    def __init__(self, n: int, d: int, r: int, h: int, encoder: str = encoders.MINILM, dropout: float = 0.1,
                 init_range: float = 0.02, init: torch.Tensor | None = None, seed: int = 0):
        super().__init__(n, d)
        if r < 1 or h < 1:
            raise ConfigError(f"LoPA needs r >= 1 and an encoder width h >= 1, got r={r}, h={h}")
        self.r, self.h, self.encoder = r, h, encoder
        g = seeded_generator(seed, _SALT)
        z = torch.randn(n, d, generator=g) if init is None else init.detach().clone().float()
        self.Z_S = nn.Parameter(z)                                   # (n, d)
        self.u_head = _head(h, n * r, dropout, init_range, g)       # x (B, h) -> u (B, n·r)
        self.v_head = _head(h, d * r, dropout, init_range, g)       # x (B, h) -> v (B, d·r)

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        knobs = cls.knob_values(cfg)
        enc = encoders.spec(knobs["lopa_encoder"], ctx.d)
        dropout = enc.dropout if knobs["lopa_dropout"] is None else knobs["lopa_dropout"]
        init = init_prompt(cfg.init, cfg.n, ctx, cfg.init_text) if cfg.init else None  # None: official N(0, 1)
        return cls(cfg.n, ctx.d, cfg.r, enc.width, encoder=enc.name, dropout=dropout, init_range=enc.init_range,
                   init=init, seed=ctx.seed)

    @classmethod
    def formula(cls, n, r, d, lopa_encoder=encoders.MINILM, **_):
        """h from the encoder's config.json (no weights loaded); base-mean: h = d."""
        h = encoders.width(lopa_encoder, d)
        return n * d + 2 * (h * h + h) + (h + 1) * r * (n + d)

    def prompt_for(self, lm, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One prompt per input, from its encoder's summary of ids/mask (B, L). (B, n, d)"""
        return self(encoders.summary(self.encoder, lm, ids, mask))

    def forward(self, summary=None):
        assert summary is not None and summary.dim() == 2 and summary.shape[1] == self.h, \
            f"LoPA needs a (B, {self.h}) input summary, got {None if summary is None else tuple(summary.shape)}"
        B = summary.shape[0]
        u = self.u_head(summary).view(B, self.n, self.r)       # (B, n, r)
        v = self.v_head(summary).view(B, self.d, self.r)       # (B, d, r)
        gate = torch.sigmoid(u @ v.transpose(1, 2))            # (B, n, d)
        return self.Z_S.unsqueeze(0) * gate                    # (B, n, d)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if any(k.startswith("u_head.0.") for k in state_dict):
            raise ConfigError("this LoPA run was saved by an earlier LoPT Lab (heads of width lopa_hidden over the "
                              "base model's mean embedding); today's LoPA has the official heads: train it again")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
