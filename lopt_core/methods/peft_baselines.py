"""Baselines through the `peft` library: LoRA (rank r on the attention projections) and prefix tuning (n tokens).

They are ModelAdapters, not prompts: attach(lm) wraps lm.model with peft (the engine runs the wrapped model as
is), detach(lm) gives the base model back, and the trainable count is read from the wrapped model's tensors that
require gradients. A run's artifact holds peft's own save_pretrained folder.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lopt_core.errors import ConfigError
from lopt_core.methods.registry import register
from lopt_core.methods.base import Knob, ModelAdapter, PromptContext

ADAPTER_DIR = "adapter"  # peft's save_pretrained folder inside a run's artifact folder


class PeftBaseline(ModelAdapter):
    default_lr = 1e-3

    def __init__(self, n: int, d: int, r: int):
        super().__init__()
        if not (n > 0 and d > 0):
            raise ConfigError(f"prompt needs n > 0 and d > 0, got n={n}, d={d}")
        self.n, self.d, self.r = n, d, r
        self.saved_dir: Path | None = None  # set by load: attach then reads the trained adapter from there

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, **cls.knob_values(cfg))

    def peft_config(self, model_config):
        raise NotImplementedError

    @property
    def peft_model(self):
        return self.adapted_model

    def attach(self, lm) -> None:
        """Inject the adapter into lm.model (frozen): a fresh one, or the trained one that load found."""
        self.set_adapted(self._wrap(lm.model))

    def _wrap(self, model):
        if self.saved_dir is not None:
            from peft import PeftModel
            return PeftModel.from_pretrained(model, str(self.saved_dir))
        from peft import get_peft_model
        return get_peft_model(model, self.peft_config(model.config))

    def detach(self, lm) -> None:
        """Give the base model back without the adapter (peft's own unload)."""
        pm = self.adapted_model
        self.set_adapted(None)
        if pm is not None:
            lm.model = pm.unload() if hasattr(pm, "unload") and self.name == "lora" else pm.get_base_model()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict
        return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(self.peft_model).items()}

    def trainable_parameters(self):
        if self.peft_model is None:
            raise RuntimeError(f"{self.name}: attach(lm) first; its tensors live in the wrapped model")
        return [p for p in self.peft_model.parameters() if p.requires_grad]

    def save(self, folder, cfg) -> None:
        self.peft_model.save_pretrained(Path(folder) / ADAPTER_DIR)

    def load(self, folder, lm) -> "PeftBaseline":
        saved = Path(folder) / ADAPTER_DIR
        if not saved.is_dir():
            raise FileNotFoundError(f"{folder} holds no {self.label} adapter ({ADAPTER_DIR}/)")
        self.saved_dir = saved
        return self

    @classmethod
    def formula(cls, n, r, d, model_config=None, **_):
        """Exact count: build the architecture on the meta device (no weights) and wrap it."""
        if model_config is None:
            raise TypeError(f"{cls.name} needs the model config to count its parameters")
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM
        auto = AutoModelForSeq2SeqLM if getattr(model_config, "is_encoder_decoder", False) else AutoModelForCausalLM
        with torch.device("meta"):
            model = auto.from_config(model_config)
        m = cls(n, d, r)
        m.set_adapted(m._wrap(model))
        return m.num_trainable()

    @staticmethod
    def task_type(model_config):
        from peft import TaskType
        return TaskType.SEQ_2_SEQ_LM if getattr(model_config, "is_encoder_decoder", False) else TaskType.CAUSAL_LM


@register
class LoRABaseline(PeftBaseline):
    name = "lora"
    label = "LoRA (peft)"
    color = "#19D3F3"
    symbol = "cross"
    formula_text = "LoRA on the attention projections"
    default_lr = 1e-3
    knobs = (Knob("lora_alpha", float, None, "the scaling alpha (the update is scaled by alpha/r); "
                  "blank: 2·r, so alpha/r = 2", low=0.01, high=100_000.0),)

    def __init__(self, n: int, d: int, r: int, lora_alpha: float | None = None):
        super().__init__(n, d, r)
        self.knobs[0].check(lora_alpha)
        self.lora_alpha = 2 * r if lora_alpha is None else lora_alpha

    def peft_config(self, model_config):
        from peft import LoraConfig
        # target_modules=None: peft's per-architecture default attention projections (q_proj, v_proj for Llama)
        return LoraConfig(task_type=self.task_type(model_config), r=self.r, lora_alpha=self.lora_alpha,
                          lora_dropout=0.0)


@register
class PrefixBaseline(PeftBaseline):
    name = "prefix"
    label = "Prefix tuning (peft)"
    color = "#FF6692"
    symbol = "x"
    formula_text = "per-layer keys/values"
    has_rank = False
    default_lr = 1e-2

    def peft_config(self, model_config):
        from peft import PrefixTuningConfig
        return PrefixTuningConfig(task_type=self.task_type(model_config), num_virtual_tokens=self.n)
