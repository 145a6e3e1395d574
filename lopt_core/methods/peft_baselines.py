"""Baselines through the `peft` library: LoRA (rank r on the attention projections) and prefix tuning (n tokens).

They are not prompts: `wrap(model)` returns the peft-wrapped model, which the engine runs as is, and the
trainable count is read from the wrapped model's tensors that require gradients.
"""
from __future__ import annotations

import torch

from . import register
from .base import Knob, PromptContext, SoftPrompt


class PeftBaseline(SoftPrompt):
    is_peft = True
    default_lr = 1e-3
    exportable = False
    export_refusal = "it is not a prompt in front of the input"

    def __init__(self, n: int, d: int, r: int):
        super().__init__(n, d)
        self.r = r
        self.__dict__["peft_model"] = None  # kept out of nn.Module registration: it holds the whole base model

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, cfg.r, **cls.knob_values(cfg))

    def peft_config(self, model_config):
        raise NotImplementedError

    def wrap(self, model):
        """Inject the adapter into `model` (frozen) and return the peft model."""
        from peft import get_peft_model
        self.__dict__["peft_model"] = get_peft_model(model, self.peft_config(model.config))
        return self.peft_model

    def unwrap(self):
        """Give the base model back without the adapter (peft's own unload)."""
        pm, self.__dict__["peft_model"] = self.peft_model, None
        if pm is None:
            return None
        base = pm.unload() if hasattr(pm, "unload") and self.name == "lora" else pm.get_base_model()
        return base

    def trainable_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict
        return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(self.peft_model).items()}

    def num_trainable(self) -> int:
        assert self.peft_model is not None, "wrap(model) first"
        return sum(p.numel() for p in self.peft_model.parameters() if p.requires_grad)

    def trainable_parameters(self):
        return [p for p in self.peft_model.parameters() if p.requires_grad]

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
        m.wrap(model)
        return m.num_trainable()

    @staticmethod
    def task_type(model_config):
        from peft import TaskType
        return TaskType.SEQ_2_SEQ_LM if getattr(model_config, "is_encoder_decoder", False) else TaskType.CAUSAL_LM

    def forward(self, summary=None):
        raise TypeError(f"{self.name} is a peft adapter, not a prompt: run the wrapped model")


@register
class LoRABaseline(PeftBaseline):
    name = "lora"
    label = "LoRA (peft)"
    color = "#19D3F3"
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
    formula_text = "per-layer keys/values"
    has_rank = False
    default_lr = 1e-2

    def peft_config(self, model_config):
        from peft import PrefixTuningConfig
        return PrefixTuningConfig(task_type=self.task_type(model_config), num_virtual_tokens=self.n)
