"""The common interface of every trainable method, PEFT-tuner style.

A soft-prompt method is an nn.Module built from a RunConfig and a PromptContext:
    forward(summary=None) -> (n, d) prompt, or (B, n, d) when the prompt depends on the input (LoPA)
    num_trainable()       -> parameters that receive gradients
    param_groups(lr)      -> the optimiser's groups (a method may train some tensors at a multiple of lr)
    formula(n, r, d)      -> the same count from the method's formula, without building anything
    max_rank(n, d)        -> the largest r the method accepts (the app's r slider stops there)
Frozen random tensors (LoPT-2's X0, ULPT's P) are non-persistent buffers rebuilt from `seed`,
so an artifact stores only what was trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class PromptContext:
    d: int                      # model width
    embeddings: torch.Tensor    # (V, d) the frozen input-embedding table (read-only; for initialisation)
    tokenizer: object = None    # for init from text
    seed: int = 0

    @property
    def token_norm(self) -> float:
        """Mean L2 norm of a real token embedding: the scale a prompt row should start at."""
        return float(self.embeddings.detach().float().norm(dim=-1).mean())


def seeded_generator(seed: int, salt: int) -> torch.Generator:
    """A CPU generator for frozen random tensors, so they can be rebuilt exactly from (seed, salt)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + salt)


RANK_CAP = 64  # beyond this a "low-rank" prompt on these models is no longer low rank: the sliders stop here


class SoftPrompt(nn.Module):
    name: str = ""
    label: str = ""                 # human name for tables and plots
    color: str = "#7F7F7F"          # one colour per method, the same in every plot
    formula_text: str = ""          # the trainable count in words, for readouts
    default_lr: float = 1e-2
    has_rank: bool = True           # False: r plays no part (prompt tuning, prefix tuning)
    reference: bool = False         # True: the full-rank prompt that low-rank methods are read against
    input_dependent: bool = False   # True: forward(summary) gives (B, n, d) and the shared-prefix path is off
    is_peft: bool = False           # True: wraps the model through peft instead of returning a prompt

    def __init__(self, n: int, d: int):
        super().__init__()
        assert n > 0 and d > 0, f"prompt needs n > 0 and d > 0, got n={n}, d={d}"
        self.n, self.d = n, d

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext) -> "SoftPrompt":
        raise NotImplementedError

    @classmethod
    def formula(cls, n: int, r: int, d: int, **model_info) -> int:
        raise NotImplementedError

    @classmethod
    def max_rank(cls, n: int, d: int) -> int:
        """The largest rank r this method takes at prompt length n and model width d, so a form can offer
        only possible ranks. A rank above the width adds nothing; past RANK_CAP it is not low rank any more."""
        return min(d, RANK_CAP)

    def forward(self, summary: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups at base learning rate `lr`; one group unless a method scales some."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def rank_of_prompt(self) -> int:
        """Numerical rank of the materialised prompt (input-independent methods)."""
        with torch.no_grad():
            return int(torch.linalg.matrix_rank(self().float()))
