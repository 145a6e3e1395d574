"""RunConfig fields as command-line flags, in one table: the CLI's train and sweep parsers are built from it,
and a sweep's command line (SweepSpec.command) is written back from it, so the two can never disagree.

    add_shared(parser, with_defaults)   --steps, --lr, --device, ..., --no-shared-prefix, and every method knob
    given(args, methods)                the flags given, as RunConfig keyword arguments (method knobs checked)
    to_args(knobs)                      the inverse: RunConfig keyword arguments as flags
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from enum import StrEnum

from lopt_core.choices import DataSource, Device, Init, Kind, LrSchedule, Precision, values
from lopt_core.config import ConfigError, RunConfig
from lopt_core.data import label_words
from lopt_core.methods import all_knobs, knob_settings


@dataclass(frozen=True)
class Flag:
    field: str                          # the RunConfig field it sets
    type: type                          # int, float, str; list: comma-separated words; bool: a --no- switch
    help: str = ""
    choices: type[StrEnum] | None = None

    @property
    def flag(self) -> str:
        return ("--no-" if self.type is bool else "--") + self.field.replace("_", "-")


# the fields a sweep shares across its grid (seed is the grid's own: --seeds)
SHARED = (
    Flag("steps", int), Flag("batch_size", int), Flag("lr", float, "blank: the method's measured default"),
    Flag("warmup", float, "fraction of the steps with linear warm-up"),
    Flag("lr_schedule", str, "after the warm-up: linear decay to 0, or constant", LrSchedule), Flag("eval_every", int, "0: only at the end"),
    Flag("eval_size", int, "test examples scored (0: all)"), Flag("eval_batch_size", int), Flag("max_length", int),
    Flag("weight_decay", float), Flag("grad_clip", float, "0 turns clipping off"),
    Flag("init", str, "how a prompt matrix starts", Init), Flag("init_text", str, "the text for --init text"),
    Flag("device", str, "", Device),
    Flag("precision", str, "auto: bf16 where it measured at least 1.3x faster here, else fp32", Precision),
    Flag("data_source", str, "auto: the offline pack when installed, else the hub", DataSource),
    Flag("data_file", str, "CSV/JSONL for --task file"), Flag("text_column", str), Flag("text_b_column", str),
    Flag("label_column", str), Flag("split_seed", int, "the task's fixed train/test split"), Flag("label_words", list, "comma-separated, e.g. ' bad, good'"),
    Flag("kind", str, "what a --task file asks (built-in tasks have their own kind)", Kind),
    Flag("target_column", str, "--kind generation: the answer column"),
    Flag("choice_columns", list, "--kind multiple_choice: the choice columns, comma-separated (--label-column: "
                                 "the right one, as its index, letter or text)"),
    Flag("shared_prefix", bool, "compute the prompt's keys/values per example instead of once per batch"),
)


def add_shared(p: argparse.ArgumentParser, with_defaults: bool, method_knobs: bool = True) -> None:
    """The table's flags on parser `p`. with_defaults: each flag defaults to RunConfig's value (train); else to
    None, meaning "not given" (sweep: its preset or the shared default decides)."""
    d = RunConfig()
    for f in SHARED:
        default = getattr(d, f.field) if with_defaults else None
        help_text = (f.help + (f" (default {default})" if default not in (None, "") else "")).strip()
        if f.type is bool:
            p.add_argument(f.flag, dest=f.field, action="store_false", default=default, help=f.help)
        elif f.type is list:
            p.add_argument(f.flag, dest=f.field, type=label_words.parse, default=default, help=f.help)
        else:
            p.add_argument(f.flag, dest=f.field, type=f.type, default=default, help=help_text.replace("%", "%%"),
                           choices=values(f.choices) if f.choices else None)
    if method_knobs:
        for name, (cls, k) in all_knobs().items():
            shown = "blank" if k.default is None else k.default
            p.add_argument(k.flag, dest=name, type=k.type, choices=list(k.choices) or None, default=None,
                           help=f"{cls.label} only: {k.help} (default {shown})".replace("%", "%%"))


def given(args: argparse.Namespace, methods: list[str]) -> dict:
    """The table's flags that were given (not None), as RunConfig keyword arguments; the method knobs given go
    into method_knobs, and a knob that none of `methods` takes is a ConfigError."""
    out = {f.field: getattr(args, f.field) for f in SHARED if getattr(args, f.field, None) is not None}
    known = all_knobs()
    knobs = {name: getattr(args, name) for name in known if getattr(args, name, None) is not None}
    for name in knobs:
        owner, knob = known[name]
        if owner.name not in methods:
            raise ConfigError(f"{knob.flag} is a knob of {owner.label} ({owner.name}); "
                              f"{', '.join(methods) or 'no method'} does not take it")
    return out | knob_settings(knobs)


def given_flags(args: argparse.Namespace) -> list[str]:
    """The names of the table's flags and method-knob flags that were given (a message that refuses them)."""
    names = [f.flag for f in SHARED if getattr(args, f.field, None) is not None]
    return names + [k.flag for name, (_, k) in all_knobs().items() if getattr(args, name, None) is not None]


def to_args(knobs: dict) -> list[str]:
    """RunConfig keyword arguments (a sweep's shared knobs) as the flags that give them back."""
    out: list[str] = []
    table = {f.field: f for f in SHARED}
    known = all_knobs()
    for name, value in sorted(knobs.items()):
        if name == "method_knobs":
            for k, v in sorted((value or {}).items()):
                if v is not None:
                    out += [known[k][1].flag, str(v)]
            continue
        f = table.get(name)
        if f is None:
            raise ConfigError(f"{name} is not a shared setting a sweep's command line can carry")
        if value is None:
            continue
        if f.type is bool:
            out += [] if value else [f.flag]
        elif f.type is list:
            out += [f.flag, label_words.show(value)]
        else:
            out += [f.flag, str(value)]
    return out
