"""Errors a user can act on, in a module of their own so that config and methods both raise them without
importing each other."""
from __future__ import annotations


class ConfigError(ValueError):
    """A run configuration that cannot be trained; the message says what to change."""
