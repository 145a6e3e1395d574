"""The common interface of every trainable method, PEFT-tuner style.

Every registered method is a TuningMethod: an nn.Module built from a RunConfig and a PromptContext whose facts
(label, colour, formula text, rank, exportability, its own knobs, defaults) are class attributes, so the CLI, the
app, the plots and the export read them and name no method themselves. Its calls, the same for every method:
    formula(n, r, d)       -> the trainable count from the method's formula, without building anything
    max_rank(n, d)         -> the largest r the method accepts (the app's r slider stops there)
    attached(lm)           -> context manager: the method on the loaded model, the shared base model given back
    trainable_parameters() / num_trainable() / param_groups(lr)   what receives gradients (at which lr)
    scoring_args()         -> the engine's `method=` / `peft_model=` arguments that score through it
    save(folder, cfg) / load(folder, lm)   its trained tensors in a run's artifact folder
Two kinds sit behind it:
    SoftPrompt    produces a prompt: forward(summary=None) -> (n, d), or (B, n, d) when it depends on the input
    ModelAdapter  changes the model (LoRA, prefix tuning): attach(lm) puts it into lm.model, detach(lm) takes it out
The fact `changes_model` tells them apart for code that only reads facts.
Frozen random tensors (LoPT-2's X0, ULPT's P) are non-persistent buffers rebuilt from `seed`,
so an artifact stores only what was trained.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from lopt_core.errors import ArtifactMismatch, ConfigError


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

    The CLI offers it as --<name>; RunConfig.validate checks values with `check`. Its value lives in
    RunConfig.method_knobs[name], so a new method's knob needs no change outside its file."""
    name: str
    type: type                  # int, float or str
    default: object
    help: str
    choices: tuple = ()         # the allowed values, when only some are
    low: float | None = None    # inclusive bounds for numbers
    high: float | None = None

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


PROMPT_FILE = "prompt.safetensors"     # a SoftPrompt's file in a run's artifact folder
ADAPTER_FILE = "adapter.safetensors"   # a ModelAdapter's own parameters (peft baselines: peft's folder instead)

RANK_CAP = 64  # beyond this a "low-rank" prompt on these models is no longer low rank: the sliders stop here


class TuningMethod(nn.Module):
    """What every registered method is: its facts, its formula, and the calls a run makes on it."""
    name: str = ""
    label: str = ""                 # human name for tables and plots
    color: str = "#7F7F7F"          # one colour per method, the same in every plot
    symbol: str = "circle"          # one plotly marker per method, so methods differ in shape as well as colour
    formula_text: str = ""          # the trainable count in words, for readouts
    default_lr: float = 1e-2
    has_rank: bool = True           # False: r plays no part (prompt tuning, prefix tuning)
    reference: bool = False         # True: the full-rank prompt that low-rank methods are read against
    input_dependent: bool = False   # True: forward(summary) gives (B, n, d) and the shared-prefix path is off
    changes_model: bool = False     # True: a ModelAdapter (changes the model's layers); no prompt matrix
    exportable: bool = True         # the trained (n, d) prompt can be written as a PEFT prompt-tuning adapter
    export_refusal: str = ""        # why not, when exportable is False ("its prompt depends on each input")
    default: bool = False           # True on one method: the one a new Train form starts with
    sweep_default: bool = False     # ticked in a new sweep
    knobs: tuple[Knob, ...] = ()    # this method's own settings (CLI --<name>, RunConfig.validate)

    @classmethod
    def knob_values(cls, cfg) -> dict:
        """This method's knobs as set in RunConfig `cfg` (their defaults where unset), by knob name."""
        extra = getattr(cfg, "method_knobs", None) or {}
        return {k.name: extra.get(k.name, k.default) for k in cls.knobs}

    @classmethod
    def facts(cls) -> dict:
        """Everything the registry knows about the method, as plain data (the CLI's `methods --json`)."""
        return {"name": cls.name, "label": cls.label, "color": cls.color, "symbol": cls.symbol, "formula": cls.formula_text,
                "has_rank": cls.has_rank, "input_dependent": cls.input_dependent, "exportable": cls.exportable,
                "export_refusal": cls.export_refusal or None, "reference": cls.reference, "default_lr": cls.default_lr,
                "changes_model": cls.changes_model, "knobs": [k.describe() for k in cls.knobs]}

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext) -> "TuningMethod":
        raise NotImplementedError

    @classmethod
    def formula(cls, n: int, r: int, d: int, **model_info) -> int:
        raise NotImplementedError

    @classmethod
    def max_rank(cls, n: int, d: int) -> int:
        """The largest rank r this method takes at prompt length n and model width d, so a form can offer
        only possible ranks. A rank above the width adds nothing; past RANK_CAP it is not low rank any more."""
        return min(d, RANK_CAP)

    def trainable_parameters(self) -> list[torch.Tensor]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups at base learning rate `lr`; one group unless a method scales some."""
        return [{"params": self.trainable_parameters(), "lr": lr}]

    def attach(self, lm) -> None:
        """Make the method ready to score on loaded model `lm` (its tensors on lm's device, its layers in lm.model)."""
        raise NotImplementedError

    def detach(self, lm) -> None:
        """Undo attach: lm.model is the shared base model again."""
        raise NotImplementedError

    @contextmanager
    def attached(self, lm):
        """`with method.attached(lm):` the method on lm for the block; the base model given back however it ends."""
        self.attach(lm)
        try:
            yield self
        finally:
            self.detach(lm)

    def scoring_args(self) -> dict:
        """engine.evaluate / loss_on_batch keyword arguments that score through this method: method=, peft_model=."""
        raise NotImplementedError

    def save(self, folder: Path, cfg) -> None:
        """Write the trained tensors into the artifact folder `folder` (run.json is the caller's)."""
        raise NotImplementedError

    def load(self, folder: Path, lm) -> "TuningMethod":
        """Read what save wrote (for a loaded model `lm`); returns self, ready for attached(lm)."""
        raise NotImplementedError


class SoftPrompt(TuningMethod):
    """A method that produces a prompt in front of the input; the model itself is left as it is."""

    def __init__(self, n: int, d: int):
        super().__init__()
        if not (n > 0 and d > 0):
            raise ConfigError(f"prompt needs n > 0 and d > 0, got n={n}, d={d}")
        self.n, self.d = n, d

    def forward(self, summary: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def attach(self, lm) -> None:
        self.to(lm.device)

    def detach(self, lm) -> None:
        """Nothing to give back: a prompt never touches the model."""

    def prompt_for(self, lm, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The prompt for a batch of inputs ids/mask (B, L): (n, d) for an input-independent prompt; a prompt
        that reads its input (input_dependent) overrides this and returns (B, n, d)."""
        return self()

    def scoring_args(self) -> dict:
        return {"method": self, "peft_model": None}

    def save(self, folder: Path, cfg) -> None:
        """PROMPT_FILE: the trained tensors and, for an input-independent prompt, the materialised (n, d) one."""
        from safetensors.torch import save_file
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        if not self.input_dependent:
            with torch.no_grad():
                tensors["prompt"] = self().detach().float().cpu().contiguous()  # (n, d)
        save_file(tensors, str(Path(folder) / PROMPT_FILE),
                  metadata={"method": cfg.method, "n": str(cfg.n), "r": str(cfg.r)})

    def load(self, folder: Path, lm) -> "SoftPrompt":
        """The saved tensors, checked against the saved materialised prompt; on lm's device, in eval mode."""
        from safetensors.torch import load_file
        tensors = load_file(str(Path(folder) / PROMPT_FILE))
        wanted = self.state_dict().keys()  # "prompt" is also prompt tuning's own parameter name
        self.load_state_dict({k: tensors[k] for k in wanted if k in tensors}, strict=True)
        if "prompt" in tensors and not self.input_dependent:
            check_rebuilt(folder, self, tensors["prompt"])
        return self.to(lm.device).eval()

    def rank_of_prompt(self) -> int:
        """Numerical rank of the materialised prompt (input-independent methods)."""
        with torch.no_grad():
            return int(torch.linalg.matrix_rank(self().float()))


class ModelAdapter(TuningMethod):
    """A method that changes the model instead of producing a prompt (LoRA, prefix tuning).

    attach(lm) puts the adapter into lm's model and sets `adapted_model`: the model the engine runs instead of
    lm.model (it takes input_ids / attention_mask like a transformers model). detach(lm) takes it out again and
    leaves lm.model the base model. A subclass writes attach and detach; its trained tensors are its own
    parameters (saved to ADAPTER_FILE) unless it overrides trainable_parameters, save and load."""
    changes_model = True
    exportable = False
    export_refusal = "it is not a prompt in front of the input"

    def __init__(self):
        super().__init__()
        self.set_adapted(None)

    def set_adapted(self, model) -> None:
        """Record the model attach made (None: detached), kept out of nn.Module registration: it holds the
        whole base model, which must never become this method's parameters."""
        self.__dict__["adapted_model"] = model

    def scoring_args(self) -> dict:
        if self.adapted_model is None:
            raise RuntimeError(f"{self.name}: attach(lm) first; an adapter scores through the model it changed")
        return {"method": None, "peft_model": self.adapted_model}

    def save(self, folder: Path, cfg) -> None:
        from safetensors.torch import save_file
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(Path(folder) / ADAPTER_FILE), metadata={"method": cfg.method})

    def load(self, folder: Path, lm) -> "ModelAdapter":
        from safetensors.torch import load_file
        self.load_state_dict(load_file(str(Path(folder) / ADAPTER_FILE)), strict=True)
        return self.to(lm.device).eval()


def check_rebuilt(folder: Path, method, saved: torch.Tensor, tol: float = 1e-5) -> None:
    """The prompt rebuilt from the saved factors and the seeded frozen tensors must equal the materialised prompt
    saved at the end of training; otherwise (another version's seeding, an edited file) refuse to use it."""
    with torch.no_grad():
        rebuilt = method().detach().float().cpu()                      # (n, d)
    if rebuilt.shape != saved.shape:
        raise ArtifactMismatch(f"{Path(folder).name}: the rebuilt prompt has shape {tuple(rebuilt.shape)} but the "
                               f"saved one {tuple(saved.shape)}; refusing to use a prompt it was not trained to")
    err = (rebuilt - saved.float()).abs().max().item()
    scale = max(saved.abs().max().item(), 1e-12)
    if err > tol * max(1.0, scale):
        raise ArtifactMismatch(f"{Path(folder).name}: the prompt rebuilt from its factors and seeded frozen tensors "
                               f"differs from the saved prompt by {err:.3g} (max |x| {scale:.3g}); it was saved by "
                               f"another version or edited. Refusing to use a prompt it was not trained to.")
