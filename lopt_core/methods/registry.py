"""The registry: METHODS by name, the @register decorator that checks a class's facts, and the lookups every
other package uses (get_method, default_method, reference_method, knobs, trainable counts)."""
from __future__ import annotations

from lopt_core.errors import ConfigError
from lopt_core.methods.base import Knob, ModelAdapter, SoftPrompt, TuningMethod

METHODS: dict[str, type[TuningMethod]] = {}
RESERVED_NAMES: set[str] = set()   # RunConfig's field names, which no knob may take (config.py reserves them)


def _check_facts(cls: type[TuningMethod]) -> None:
    """A class whose facts contradict each other or the registry is a programming error: refuse it at import
    (raised, not asserted, so that it holds under python -O too)."""
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
    if cls.reference and any(m.reference for m in METHODS.values()):
        bad.append(f"reference = True, but {reference_method()!r} already is the reference")
    taken = {k.name: m.name for m in METHODS.values() for k in m.knobs}
    for k in cls.knobs:
        if k.name in taken:
            bad.append(f"knob {k.name!r} is already {taken[k.name]}'s")
        elif k.name in RESERVED_NAMES:
            bad.append(f"knob {k.name!r} is the name of a RunConfig field")
    if bad:
        raise TypeError(f"cannot register method {cls.__name__}: " + "; ".join(bad))


def register(cls: type[TuningMethod]) -> type[TuningMethod]:
    """Class decorator: the one call that adds a method everywhere."""
    _check_facts(cls)
    METHODS[cls.name] = cls
    return cls


def reserve(names) -> None:
    """Names no knob may take (RunConfig's fields: config.py calls this); TypeError if a registered one does."""
    RESERVED_NAMES.update(names)
    clash = sorted(k.name for m in METHODS.values() for k in m.knobs if k.name in RESERVED_NAMES)
    if clash:
        raise TypeError(f"knob(s) {', '.join(clash)} take the name of a RunConfig field")


def unregister(name: str) -> None:
    """Take a method out of the registry again (tests that register a method of their own)."""
    METHODS.pop(name, None)


def get_method(name: str) -> type[TuningMethod]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def method_label(method: str) -> str:
    """A method's label; the name itself for one not registered (a run of a method since removed)."""
    return METHODS[method].label if method in METHODS else method


def method_color(method: str) -> str:
    """Each method's own colour (a fact on the method); a stable grey-ish fallback for unknown names."""
    if method in METHODS:
        return METHODS[method].color
    return ["#B6E880", "#FF97FF", "#FECB52", "#8C564B", "#7F7F7F"][sum(map(ord, method)) % 5]


def method_symbol(method: str) -> str:
    """Each method's own plotly marker (a fact on the method); a plain circle for unknown names."""
    return METHODS[method].symbol if method in METHODS else "circle-open"


def default_method() -> str:
    """The method a new Train form starts with (the class with default = True; else the first registered)."""
    return next((name for name, cls in METHODS.items() if cls.default), next(iter(METHODS)))


def reference_method() -> str:
    """The full-rank prompt that low-rank methods are read against (the class with reference = True)."""
    return next(name for name, cls in METHODS.items() if cls.reference)


def default_sweep_methods() -> list[str]:
    """The methods a new sweep ticks."""
    return [name for name, cls in METHODS.items() if cls.sweep_default]


def all_knobs() -> dict[str, tuple[type[TuningMethod], Knob]]:
    """Every registered method's knobs by name (names are unique across methods)."""
    return {k.name: (cls, k) for cls in METHODS.values() for k in cls.knobs}


def knob_settings(values: dict) -> dict:
    """RunConfig keyword arguments for knob values given by name: {"method_knobs": {...}} (empty when none).
    ConfigError for a name no registered method has."""
    known = all_knobs()
    for name in values:
        if name not in known:
            raise ConfigError(f"unknown method knob {name!r}; knobs: {', '.join(known) or 'none'}")
    return {"method_knobs": dict(values)} if values else {}


def check_knobs(cfg) -> None:
    """RunConfig.validate's part: method_knobs names only registered knobs (of any method: a sweep shares them
    across its methods; each method reads its own), each with a value it takes."""
    extra = cfg.method_knobs
    if not isinstance(extra, dict):
        raise ConfigError(f"method_knobs must be a mapping of knob name to value, got {extra!r}")
    known = all_knobs()
    for name, value in extra.items():
        if name not in known:
            raise ConfigError(f"unknown method knob {name!r} in method_knobs; knobs: {', '.join(known) or 'none'}")
        known[name][1].check(value)


def count_trainable(cfg) -> int:
    """The trainable count of `cfg`'s method from its formula, at cfg's n, r, knobs and model (no weights)."""
    from lopt_core.lm.models import model_config, model_width
    cls = get_method(cfg.method)
    return int(cls.formula(cfg.n, cfg.r, model_width(cfg.model), model_config=model_config(cfg.model),
                           **cls.knob_values(cfg)))
