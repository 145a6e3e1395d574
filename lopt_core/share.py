"""The Train settings as a link: a teacher sends a URL whose query parameters open the page with the same model,
task, method, n, r and training knobs. Pure functions, so the app and any script read a link the same way:

    settings_to_query(settings) -> "model=...&task=...&method=..."
    settings_from_query(params, defaults) -> (settings, errors)   a bad value falls back to its default, and
                                                                   its error names the parameter

The whole-number checks the Train form uses live here too, so a link and a form report a bad value alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode

from lopt_core.config import ConfigError
from lopt_core.methods import METHODS, get_method

KEYS = ("model", "task", "method", "n", "r", "steps", "batch_size", "lr", "eval_every", "eval_size", "seed")


@dataclass(frozen=True)
class IntField:
    label: str          # the field's name on the form, for messages
    lo: int
    hi: int | None      # None: no upper bound beyond RunConfig's


# The ranges the Train form offers (n and r as its sliders do; RunConfig.validate has the wider ones).
# No method takes a rank above n's largest value (LoPT-1: r <= n; the others stop at RANK_CAP).
MAX_SEED = 2**32 - 1  # RunConfig.MAX_SEED: seeds are 32-bit everywhere they are used
INT_FIELDS = {"n": IntField("prompt length n", 1, 100), "r": IntField("rank r", 1, 100),
              "steps": IntField("steps", 1, 100_000), "batch_size": IntField("batch size", 1, 1024),
              "eval_every": IntField("eval every", 0, None), "eval_size": IntField("eval examples", 0, None),
              "seed": IntField("seed", 0, MAX_SEED)}


def whole_number(v, name: str, required: bool = True) -> int | None:
    """A form or link value as an int: 3, 3.0 and "3" are fine, "3.5" and "three" are not."""
    if v is None or (isinstance(v, str) and v.strip() == ""):
        if required:
            raise ConfigError(f"{name} is required")
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {v!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise ConfigError(f"{name} must be a whole number, got {v!r}")
    return int(f)


def check_int(key: str, v, max_steps: int | None = None) -> int:
    """One of INT_FIELDS, parsed and range-checked with a message that names the field as the form does
    (Gradio's own minimum= says only 'Value 0 is less than minimum value 1')."""
    field = INT_FIELDS[key]
    x = whole_number(v, field.label)
    hi = max_steps if key == "steps" and max_steps else field.hi
    if x < field.lo:
        raise ConfigError(f"{field.label} must be at least {field.lo}, got {x}")
    if hi is not None and x > hi:
        where = " on this host (LOPT_MAX_STEPS)" if hi == max_steps and key == "steps" else ""
        raise ConfigError(f"{field.label} must be at most {hi:,}{where}, got {x:,}")
    return x


def parse_lr(text) -> float | None:
    """A learning rate, or None (blank) for the method's measured default."""
    if text is None or str(text).strip() == "":
        return None
    try:
        lr = float(str(text).strip())
    except ValueError:
        lr = math.nan
    if not (math.isfinite(lr) and 0 < lr <= 10):
        raise ConfigError(f"learning rate must be a number such as 0.03 (above 0, at most 10), or blank for the "
                          f"method's default; got {text!r}")
    return lr


def rank_limit(method: str, n: int, model: str | None = None, width=None) -> int:
    """The largest r `method` takes at prompt length n on `model` (its width read from the model's config);
    when the width cannot be read, the bound that does not depend on it."""
    if width is None:
        from lopt_core.lm.models import model_width as width
    try:
        d = int(width(model))
    except Exception:  # an unknown or unreadable model: the run itself reports that
        d = 1 << 30
    return METHODS[method].max_rank(int(n), d)


def settings_to_query(settings: dict) -> str:
    """The settings as a URL query (no leading '?'), in KEYS order; a blank learning rate is left out and a
    whole float (a slider's 4.0) is written as 4."""
    return urlencode([(k, _plain(settings[k])) for k in KEYS if k in settings and settings[k] not in (None, "")])


def _plain(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


def settings_from_query(params, defaults: dict, allowed_models=None, max_steps: int | None = None,
                        width=None) -> tuple[dict, list[str]]:
    """Settings from a link's query parameters over `defaults`. A parameter with a bad value keeps its
    default and adds an error naming it; parameters that are not settings (Gradio's own) are ignored."""
    got = {k: str(v).strip() for k, v in dict(params).items() if k in KEYS}
    settings, errors, bad = dict(defaults), [], set()

    def take(key, parse):
        if key not in got:
            return
        try:
            settings[key] = parse(got[key])
        except ConfigError as e:
            errors.append(f"{key}={got[key]}: {e}")
            bad.add(key)

    take("model", lambda v: _model(v, allowed_models))
    take("task", _task)
    take("method", _method)
    for key in INT_FIELDS:
        take(key, lambda v, key=key: check_int(key, v, max_steps))
    take("lr", lambda v: "" if parse_lr(v) is None else v)
    top = _rank_bound(settings, width)
    if top is not None and settings["r"] > top:
        if "r" in got and "r" not in bad:
            errors.append(f"r={got['r']}: {METHODS[settings['method']].label} takes a rank of at most {top} "
                          f"at n={settings['n']}")
        settings["r"] = min(defaults["r"], top)
    return settings, errors


def _model(v: str, allowed) -> str:
    if not v:
        raise ConfigError("model must be a name or a folder")
    if allowed is not None and v not in allowed:
        raise ConfigError(f"model {v!r} is not allowed on this host; allowed: {', '.join(allowed)}")
    return v


def _task(v: str) -> str:
    from lopt_core.data.tasks import TASKS, is_task
    if not is_task(v) and v != "file":
        raise ConfigError(f"unknown task; choose one of: {', '.join(TASKS)}, or file")
    return v


def _method(v: str) -> str:
    return get_method(v).name


def _rank_bound(settings: dict, width) -> int | None:
    """The chosen method's largest r at the chosen n (LoPT-1: r <= n); None for a method without a rank."""
    if not METHODS[settings["method"]].has_rank:
        return None
    return rank_limit(settings["method"], settings["n"], settings["model"], width)

