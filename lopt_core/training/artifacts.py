"""A run's artifact folder: trained tensors as safetensors plus a JSON of config and results.

artifacts/<run_id>/
  prompt.safetensors   the method's trained tensors (factors) and, for input-independent prompts, the
                       materialised (n, d) prompt under the key "prompt"
  adapter/             peft baselines: peft's own save_pretrained folder
  adapter.safetensors  any other ModelAdapter: its own parameters
  run.json             {"config": ..., "result": ...}
Each kind of method writes and reads its own tensors (TuningMethod.save / load); this module owns the folder.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from lopt_core import paths
from lopt_core.config import RunConfig
from lopt_core.methods import PromptContext, get_method
from lopt_core.methods.base import ADAPTER_FILE, PROMPT_FILE  # noqa: F401  (the file names, read here by other modules)
from lopt_core.methods.peft_baselines import ADAPTER_DIR  # noqa: F401  (peft baselines save peft's folder there)

RUN_FILE = "run.json"


def run_dir(run_id: str) -> Path:
    assert run_id and "/" not in run_id and ".." not in run_id, f"bad run id {run_id!r}"
    return paths.artifacts_dir() / run_id


def save(folder: Path, cfg: RunConfig, method, result: dict) -> Path:
    """Write atomically: a crash mid-save never leaves a half-written artifact under the final name."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    method.save(tmp, cfg)
    (tmp / RUN_FILE).write_text(json.dumps({"config": cfg.to_dict(), "result": result}, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_run(folder: Path) -> dict:
    p = Path(folder) / RUN_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{folder} is not a run artifact folder (no {RUN_FILE})")
    return json.loads(p.read_text())


def update_result(folder: Path, result: dict) -> None:
    """Replace the result in a saved run.json (e.g. after a later evaluation), atomically."""
    p = Path(folder) / RUN_FILE
    doc = json.loads(p.read_text())
    doc["result"] = result
    tmp = p.with_name(RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, p)


def load_method(folder: Path, lm):
    """Rebuild the trained method for a loaded model: (config, method). Score through it inside
    `with method.attached(lm):` (a ModelAdapter enters lm.model there and leaves it after)."""
    folder = Path(folder)
    cfg = RunConfig.from_dict(read_run(folder)["config"])
    cls = get_method(cfg.method)
    method = cls.from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, cfg.seed))
    return cfg, method.load(folder, lm)


def load_prompt_matrix(folder: Path) -> torch.Tensor:
    """The materialised (n, d) prompt of an input-independent method."""
    t = load_file(str(Path(folder) / PROMPT_FILE))
    if "prompt" not in t:
        raise ValueError(f"{folder} holds no materialised prompt (input-dependent or peft method)")
    return t["prompt"]


def clear_for_resume(run_id: str) -> int:
    """Before a run is queued again: remove whatever a killed run left in its folder except its checkpoint;
    returns the checkpoint's step (0: none, the run starts over)."""
    from lopt_core.training import checkpoints
    folder = run_dir(run_id)
    step = checkpoints.step_of(folder)
    if not step:
        shutil.rmtree(folder, ignore_errors=True)
        return 0
    for p in folder.iterdir():
        if p.name != checkpoints.CHECKPOINT_FILE:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return step
