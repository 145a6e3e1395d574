"""PEFT export: the exported adapter loads with PeftModel.from_pretrained, gives the same label scores as the
engine under the trained prompt, and generates; input-dependent / peft methods get a clear error."""
from __future__ import annotations

import json

import pytest
import torch

from lopt_core.config import RunConfig
from lopt_core.export import ExportError, export_peft
from test_jobs import tiny_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    import os
    home = tmp_path_factory.mktemp("home")
    model = tiny_model_dir
    old = os.environ.get("LOPT_HOME")
    os.environ["LOPT_HOME"] = str(home)
    try:
        from lopt_core.runs import run_and_record
        from lopt_core.store import Store
        store = Store()
        out = {m: run_and_record(tiny_cfg(model, method=m, steps=2), store=store)
               for m in ("lopt1", "ulpt", "lopa")}
    finally:
        if old is None:
            os.environ.pop("LOPT_HOME", None)
        else:
            os.environ["LOPT_HOME"] = old
    return model, out


def test_export_loads_in_peft_and_matches_engine(trained, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from lopt_core import artifacts, engine
    from lopt_core.models import load_model
    model, runs = trained
    for m in ("lopt1", "ulpt"):
        folder = export_peft(runs[m]["artifact_dir"], tmp_path / f"adapter-{m}")
        conf = json.loads((folder / "adapter_config.json").read_text())
        assert conf["peft_type"] == "PROMPT_TUNING" and conf["num_virtual_tokens"] == 4 and conf["token_dim"] == 32
        assert (folder / "adapter_model.safetensors").is_file()

        base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        pm = PeftModel.from_pretrained(base, str(folder)).eval()
        lm = load_model(model, "cpu")
        _, method = artifacts.load_method(runs[m]["artifact_dir"], lm)
        assert torch.allclose(pm.get_prompt_embedding_to_save("default"), method().float(), atol=1e-6)

        text = "Review: a fine, warm film\nSentiment:"
        ids = torch.tensor([engine.encode(lm.tokenizer, [text], 64)[0]])
        mask = torch.ones_like(ids)
        label_ids = engine.label_token_ids(lm.tokenizer, [" negative", " positive"])
        with torch.no_grad():
            ours = engine.class_logits(lm, ids, mask, mask.sum(1), label_ids, method)[0]
            theirs = pm(input_ids=ids, attention_mask=mask).logits[0, -1, label_ids]
        assert torch.allclose(ours, theirs.float(), atol=1e-4), (ours, theirs)
        gen = pm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=3, do_sample=False)
        assert gen.shape[1] >= ids.shape[1] + 1


def test_export_refuses_input_dependent(trained, tmp_path):
    _, runs = trained
    with pytest.raises(ExportError, match="depends on each input"):
        export_peft(runs["lopa"]["artifact_dir"], tmp_path / "x")
    with pytest.raises(ExportError, match="no saved artifact"):
        export_peft(tmp_path / "nothing-here", tmp_path / "y")


def test_export_readme_states_shape_accuracy_and_template(trained, tmp_path):
    """Issue 9: the README read 'an 4x32', printed the accuracy unrounded and did not state the template."""
    _, runs = trained
    run = runs["lopt1"]
    readme = (export_peft(run["artifact_dir"], tmp_path / "adapter") / "README.md").read_text()
    assert "a 4 × 32 `prompt_embeddings` table" in readme and "an 4" not in readme and "4x32" not in readme
    acc = f"{run['accuracy']:.3f} on {run['eval_examples']} test examples"
    assert f"accuracy {acc}" in readme and repr(run["accuracy"]) not in readme.replace(f"{run['accuracy']:.3f}", "")
    assert "Review: {sentence}\nSentiment:" in readme and "' negative', ' positive'" in readme
    assert "same way" in readme


def test_indefinite_article_for_numbers():
    from lopt_core.export import indefinite_article
    assert [indefinite_article(n) for n in (4, 8, 11, 18, 20, 80, 110, 800, 1100, 11000, 18576)] == \
        ["a", "an", "an", "an", "a", "an", "a", "an", "a", "an", "an"]
