"""One registry of trainable methods: a new method is one new file whose class is decorated with @register.
Each is a TuningMethod of one of two kinds: a SoftPrompt (a prompt in front of the input) or a ModelAdapter
(it changes the model: LoRA, prefix tuning); see base.py.

Everything else (the CLI's flags and `methods` listing, the app's choices and readouts, plot colours and labels,
the export rules, sweep and form defaults) reads the class facts through this registry.
"""
from __future__ import annotations

from ..errors import ConfigError
from .base import Knob, ModelAdapter, PromptContext, SoftPrompt, TuningMethod

METHODS: dict[str, type[TuningMethod]] = {}


def _check_facts(cls: type[TuningMethod]) -> None:
    """A class whose facts contradict each other or the registry is a programming error: refuse it at import
    (raised, not asserted, so that it holds under python -O too)."""
    import dataclasses
    from ..config import RunConfig  # late: config never imports methods at module level, nor methods config
    bad = []
    if not cls.name or cls.name in METHODS:
        bad.append(f"name {cls.name!r} missing or registered twice")
    if not cls.label:
        bad.append("no label")
    kinds = [k.__name__ for k in (SoftPrompt, ModelAdapter) if issubclass(cls, k)]
    if len(kinds) != 1:
        bad.append("a method is either a SoftPrompt or a ModelAdapter" + (", not both" if kinds else ""))
    elif cls.changes_model != (kinds[0] == "ModelAdapter"):
        bad.append(f"changes_model = {cls.changes_model} contradicts its kind, {kinds[0]}")
    if cls.exportable and (cls.input_dependent or cls.changes_model):
        bad.append("exportable, but its prompt is not one (n, d) matrix")
    if not cls.exportable and not cls.export_refusal:
        bad.append("not exportable, but export_refusal does not say why")
    if cls.default and any(m.default for m in METHODS.values()):
        bad.append(f"default = True, but {default_method()!r} already is the default")
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    taken = {k.name: m.name for m in METHODS.values() for k in m.knobs}
    for k in cls.knobs:
        if k.name in taken:
            bad.append(f"knob {k.name!r} is already {taken[k.name]}'s")
        elif k.field and (k.name not in fields or fields[k.name].default != k.default):
            bad.append(f"knob {k.name!r} says field=True: RunConfig needs a field {k.name} = {k.default!r}")
        elif not k.field and k.name in fields:
            bad.append(f"knob {k.name!r} is the name of a RunConfig field")
    if bad:
        raise TypeError(f"cannot register method {cls.__name__}: " + "; ".join(bad))


def register(cls: type[TuningMethod]) -> type[TuningMethod]:
    """Class decorator: the one call that adds a method everywhere."""
    _check_facts(cls)
    METHODS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Take a method out of the registry again (tests that register a method of their own)."""
    METHODS.pop(name, None)


def get_method(name: str) -> type[TuningMethod]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def default_method() -> str:
    """The method a new Train form starts with (the class with default = True; else the first registered)."""
    return next((name for name, cls in METHODS.items() if cls.default), next(iter(METHODS)))


def default_sweep_methods() -> list[str]:
    """The methods a new sweep ticks."""
    return [name for name, cls in METHODS.items() if cls.sweep_default]


def all_knobs() -> dict[str, tuple[type[TuningMethod], Knob]]:
    """Every registered method's knobs by name (names are unique across methods)."""
    return {k.name: (cls, k) for cls in METHODS.values() for k in cls.knobs}


def knob_settings(values: dict) -> dict:
    """RunConfig keyword arguments for knob values given by name: a knob that is a RunConfig field is set there,
    every other goes into method_knobs. ConfigError for a name no registered method has."""
    known = all_knobs()
    out, extra = {}, {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"unknown method knob {name!r}; knobs: {', '.join(known) or 'none'}")
        (out if known[name][1].field else extra)[name] = value
    if extra:
        out["method_knobs"] = extra
    return out


def check_knobs(cfg) -> None:
    """RunConfig.validate's part: every knob field holds a value its knob takes, and method_knobs names only
    registered knobs (of any method: a sweep shares them across its methods; each method reads its own)."""
    extra = cfg.method_knobs
    if not isinstance(extra, dict):
        raise ConfigError(f"method_knobs must be a mapping of knob name to value, got {extra!r}")
    known = all_knobs()
    for name, (_, knob) in known.items():
        if knob.field:
            knob.check(getattr(cfg, name))
    for name, value in extra.items():
        if name not in known or known[name][1].field:
            raise ConfigError(f"unknown method knob {name!r} in method_knobs; knobs: "
                              f"{', '.join(k for k, (_, kn) in known.items() if not kn.field) or 'none'}")
        known[name][1].check(value)


def count_trainable(cfg) -> int:
    """The trainable count of `cfg`'s method from its formula, at cfg's n, r, knobs and model (no weights)."""
    from ..models import model_config, model_width
    cls = get_method(cfg.method)
    return int(cls.formula(cfg.n, cfg.r, model_width(cfg.model), model_config=model_config(cfg.model),
                           **cls.knob_values(cfg)))


from . import prompt_tuning, lopt, ulpt, lopa, peft_baselines  # noqa: E402,F401  (registration)

__all__ = ["METHODS", "Knob", "ModelAdapter", "PromptContext", "SoftPrompt", "TuningMethod", "all_knobs",
           "check_knobs", "count_trainable", "default_method", "default_sweep_methods", "get_method", "knob_settings",
           "register", "unregister"]
