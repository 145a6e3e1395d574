"""Shared fixtures: an isolated LOPT_HOME per test, one shared dequantized-model cache, tiny random models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LOPT_MODEL_CACHE", str(ROOT / ".cache" / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")        # tests never reach for the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# markers by file (pytest.ini registers them): `pytest -m unit` runs the fast tests, `-m "not docker"` skips one kind
MARKERS = {"test_browser": "browser", "test_docker": "docker", "test_ray": "ray", "test_app_e2e": "app",
           "test_app_rank": "app", "test_hosting": "app", "test_integration": "slow"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        stem = Path(str(item.fspath)).stem
        kind = next((m for prefix, m in MARKERS.items() if stem == prefix or stem.startswith(prefix + "_")), "unit")
        item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(autouse=True)
def lopt_home(tmp_path, monkeypatch):
    home = tmp_path / "lopt_home"
    monkeypatch.setenv("LOPT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def smol_tokenizer():
    from transformers import AutoTokenizer
    from lopt_core.lm.models import offline_default_folder
    tok = AutoTokenizer.from_pretrained(str(offline_default_folder()))
    tok.pad_token = tok.eos_token
    return tok


def _save_tiny(folder: Path, config, tok) -> str:
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer):
    """A tiny random Llama (d=32, 2 layers, GQA) with the SmolLM tokenizer, loadable as RunConfig(model=...)."""
    from transformers import LlamaConfig
    cfg = LlamaConfig(vocab_size=len(smol_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, pad_token_id=smol_tokenizer.pad_token_id,
                      initializer_range=0.2)  # large enough that a prompt can move the label logits
    return _save_tiny(tmp_path_factory.mktemp("tiny_llama"), cfg, smol_tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, smol_tokenizer):
    from transformers import GPT2Config
    cfg = GPT2Config(vocab_size=len(smol_tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=1024,
                     bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id)
    return _save_tiny(tmp_path_factory.mktemp("tiny_gpt2"), cfg, smol_tokenizer)


@pytest.fixture
def tiny_lm(tiny_model_dir):
    from lopt_core.lm.models import load_model
    return load_model(tiny_model_dir, "cpu")


@pytest.fixture
def sentiment_csv(tmp_path):
    """A small user CSV: two classes, easy words."""
    import random
    rng = random.Random(0)
    good, bad = ["great", "wonderful", "superb", "lovely"], ["awful", "terrible", "boring", "dull"]
    rows = ["text,label"]
    for i in range(60):
        lab = i % 2
        w = rng.choice(good if lab else bad)
        rows.append(f"\"this film is {w} and {rng.choice(good if lab else bad)}\",{'pos' if lab else 'neg'}")
    p = tmp_path / "reviews.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory, smol_tokenizer):
    """A tiny random T5 (encoder-decoder) with the SmolLM tokenizer: the seq2seq path."""
    from transformers import AutoModelForSeq2SeqLM, T5Config
    cfg = T5Config(vocab_size=len(smol_tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   pad_token_id=smol_tokenizer.pad_token_id, eos_token_id=smol_tokenizer.eos_token_id,
                   decoder_start_token_id=smol_tokenizer.pad_token_id, initializer_factor=1.0)
    folder = tmp_path_factory.mktemp("tiny_t5")
    torch.manual_seed(0)
    AutoModelForSeq2SeqLM.from_config(cfg).save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return str(folder)


# tiny random causal LMs of more families (tests/test_fast_path.py): config class, its own keyword arguments
TINY_FAMILIES = {
    "mistral": ("MistralConfig", dict(sliding_window=8)),                   # every layer windowed, window 8
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", dict(head_dim=8)),
    "gemma2": ("Gemma2Config", dict(head_dim=8, sliding_window=8,           # windowed and global layers
                                    final_logit_softcapping=2.0)),          # a cap the label logits reach
    "gemma3_text": ("Gemma3TextConfig", dict(head_dim=8, sliding_window=8,  # windowed and global layers
                                             layer_types=["sliding_attention", "full_attention"])),
    "bloom": ("BloomConfig", dict(n_layer=2, n_head=4)),                   # ALiBi
    "lfm2": ("Lfm2Config", dict(layer_types=["conv", "full_attention"])),  # hybrid: a short-conv layer
}


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory, smol_tokenizer):
    """family -> folder of a tiny random model of that family (d=32, 2 layers) with the SmolLM tokenizer."""
    import transformers
    made: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in made:
            cls, own = TINY_FAMILIES[family]
            cfg = getattr(transformers, cls)(
                vocab_size=len(smol_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                pad_token_id=smol_tokenizer.pad_token_id, bos_token_id=smol_tokenizer.bos_token_id,
                eos_token_id=smol_tokenizer.eos_token_id, initializer_range=0.2, **own)
            made[family] = _save_tiny(tmp_path_factory.mktemp(f"tiny_{family}"), cfg, smol_tokenizer)
        return made[family]
    return get
