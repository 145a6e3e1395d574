"""The common interface of every trainable method, PEFT-tuner style.

A soft-prompt method is an nn.Module built from a RunConfig and a PromptContext:
    forward(summary=None) -> (n, d) prompt, or (B, n, d) when the prompt depends on the input (LoPA)
    num_trainable()       -> parameters that receive gradients
    param_groups(lr)      -> the optimiser's groups (a method may train some tensors at a multiple of lr)
    formula(n, r, d)      -> the same count from the method's formula, without building anything
    max_rank(n, d)        -> the largest r the method accepts (the app's r slider stops there)
Every other fact about a method (label, colour, formula text, rank, exportability, its own knobs, defaults) is a
class attribute here, so the CLI, the app, the plots and the export read them and name no method themselves.
Frozen random tensors (LoPT-2's X0, ULPT's P) are non-persistent buffers rebuilt from `seed`,
so an artifact stores only what was trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import ConfigError


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


@dataclass(frozen=True)
class Knob:
    """A setting of one method only (LoPT-2's activation, LoPA's hidden width), declared on its class.

    The CLI offers it as --<name>; RunConfig.validate checks values with `check`. `field=True`: the value is
    RunConfig's own field of that name (knobs older than this registry, kept so stored runs read as before);
    otherwise it lives in RunConfig.method_knobs[name], so a new method's knob needs no change outside its file."""
    name: str
    type: type                  # int, float or str
    default: object
    help: str
    choices: tuple = ()         # the allowed values, when only some are
    low: float | None = None    # inclusive bounds for numbers
    high: float | None = None
    field: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value) -> None:
        """ConfigError naming the knob unless `value` is one it takes (None only where None is the default)."""
        if value is None and self.default is None:
            return
        if self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
            kind = "a number"
        else:
            ok, kind = isinstance(value, self.type) and not isinstance(value, bool), \
                {int: "an integer", str: "a string"}.get(self.type, self.type.__name__)
        if not ok:
            raise ConfigError(f"{self.name} must be {kind}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        lo, hi = self.low, self.high
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise ConfigError(f"{self.name} must be between {lo} and {hi}, got {value}")
        if lo is not None and hi is None and value < lo:
            raise ConfigError(f"{self.name} must be at least {lo}, got {value}")

    def describe(self) -> dict:
        return {"name": self.name, "flag": self.flag, "type": self.type.__name__, "default": self.default,
                "help": self.help, "choices": list(self.choices), "low": self.low, "high": self.high}


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
    exportable: bool = True         # the trained (n, d) prompt can be written as a PEFT prompt-tuning adapter
    export_refusal: str = ""        # why not, when exportable is False ("its prompt depends on each input")
    default: bool = False           # True on one method: the one a new Train form starts with
    sweep_default: bool = False     # ticked in a new sweep
    knobs: tuple[Knob, ...] = ()    # this method's own settings (CLI --<name>, RunConfig.validate)

    def __init__(self, n: int, d: int):
        super().__init__()
        if not (n > 0 and d > 0):
            raise ConfigError(f"prompt needs n > 0 and d > 0, got n={n}, d={d}")
        self.n, self.d = n, d

    @classmethod
    def knob_values(cls, cfg) -> dict:
        """This method's knobs as set in RunConfig `cfg` (their defaults where unset), by knob name."""
        extra = getattr(cfg, "method_knobs", None) or {}
        return {k.name: getattr(cfg, k.name) if k.field else extra.get(k.name, k.default) for k in cls.knobs}

    @classmethod
    def facts(cls) -> dict:
        """Everything the registry knows about the method, as plain data (the CLI's `methods --json`)."""
        return {"name": cls.name, "label": cls.label, "color": cls.color, "formula": cls.formula_text,
                "has_rank": cls.has_rank, "input_dependent": cls.input_dependent, "exportable": cls.exportable,
                "export_refusal": cls.export_refusal or None, "reference": cls.reference, "default_lr": cls.default_lr,
                "peft": cls.is_peft, "knobs": [k.describe() for k in cls.knobs]}

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
