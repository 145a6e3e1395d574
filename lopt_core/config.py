"""RunConfig: every knob of one training run, with validation that names the problem."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from lopt_core import choices
from lopt_core.choices import DataSource, Device, Init, Kind, LrSchedule, Precision
from lopt_core.errors import ConfigError  # noqa: F401  (lopt_core.config.ConfigError, as many modules import it)
from lopt_core.methods import METHODS, check_knobs, get_method, reference_method, registry

MAX_SEED = 2**32 - 1  # a seed above this overflows the generators it seeds (NumPy's, torch's derived ones)

# fields older stores and artifacts hold that are now method knobs (moved into method_knobs on load) or gone
MOVED_TO_KNOBS = {"activation": "elu"}        # LoPT-2's activation: kept when it is not the default
DROPPED = ("lopa_hidden",)                     # no longer read by LoPA (its heads take the encoder's width)


@dataclass
class RunConfig:
    # what to train
    model: str = "smollm2-135m"      # offline default alias, a hub id, or a local folder
    task: str = "sst2"               # a registered task, or "file" with data_file set
    method: str = field(default_factory=reference_method)  # a registered method (lopt_core.methods.METHODS)
    n: int = 20                      # prompt length (virtual tokens)
    r: int = 5                       # rank (low-rank methods, LoRA)
    # optimisation
    steps: int = 150
    batch_size: int = 8
    lr: float | None = None          # None: the method's measured default
    warmup: float = 0.1              # fraction of steps with linear warm-up
    lr_schedule: str = LrSchedule.LINEAR.value  # after warm-up: linear decay to 0, or constant (choices.LrSchedule)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0                    # initialisation and batch order; never the data split
    # evaluation
    eval_every: int = 50             # evaluate on the held-out set every K steps (0: only at the end)
    eval_size: int = 300             # test examples used for accuracy (0: all)
    eval_batch_size: int = 32
    # method details
    init: str | None = None          # prompt init of the methods that start from a prompt (choices.Init)
    init_text: str = ""
    method_knobs: dict = field(default_factory=dict)  # each method's own knobs by name (Knob on the method class)
    # data
    data_source: str = DataSource.AUTO.value  # offline pack when installed, else the hub (choices.DataSource)
    split_seed: int = 0              # the task's fixed train/test split: every run of a task sees the same test set
    data_file: str | None = None     # user CSV/JSONL when task == "file"
    text_column: str = "text"
    text_b_column: str | None = None
    label_column: str = "label"
    label_words: list[str] | None = None  # override the task's verbalizer
    kind: str | None = None          # a file's task kind (choices.Kind; None: classification); built-ins have their own
    target_column: str | None = None  # generation file: the answer column (a JSONL list: several gold answers)
    choice_columns: list[str] | None = None  # multiple-choice file: the choice columns; label_column names the right one
    max_length: int = 256            # input tokens kept per example (left-truncated, keeps the answer cue)
    # runtime
    device: str = Device.AUTO.value  # choices.Device
    precision: str = Precision.AUTO.value  # the frozen model's dtype: auto (measured here) | fp32 | bf16
    shared_prefix: bool = True       # shared prompt keys/values (exact; causal LMs, input-independent prompts)

    def validate(self) -> "RunConfig":
        def need(ok: bool, msg: str):
            if not ok:
                raise ConfigError(msg)

        need(isinstance(self.model, str) and self.model.strip() != "", "model must be a non-empty name or folder")
        need(self.method in METHODS, f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        for name, lo, hi in [("n", 1, 512), ("r", 1, 1024), ("steps", 1, 100_000), ("batch_size", 1, 1024),
                             ("eval_batch_size", 1, 4096), ("max_length", 8, 32_768)]:
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an integer, got {v!r}")
            need(lo <= v <= hi, f"{name} must be between {lo} and {hi}, got {v}")
        for name in ("eval_every", "eval_size", "seed", "split_seed"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                 f"{name} must be a non-negative integer, got {v!r}")
        for name in ("seed", "split_seed"):
            need(getattr(self, name) <= MAX_SEED, f"{name} must be at most {MAX_SEED:,}, got {getattr(self, name):,}")
        if self.lr is not None:
            need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10,
                 f"lr must be a positive number no larger than 10, got {self.lr!r}")
        need(0 <= self.warmup < 1, f"warmup is a fraction of the steps in [0, 1), got {self.warmup!r}")
        choices.check(LrSchedule, self.lr_schedule, "lr_schedule")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        choices.check(Init, self.init, "init", optional=True)
        need(self.init != Init.TEXT or self.init_text.strip() != "", "init='text' needs init_text")
        choices.check(Device, self.device, "device")
        choices.check(Precision, self.precision, "precision")
        choices.check(DataSource, self.data_source, "data_source")
        need(self.task != "file" or bool(self.data_file), "task 'file' needs data_file (a CSV or JSONL path)")
        choices.check(Kind, self.kind, "kind", optional=True)
        if self.choice_columns is not None:
            self.choice_columns = [str(c).strip() for c in self.choice_columns]
        if self.task == "file":
            kind = self.kind or Kind.CLASSIFICATION
            need(kind != Kind.GENERATION or bool(self.target_column),
                 "a generation file needs target_column (--target-column): the column holding each answer")
            need(kind != Kind.MULTIPLE_CHOICE or len(self.choice_columns or []) >= 2,
                 "a multiple-choice file needs at least two choice_columns (--choice-columns a,b,c,d)")
        need(self.kind in (None, Kind.CLASSIFICATION) or not self.label_words,
             f"label_words are for classification; a {self.kind.replace('_', '-') if self.kind else ''} task "
             f"scores its answers directly")
        if self.label_words is not None:
            need(len(self.label_words) >= 2 and all(isinstance(w, str) and w.strip() for w in self.label_words),
                 "label_words needs at least two non-empty words")
        check_knobs(self)
        return self

    def resolved_lr(self) -> float:
        return float(self.lr) if self.lr is not None else get_method(self.method).default_lr

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """A config from its dict, also one an older LoPT Lab stored (see MOVED_TO_KNOBS and DROPPED)."""
        d = migrate(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)


registry.reserve(f.name for f in dataclasses.fields(RunConfig))  # a knob named like a field could not be set


def migrate(d: dict) -> dict:
    """An older stored config in today's shape: method knobs that were fields move into method_knobs."""
    d = dict(d)
    for name in DROPPED:
        d.pop(name, None)
    for name, default in MOVED_TO_KNOBS.items():
        if name in d:
            value = d.pop(name)
            if value != default:
                d["method_knobs"] = {name: value} | dict(d.get("method_knobs") or {})
    return d
