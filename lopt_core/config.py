"""RunConfig: every knob of one training run, with validation that names the problem."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from .errors import ConfigError  # noqa: F401  (lopt_core.config.ConfigError, as everywhere imports it)


@dataclass
class RunConfig:
    # what to train
    model: str = "smollm2-135m"      # offline default alias, a hub id, or a local folder
    task: str = "sst2"               # a registered task, or "file" with data_file set
    method: str = "prompt_tuning"    # a registered method (lopt_core.methods.METHODS); this one is the reference
    n: int = 20                      # prompt length (virtual tokens)
    r: int = 5                       # rank (low-rank methods, LoRA)
    # optimisation
    steps: int = 150
    batch_size: int = 8
    lr: float | None = None          # None: the method's measured default
    warmup: float = 0.1              # fraction of steps with linear warm-up
    lr_schedule: str = "linear"      # after warm-up: "linear" decay to 0, or "constant"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0                    # initialisation and batch order; never the data split
    # evaluation
    eval_every: int = 50             # evaluate on the held-out set every K steps (0: only at the end)
    eval_size: int = 300             # test examples used for accuracy (0: all)
    eval_batch_size: int = 32
    # method details
    init: str | None = None          # prompt init of the methods that start from a prompt: "vocab" | "text" | "random"
    init_text: str = ""
    # two methods' knobs kept as fields of their own (stored runs have them); what they mean and which values
    # they take is declared on the method (methods/*.py, Knob(..., field=True)) and checked there
    activation: str = "elu"
    lopa_hidden: int = 16
    method_knobs: dict = field(default_factory=dict)  # every other method knob by name (Knob on the method class)
    # data
    data_source: str = "auto"        # auto: offline pack when installed, else the hub | offline | hub
    split_seed: int = 0              # the task's fixed train/test split: every run of a task sees the same test set
    data_file: str | None = None     # user CSV/JSONL when task == "file"
    text_column: str = "text"
    text_b_column: str | None = None
    label_column: str = "label"
    label_words: list[str] | None = None  # override the task's verbalizer
    max_length: int = 256            # input tokens kept per example (left-truncated, keeps the answer cue)
    # runtime
    device: str = "auto"             # auto | cpu | cuda
    shared_prefix: bool = True       # shared prompt keys/values (exact; causal LMs, input-independent prompts)

    def validate(self) -> "RunConfig":
        from .methods import METHODS, check_knobs  # late import: config stays importable without torch

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
            need(isinstance(v, int) and v >= 0, f"{name} must be a non-negative integer, got {v!r}")
        if self.lr is not None:
            need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10,
                 f"lr must be a positive number no larger than 10, got {self.lr!r}")
        need(0 <= self.warmup < 1, f"warmup is a fraction of the steps in [0, 1), got {self.warmup!r}")
        need(self.lr_schedule in ("linear", "constant"),
             f"lr_schedule must be linear or constant, got {self.lr_schedule!r}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        need(self.init in (None, "vocab", "text", "random"), f"init must be vocab, text or random, got {self.init!r}")
        need(self.init != "text" or self.init_text.strip() != "", "init='text' needs init_text")
        need(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        need(self.data_source in ("auto", "offline", "hub"),
             f"data_source must be auto, offline or hub, got {self.data_source!r}")
        need(self.task != "file" or bool(self.data_file), "task 'file' needs data_file (a CSV or JSONL path)")
        if self.label_words is not None:
            need(len(self.label_words) >= 2 and all(isinstance(w, str) and w.strip() for w in self.label_words),
                 "label_words needs at least two non-empty words")
        check_knobs(self)
        return self

    def resolved_lr(self) -> float:
        from .methods import get_method
        return float(self.lr) if self.lr is not None else get_method(self.method).default_lr

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)
