"""Which of the engine's fast paths are proven exact on a given model, and the model's own output head.

The engine has two fast paths besides plain concatenation (prompt embeddings before the token embeddings,
an ordinary 2-D mask, one forward per batch):

  shared_prefix  the prompt's keys/values computed once (batch 1) and broadcast to every example;
  packed         a batch's examples packed into one row behind the prompt under a custom 4-D mask with
                 position ids restarting per example (engine.py), and K prompts per pass (multi_prompt.py).

Each is taken only where tests/test_fast_path.py proves it equal to plain concatenation on a tiny model of the
family, and only where the configuration keeps what those tests rely on:

  encoder-decoder       neither: the prompt leads the encoder input, the plain path is the only one.
  recurrent / hybrid    neither: a conv/SSM/linear-attention layer carries state along the row, so a packed
                        example would read the previous example's state and a cached prompt is not keys/values.
  sliding window        shared_prefix only. The engine keeps the prompt's whole cache (never cut at the
                        window) and the model's own mask builder applies the window; a custom 4-D mask is
                        passed to every layer unchanged, so packed rows would see past the window.
  ALiBi                 shared_prefix only: the biases are built from the 2-D mask's running count and cannot
                        restart per packed example (BLOOM's packed forward fails outright).
  attention other than sdpa/eager (flash, flex): neither; only these two take a custom 4-D mask and are tested.

Label-word scoring projects one hidden state onto the label words' rows of the output matrix; head() applies
what the model's own head applies after that matrix (final logit softcapping, logit scales) and proves it once
per model against the model's full forward on a few tokens, refusing a head it does not reproduce.
"""
from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass

import torch
from lopt_core.errors import HeadMismatch
from lopt_core.lm import attention

# model types whose fast paths tests/test_fast_path.py compares with plain concatenation
VERIFIED = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "gpt2", "bloom")
ATTENTION = ("sdpa", "eager", attention.NAME)   # NAME: sdpa on fp32 copies of q, k, v (lm/attention.py)
ATTENTION_LAYERS = ("full_attention", "sliding_attention")


@dataclass(frozen=True)
class FastPath:
    shared_prefix: bool
    packed: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _windowed(cfg) -> bool:
    types = getattr(cfg, "layer_types", None)
    return getattr(cfg, "sliding_window", None) is not None and (not types or "sliding_attention" in types)


def _alibi(cfg) -> bool:
    attn = getattr(cfg, "attn_config", None)
    return (cfg.model_type == "bloom" or bool(getattr(cfg, "alibi", False))
            or bool(attn.get("alibi") if isinstance(attn, dict) else getattr(attn, "alibi", False)))


def decide_config(cfg) -> FastPath:
    """The decision from a model's config alone (is_encoder_decoder, layer_types, model_type, attention
    implementation, ALiBi, sliding window)."""
    mt = cfg.model_type
    if getattr(cfg, "is_encoder_decoder", False):
        return FastPath(False, False, f"{mt}: encoder-decoder; the prompt leads the encoder input (plain path)")
    other = sorted({t for t in getattr(cfg, "layer_types", None) or () if t not in ATTENTION_LAYERS})
    if other:
        return FastPath(False, False, f"{mt}: {'/'.join(other)} layers carry state along the row, so neither a "
                                      f"cached prompt nor packed rows are exact (plain path)")
    if not getattr(cfg, "is_causal", True):
        return FastPath(False, False, f"{mt}: bidirectional attention; the prompt would see the text (plain path)")
    if mt not in VERIFIED:
        return FastPath(False, False, f"{mt}: not a family whose fast paths are proven exact "
                                      f"({', '.join(VERIFIED)}); plain path")
    impl = getattr(cfg, "_attn_implementation", None)
    if impl not in ATTENTION:
        return FastPath(False, False, f"{mt}: {impl} attention is not among the tested {'/'.join(ATTENTION)} "
                                      f"(plain path)")
    if _alibi(cfg):
        return FastPath(True, False, f"{mt}: ALiBi biases follow the 2-D mask's running count and cannot restart "
                                     f"per packed example: shared prompt cache, padded batches")
    if _windowed(cfg):
        return FastPath(True, False, f"{mt}: sliding window {cfg.sliding_window}; a packed row's 4-D mask would "
                                     f"bypass it: shared prompt cache (kept whole), padded batches")
    return FastPath(True, True, f"{mt}: full causal attention with position ids ({impl}): shared prompt cache, "
                                f"packed rows where the cost model says they pay")


_decisions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decide(lm) -> FastPath:
    """The decision for a loaded model (cached per model object)."""
    model = lm.model
    if model not in _decisions:
        fp = decide_config(model.config)
        if fp.shared_prefix and not type(model)._supports_default_dynamic_cache():
            fp = FastPath(False, False, f"{model.config.model_type}: its cache is not a key/value DynamicCache")
        _decisions[model] = fp
    return _decisions[model]


def for_run(lm, method, wanted: bool = True) -> dict:
    """What a run with `method` (class or instance) uses on `lm`: the model's decision, unless the method or the
    run's settings take the plain path anyway. Recorded in each run's result as result["fast_path"]."""
    if getattr(method, "changes_model", False):
        why = "the adapter runs inside the model: its own forward"
    elif getattr(method, "input_dependent", False):
        why = "one prompt per input: plain concatenation"
    elif not wanted:
        why = "shared_prefix is off in the run's settings: plain concatenation"
    else:
        return decide(lm).as_dict()
    return FastPath(False, False, why).as_dict()


# ---------------------------------------------------------------- the output head after its matrix

def head_transform(cfg):
    """What the model's own head applies to (hidden @ W^T + b): logit scales, then final logit softcapping."""
    scale = getattr(cfg, "logit_scale", None)          # Cohere: logits * logit_scale
    divide = getattr(cfg, "logits_scaling", None)      # Granite: logits / logits_scaling
    cap = getattr(cfg, "final_logit_softcapping", None)  # Gemma-2/3: cap * tanh(logits / cap)

    def apply(logits: torch.Tensor) -> torch.Tensor:
        if scale is not None:
            logits = logits * scale
        if divide is not None:
            logits = logits / divide
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits
    return apply


_heads: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def head(lm):
    """head_transform for this model, proven once on a few tokens: the full output matrix followed by the
    transform equals the model's own logits. Raises HeadMismatch where it does not."""
    model = lm.model
    if model not in _heads:
        apply = head_transform(model.config)
        out = model.get_output_embeddings()
        probe = torch.arange(1, 6, device=out.weight.device).unsqueeze(0) % out.weight.shape[0]   # (1, 5)
        modes = {m: m.training for m in model.modules()}
        model.eval()                                                  # no dropout (a LoRA run trains)
        with torch.no_grad(), torch.autocast(out.weight.device.type, enabled=False):
            own = model(input_ids=probe).logits.float()                                          # (1, 5, V)
            ours = apply(out(model.base_model(input_ids=probe).last_hidden_state).float())
        for m, training in modes.items():
            m.training = training
        err = float((own - ours).abs().max())
        eps = max(1e-4, 2 * torch.finfo(out.weight.dtype).eps)  # bf16 weights: the two differ by its rounding
        if err > eps * (1 + float(own.abs().max())):
            raise HeadMismatch(f"{model.config.model_type}: the model's output head does more than its output "
                               f"matrix, logit scale and softcapping (logits differ by {err:.3g}); label-word "
                               f"scoring would not give the model's own probabilities")
        _heads[model] = apply
    return _heads[model]
