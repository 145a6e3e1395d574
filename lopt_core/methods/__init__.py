"""Trainable methods; one registry of trainable methods: a new method is one new file whose class is decorated with @register.
Each is a TuningMethod of one of two kinds: a SoftPrompt (a prompt in front of the input) or a ModelAdapter
(it changes the model: LoRA, prefix tuning); see base.py.

Everything else (the CLI's flags and `methods` listing, the app's choices and readouts, plot colours and labels,
the export rules, sweep and form defaults) reads the class facts through this registry.

What lives here: base.py (the interface), registry.py, one file per method, encoders.py (LoPA's frozen sentence
encoder). May import: errors, paths, lm. Never config (methods read a RunConfig by its attributes) nor anything
above it.
"""
from lopt_core.methods.base import Knob, ModelAdapter, PromptContext, SoftPrompt, TuningMethod
from lopt_core.methods.registry import (METHODS, all_knobs, check_knobs, count_trainable, default_method,
                                        default_sweep_methods, get_method, knob_settings, method_color, method_label,
                                        method_symbol, reference_method, register, unregister)
from lopt_core.methods import prompt_tuning, lopt, ulpt, lopa, peft_baselines  # noqa: E402,F401  (registration)

__all__ = ["METHODS", "Knob", "ModelAdapter", "PromptContext", "SoftPrompt", "TuningMethod", "all_knobs",
           "check_knobs", "count_trainable", "default_method", "default_sweep_methods", "get_method", "knob_settings",
           "method_color", "method_label", "method_symbol", "reference_method", "register", "unregister"]
