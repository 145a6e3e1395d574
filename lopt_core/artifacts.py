"""A run's artifact folder: trained tensors as safetensors plus a JSON of config and results.

artifacts/<run_id>/
  prompt.safetensors   the method's trained tensors (factors) and, for input-independent prompts, the
                       materialised (n, d) prompt under the key "prompt"
  adapter/             peft baselines: peft's own save_pretrained folder
  run.json             {"config": ..., "result": ...}
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import paths
from .config import RunConfig
from .methods import PromptContext, get_method

PROMPT_FILE, RUN_FILE, ADAPTER_DIR = "prompt.safetensors", "run.json", "adapter"


def run_dir(run_id: str) -> Path:
    assert run_id and "/" not in run_id and ".." not in run_id, f"bad run id {run_id!r}"
    return paths.artifacts_dir() / run_id


def save(folder: Path, cfg: RunConfig, method, result: dict) -> Path:
    """Write atomically: a crash mid-save never leaves a half-written artifact under the final name."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if method.is_peft:
        method.peft_model.save_pretrained(tmp / ADAPTER_DIR)
    else:
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in method.state_dict().items()}
        if not method.input_dependent:
            with torch.no_grad():
                tensors["prompt"] = method().detach().float().cpu().contiguous()  # (n, d)
        save_file(tensors, str(tmp / PROMPT_FILE), metadata={"method": cfg.method, "n": str(cfg.n), "r": str(cfg.r)})
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
    """Rebuild the trained method on a loaded model. Peft baselines come back wrapped around lm.model."""
    folder = Path(folder)
    cfg = RunConfig.from_dict(read_run(folder)["config"])
    cls = get_method(cfg.method)
    method = cls.from_config(cfg, PromptContext(lm.d, lm.embeddings, lm.tokenizer, cfg.seed))
    if method.is_peft:
        from peft import PeftModel
        method.__dict__["peft_model"] = PeftModel.from_pretrained(lm.model, str(folder / ADAPTER_DIR))
    else:
        tensors = load_file(str(folder / PROMPT_FILE))
        wanted = method.state_dict().keys()  # "prompt" is also prompt tuning's own parameter name
        method.load_state_dict({k: tensors[k] for k in wanted if k in tensors}, strict=True)
        if "prompt" in tensors and not method.input_dependent:
            check_rebuilt(folder, method, tensors["prompt"])
    return cfg, method.to(lm.device).eval()


class ArtifactMismatch(ValueError):
    """A saved run whose rebuilt prompt is not the prompt it was trained to."""


def check_rebuilt(folder: Path, method, saved: torch.Tensor, tol: float = 1e-5) -> None:
    """The prompt rebuilt from the saved factors and the seeded frozen tensors must equal the materialised prompt
    saved at the end of training; otherwise (another version's seeding, an edited file) refuse to use it."""
    with torch.no_grad():
        rebuilt = method().detach().float().cpu()                      # (n, d)
    if rebuilt.shape != saved.shape:
        raise ArtifactMismatch(f"{Path(folder).name}: the rebuilt prompt has shape {tuple(rebuilt.shape)} but the "
                               f"saved one {tuple(saved.shape)}; refusing to use a prompt it was not trained to")
    err = (rebuilt - saved.float()).abs().max().item()
    scale = max(saved.abs().max().item(), 1e-12)
    if err > tol * max(1.0, scale):
        raise ArtifactMismatch(f"{Path(folder).name}: the prompt rebuilt from its factors and seeded frozen tensors "
                               f"differs from the saved prompt by {err:.3g} (max |x| {scale:.3g}); it was saved by "
                               f"another version or edited. Refusing to use a prompt it was not trained to.")


def load_prompt_matrix(folder: Path) -> torch.Tensor:
    """The materialised (n, d) prompt of an input-independent method."""
    t = load_file(str(Path(folder) / PROMPT_FILE))
    if "prompt" not in t:
        raise ValueError(f"{folder} holds no materialised prompt (input-dependent or peft method)")
    return t["prompt"]
