"""Which model names this host resolves: on a public host (LOPT_PUBLIC=1) only the names in the allowed list,
so a page's readout or picker never probes a folder a visitor typed (is it there? what is its config?).

    allowed_names(limits)   the names this host allows (None: any, including local folders)
    check(limits, name)     the name as given, or ConfigError when this host does not allow it
    may_probe(limits)       whether a picker may look at the disk for a folder name (never on a public host)
"""
from __future__ import annotations

from lopt_core.errors import ConfigError


def is_public(limits) -> bool:
    return bool(getattr(limits, "public", False))


def allowed_names(limits) -> tuple[str, ...] | None:
    if limits is None:
        return None
    models = getattr(limits, "models", None)
    names = models() if callable(models) else getattr(limits, "allowed_models", None)
    if names is None and is_public(limits):  # a public host with no list: the known names, never a folder
        from lopt_core.lm.models import KNOWN_MODELS
        names = tuple(KNOWN_MODELS)
    return None if names is None else tuple(names)


def check(limits, name) -> str:
    """`name` (stripped) when this host may resolve it; ConfigError naming the allowed models otherwise."""
    name = str(name or "").strip()
    names = allowed_names(limits)
    if names is None:
        return name
    from lopt_core.lm.models import canonical
    if name in names or canonical(name) in {canonical(m) for m in names}:
        return name
    shown = repr(name) if len(name) <= 80 else repr(name[:77] + "...")  # the visitor's own words, not the disk's
    raise ConfigError(f"model {shown} is not allowed on this host; allowed: {', '.join(names)}")


def may_probe(limits) -> bool:
    return not is_public(limits)
