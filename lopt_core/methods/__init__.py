"""One registry of trainable methods: a new method is one new file plus one line here."""
from __future__ import annotations

from .base import PromptContext, SoftPrompt

METHODS: dict[str, type[SoftPrompt]] = {}


def register(cls: type[SoftPrompt]) -> type[SoftPrompt]:
    assert cls.name and cls.name not in METHODS, f"method name {cls.name!r} missing or registered twice"
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[SoftPrompt]:
    if name not in METHODS:
        from ..config import ConfigError
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


from . import prompt_tuning, lopt, ulpt, lopa, peft_baselines  # noqa: E402,F401  (registration)

__all__ = ["METHODS", "PromptContext", "SoftPrompt", "get_method", "register"]
