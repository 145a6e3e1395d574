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


# prompts per pass on a CPU, by precision, as measured (`python -m lopt_core.bench --sweep --only-a --passes 1,2,4,8
# --precision P`, bench/sweep-passes-2026-12-07-xeon-amx.txt, K=8 on a 2-core AMX Xeon): fp32 gains nothing past 2
# (7.42 -> 7.67 examples/s at 8, with 2.3x the memory), bf16's matrix units keep gaining (9.60 -> 12.45)
CPU_PER_PASS = {"fp32": 2, "bf16": 8}


def default_prompts_per_pass(lm: LoadedModel, k: int) -> int:
    """All K on a GPU. On a CPU, CPU_PER_PASS of the model's precision: in fp32 a batch already runs near the
    matmul peak while memory grows with K; bf16 matrix units run larger products faster."""
    return k if lm.device.type == "cuda" else min(k, CPU_PER_PASS.get(lm.precision, 2))
