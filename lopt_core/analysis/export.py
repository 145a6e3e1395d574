"""Export a trained input-independent prompt as a PEFT prompt-tuning adapter folder.

Every method whose class says `exportable` (each input-independent prompt) ends as one (n, d) matrix placed in
front of the input embeddings, which is exactly what PEFT's prompt tuning does with its `prompt_embeddings`
table. So the export is: adapter_config.json (a PromptTuningConfig with num_virtual_tokens=n, token_dim=d) +
adapter_model.safetensors holding {"prompt_embeddings": the materialised (n, d) prompt}. Low-rank structure is
not kept (PEFT has no low-rank prompt type); the prompt is numerically the same.

    from peft import PeftModel
    model = PeftModel.from_pretrained(base_model, folder)   # then model.generate(...) as usual
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from lopt_core.training import artifacts
from lopt_core.methods import METHODS
from lopt_core.lm.models import OFFLINE_DEFAULT, canonical
from lopt_core.errors import ExportError

HUB_ID = {OFFLINE_DEFAULT: "HuggingFaceTB/SmolLM2-135M-Instruct"}


def _base_model_name(model: str) -> str:
    return HUB_ID.get(canonical(model), model)


def export_peft(run_folder: str | Path, out_folder: str | Path, base_model_name: str | None = None) -> Path:
    """Write a PEFT prompt-tuning adapter for the run in `run_folder` into `out_folder` (replaced if present)."""
    import torch
    from peft import PromptTuningConfig, TaskType
    from safetensors.torch import save_file

    run_folder, out = Path(run_folder), Path(out_folder)
    try:
        run = artifacts.read_run(run_folder)
    except FileNotFoundError as e:
        raise ExportError(f"this run has no saved artifact to export ({e})") from None
    cfg = run["config"]
    method = cfg.get("method")
    refusal = export_refusal(method)
    if refusal:
        raise ExportError(refusal)
    try:
        prompt = artifacts.load_prompt_matrix(run_folder)
    except (ValueError, FileNotFoundError) as e:
        raise ExportError(str(e)) from None
    n, d = prompt.shape
    mc = _config_of(cfg["model"])
    tc = mc.get_text_config() if mc is not None and hasattr(mc, "get_text_config") else mc
    pc = PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if getattr(tc, "is_encoder_decoder", False) else TaskType.CAUSAL_LM,
        num_virtual_tokens=int(n), token_dim=int(d), num_transformer_submodules=1,
        num_attention_heads=getattr(tc, "num_attention_heads", None), num_layers=getattr(tc, "num_hidden_layers", None),
        base_model_name_or_path=base_model_name or _base_model_name(cfg["model"]))
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pc.save_pretrained(str(tmp))
    save_file({"prompt_embeddings": prompt.detach().to(torch.float32).contiguous()},
              str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
    (tmp / "README.md").write_text(readme(run, n, d, out.name, run_folder.name))
    (tmp / "lopt_run.json").write_text(json.dumps(run, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return out


def export_refusal(method: str) -> str | None:
    """Why a run of `method` cannot be exported as a prompt-tuning adapter (the method's own reason), or None."""
    cls = METHODS.get(method)
    if cls is not None and cls.exportable:
        return None
    why = cls.export_refusal if cls is not None else "it is not a registered method"
    return (f"{cls.label if cls is not None else method} cannot be exported as a prompt-tuning adapter: {why}. "
            f"Exportable methods: {', '.join(c.label for c in METHODS.values() if c.exportable)}")


def indefinite_article(number: int) -> str:
    """'a' or 'an' before a number read aloud: an 8, an 11, an 18, an 80, an 11000; a 20, a 110, a 1100."""
    s = str(abs(int(number)))
    return "an" if s[0] == "8" or (len(s) % 3 == 2 and s[:2] in ("11", "18")) else "a"


def readme(run: dict, n: int, d: int, folder_name: str, default_id: str) -> str:
    """The adapter's README: what was trained, how well, the n × d shape, how to load it, and the input format
    (task template and label words) the prompt expects."""
    from lopt_core.analysis.aggregate import config_label
    from lopt_core.analysis.run_summary import accuracy_text, run_task
    cfg, result = run["config"], run.get("result") or {}
    task = run_task(cfg)
    row = {"accuracy": result.get("accuracy"), "state": result.get("state"), "result": result}
    zs = result.get("zero_shot_accuracy")
    lines = [
        "# Soft prompt exported from LoPT Lab", "",
        f"Run `{result.get('run_id', default_id)}`: {config_label(cfg['method'], cfg['n'], cfg['r'])} on "
        f"{result.get('model', cfg['model'])}, task {result.get('task', cfg.get('task'))}; accuracy "
        f"{accuracy_text(row)}" + (f" (no prompt: {zs:.3f})" if zs is not None else "") + ".", "",
        f"The prompt is stored as PEFT prompt tuning ({indefinite_article(n)} {n} × {d} `prompt_embeddings` table: "
        f"{n} virtual tokens of the model's width {d}), so it loads with", "",
        "```python\nfrom peft import PeftModel\n"
        f"model = PeftModel.from_pretrained(base_model, \"{folder_name}\")\n```", "",
        "## Input format", ""]
    if task is None:
        lines.append(f"The prompt was trained on task {cfg.get('task')} (its template could not be recovered: its data "
                     f"file is gone). Inputs must be formatted the same way as in training.")
    else:
        words = ", ".join(repr(w) for w in task.label_words)
        lines += ["The prompt was trained on inputs written in this template (fields in braces):", "",
                  "```text", task.template, "```", "",
                  f"and scored by the first token of each label word right after it: {words} (one word per "
                  f"class, in class order).", "",
                  "Inputs must be formatted the same way, ending at the answer cue, for the prompt to work as "
                  "measured; other text gets a prompt it was never trained for."]
    return "\n".join(lines) + "\n"


def _config_of(model: str):
    try:
        from lopt_core.lm.models import model_config
        return model_config(model)
    except Exception:
        return None
