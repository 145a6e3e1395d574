"""PEFT export: the exported adapter loads with PeftModel.from_pretrained, gives the same label scores as the
engine under the trained prompt, and generates; input-dependent / peft methods get a clear error."""
from __future__ import annotations

import json

import pytest
import torch

from lopt_core.errors import ArtifactMismatch
from lopt_core.analysis.export import ExportError, export_peft
from helpers import tiny_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    import os
    home = tmp_path_factory.mktemp("home")
    model = tiny_model_dir
    old = os.environ.get("LOPT_HOME")
    os.environ["LOPT_HOME"] = str(home)
    try:
        from lopt_core.training.runs import run_and_record
        from lopt_core.store.sqlite import Store
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
    from lopt_core.training import artifacts
    from lopt_core.lm import engine
    from lopt_core.lm.models import load_model
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
    from lopt_core.analysis.export import indefinite_article
    assert [indefinite_article(n) for n in (4, 8, 11, 18, 20, 80, 110, 800, 1100, 11000, 18576)] == \
        ["a", "an", "an", "an", "a", "an", "a", "an", "a", "an", "an"]


PLAIN_PEFT_SCORER = r'''
import json, sys
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, adapter, texts, words = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
tok = AutoTokenizer.from_pretrained(model_dir)
base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
pm = PeftModel.from_pretrained(base, adapter).eval()
label_ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in words]
out = []
with torch.no_grad():
    for t in texts:
        ids = tok(t, return_tensors="pt")
        logits = pm(**ids).logits[0, -1, label_ids]
        out.append(logits.softmax(-1).tolist())
assert not any(m.startswith("lopt_core") for m in sys.modules), "lopt_core on the scoring path"
print(json.dumps(out))
'''


def ours_and_plain_peft(model: str, artifact_dir: str, adapter, n_examples: int):
    """Label probabilities of a run's trained prompt on its first test examples: LoPT Lab's evaluation, and plain
    PEFT's (the exported `adapter` loaded by PeftModel.from_pretrained in a process without lopt_core)."""
    import subprocess
    import sys
    from lopt_core.data.tasks import load_for_config
    from lopt_core.lm import engine
    from lopt_core.lm.models import load_model
    from lopt_core.training import artifacts
    lm = load_model(model, "cpu")
    cfg, method = artifacts.load_method(artifact_dir, lm)
    data = load_for_config(cfg)
    examples = data.test[:n_examples]
    ours = engine.evaluate(lm, engine.encode_examples(lm.tokenizer, examples, cfg.max_length),
                           engine.label_token_ids(lm.tokenizer, data.task.label_words), method, batch_size=8).probs
    proc = subprocess.run([sys.executable, "-c", PLAIN_PEFT_SCORER, model, str(adapter),
                           json.dumps([e.text for e in examples]), json.dumps(list(data.task.label_words))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ours, torch.tensor(json.loads(proc.stdout)), lm


def test_exported_prompt_scores_the_same_in_plain_peft(trained, tmp_path):
    """Issue 10: an exported prompt, loaded by PeftModel.from_pretrained in a process with no lopt_core code,
    gives the label probabilities LoPT Lab's evaluation gives on the same sentences (tolerance 1e-4)."""
    model, runs = trained
    folder = export_peft(runs["lopt1"]["artifact_dir"], tmp_path / "adapter")
    ours, theirs, _ = ours_and_plain_peft(model, runs["lopt1"]["artifact_dir"], folder, 24)
    diff = (ours - theirs).abs().max().item()
    assert diff < 1e-4, diff
    assert ours.argmax(-1).tolist() == theirs.argmax(-1).tolist()


def test_a_reloaded_run_must_rebuild_the_prompt_it_was_trained_to(trained, tmp_path):
    """Issue 10: the prompt rebuilt on load (factors + seeded frozen tensors) is checked against the saved
    materialised prompt; a run whose frozen random tensors would come out differently is refused, clearly."""
    import shutil
    from lopt_core.training import artifacts
    from lopt_core.lm.models import load_model
    model, runs = trained
    lm = load_model(model, "cpu")
    artifacts.load_method(runs["ulpt"]["artifact_dir"], lm)  # ULPT's frozen projection is seeded: it rebuilds
    bad = tmp_path / "tampered"
    shutil.copytree(runs["ulpt"]["artifact_dir"], bad)
    doc = json.loads((bad / "run.json").read_text())
    doc["config"]["seed"] += 1  # another seed: another frozen projection, another prompt
    (bad / "run.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactMismatch, match="differs from the saved prompt"):
        artifacts.load_method(bad, lm)


def test_the_cli_exports_a_run_and_names_a_refusal(tmp_path, tiny_model_dir, capsys):
    """`python -m lopt_core export --run ID --out DIR`: the same export as the Runs tab's, from the store."""
    from lopt_core import cli
    from lopt_core.training.runs import run_and_record
    ok = run_and_record(tiny_cfg(tiny_model_dir, method="lopt1", steps=2))
    assert cli.main(["export", "--run", ok["run_id"], "--out", str(tmp_path / "adapter")]) == 0
    conf = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert conf["num_virtual_tokens"] == 4 and "PeftModel.from_pretrained" in capsys.readouterr().out
    lopa = run_and_record(tiny_cfg(tiny_model_dir, method="lopa", steps=1))
    assert cli.main(["export", "--run", lopa["run_id"], "--out", str(tmp_path / "no")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "no").exists()


PLAIN_PEFT_WRITER = r'''
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
model_dir, adapter, rows, max_new = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
tok = AutoTokenizer.from_pretrained(model_dir)
pm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), adapter).eval()
out = []
with torch.no_grad():
    for ids in rows:  # one row at a time: greedy, the adapter's own generate
        new = pm.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          max_new_tokens=max_new, do_sample=False)[0, len(ids):]
        out.append(new.tolist())
assert not any(m.startswith("lopt_core") for m in sys.modules), "lopt_core on the generating path"
print(json.dumps(out))
'''


def test_an_exported_generation_prompt_writes_the_same_tokens_in_plain_peft(tiny_model_dir, tmp_path):
    """A prompt trained on a generation task, exported, and loaded by plain PEFT in a process without lopt_core,
    writes greedily the tokens LoPT Lab's batched decoding writes."""
    import subprocess
    import sys
    from lopt_core.config import RunConfig
    from lopt_core.lm import decode, engine
    from lopt_core.lm.models import load_model
    from lopt_core.training import artifacts
    from lopt_core.training.loop import train
    cfg = RunConfig(model=tiny_model_dir, task="arithmetic", method="lopt1", n=5, r=2, steps=3, batch_size=4,
                    eval_every=0, eval_size=4, lr=0.05, device="cpu")
    res = train(cfg)
    folder = export_peft(res["artifact_dir"], tmp_path / "adapter")
    lm = load_model(tiny_model_dir, "cpu")
    _, method = artifacts.load_method(res["artifact_dir"], lm)
    rows = engine.encode(lm.tokenizer, ["Calculate 5 + 91 =", "Calculate 28 - 64 =", "Calculate 7 * 8 ="], 64)
    ours = decode.greedy(lm, rows, 6, method)
    proc = subprocess.run([sys.executable, "-c", PLAIN_PEFT_WRITER, tiny_model_dir, str(folder), json.dumps(rows),
                           "6"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout)
    stops = set(decode.stop_ids(lm.tokenizer))
    cut = [next((t[: i + 1] for i, x in enumerate(t) if x in stops), t) for t in theirs]  # ours stop at a newline
    assert ours == cut and all(ours)


def test_a_prompt_trained_on_gemma3_scores_the_same_in_plain_peft(tiny_family_dir, tmp_path, monkeypatch):
    """Gemma 3 scales its token embeddings by sqrt(d) inside the embedding layer and mixes windowed with global
    layers: an exported prompt must still load in plain PEFT against the same base and give the same label
    probabilities as LoPT Lab's evaluation (a tiny random Gemma 3 config; the real one is this, larger)."""
    from lopt_core.training.loop import train
    monkeypatch.setenv("LOPT_HOME", str(tmp_path / "home"))
    model = tiny_family_dir("gemma3_text")
    res = train(tiny_cfg(model, method="lopt1", steps=3))
    folder = export_peft(res["artifact_dir"], tmp_path / "adapter")
    ours, theirs, lm = ours_and_plain_peft(model, res["artifact_dir"], folder, 12)
    assert lm.model.config.model_type == "gemma3_text"
    assert (ours - theirs).abs().max().item() < 1e-4
