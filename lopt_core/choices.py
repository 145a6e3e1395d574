"""Every fixed choice list of a run, defined once: RunConfig validates against these, argparse offers them as
`choices`, and the UI's pickers list them. Values are plain strings in configs and stored runs."""
from __future__ import annotations

from enum import StrEnum

from lopt_core.errors import ConfigError


class Init(StrEnum):
    """How a prompt that starts from a prompt matrix is initialised."""
    VOCAB = "vocab"      # rows sampled from the vocabulary's embeddings
    TEXT = "text"        # the embeddings of init_text's tokens
    RANDOM = "random"


class Device(StrEnum):
    AUTO = "auto"        # cuda where available, else cpu
    CPU = "cpu"
    CUDA = "cuda"


class DataSource(StrEnum):
    AUTO = "auto"        # the offline pack when installed, else the hub
    OFFLINE = "offline"
    HUB = "hub"


class LrSchedule(StrEnum):
    LINEAR = "linear"    # warm-up, then linear decay to 0
    CONSTANT = "constant"


class Precision(StrEnum):
    AUTO = "auto"        # measured on this machine (lm/precision.py): bf16 where it is clearly faster
    FP32 = "fp32"
    BF16 = "bf16"


class Kind(StrEnum):
    """What a task asks of the model (data/examples.py): a built-in task has its own; a user file says which."""
    CLASSIFICATION = "classification"      # label words at the answer cue
    MULTIPLE_CHOICE = "multiple_choice"    # the likeliest of the given choices
    GENERATION = "generation"              # a written answer, scored by exact match and F1


def values(choice: type[StrEnum]) -> list[str]:
    """The plain-string values, in declaration order (argparse choices, dropdowns, messages)."""
    return [c.value for c in choice]


def check(choice: type[StrEnum], value, field: str, optional: bool = False) -> None:
    """ConfigError naming `field` unless `value` is one of the choice's values (or None when optional)."""
    if optional and value is None:
        return
    if value not in values(choice):
        raise ConfigError(f"{field} must be {', '.join(values(choice)[:-1])} or {values(choice)[-1]}, got {value!r}")
