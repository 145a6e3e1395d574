"""Which configurations train together: the group key, and whether a configuration can share a model pass.

Configurations that share a group key (model, task, data, batch size, step budget, seed and evaluation set)
see the same batches in the same order, so the loop (loop.py) draws ONE batch per step and runs it under all
K prompts at once (multi_prompt.class_logits). Only input-independent prompts on a model whose attention takes
the packed multi-prompt mask can; everything else trains as a group of one.

prompts_per_pass bounds how many prompt rows share one forward/backward: activation memory grows with it,
while a CPU already runs one batch near its matmul peak, so on CPU a small number keeps memory near one run's
at the same speed; on a GPU all K go in one pass.
"""
from __future__ import annotations

from lopt_core.config import RunConfig
from lopt_core.lm import multi_prompt
from lopt_core.lm.models import LoadedModel
from lopt_core.methods import get_method

# fields that may differ inside a group: each configuration's own method and optimiser settings
PER_CONFIG = ("method", "n", "r", "lr", "warmup", "lr_schedule", "weight_decay", "grad_clip", "eval_every", "init",
              "init_text", "method_knobs")


def group_key(cfg: RunConfig) -> str:
    """Configurations with equal keys see the same data in the same order and can train as one group."""
    d = cfg.to_dict()
    return repr(sorted((k, repr(v)) for k, v in d.items() if k not in PER_CONFIG))


def batchable(cfg: RunConfig, lm: LoadedModel | None = None) -> bool:
    """True for input-independent prompts on a model whose attention takes the packed multi-prompt mask."""
    cls = get_method(cfg.method)
    if cls.changes_model or cls.input_dependent or not cfg.shared_prefix:
        return False
    return lm is None or multi_prompt.supported(lm)


def default_prompts_per_pass(lm: LoadedModel, k: int) -> int:
    """All K on a GPU; 2 on a CPU, where a batch already runs near the matmul peak and memory grows with K."""
    return k if lm.device.type == "cuda" else min(k, 2)
