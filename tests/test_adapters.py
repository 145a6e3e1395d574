"""Methods that change the model are ModelAdapters: a toy one, written in a module of its own, trains, saves, reloads
and is re-evaluated through the same calls as every prompt; the base model is always given back; and the run-level
code holds no branch on the kind of method."""
from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path

import pytest
import torch

from lopt_core.config import RunConfig
from lopt_core.methods import METHODS, ModelAdapter, SoftPrompt, TuningMethod, get_method, register, unregister

ROOT = Path(__file__).resolve().parent.parent

TOY_SOURCE = '''
import torch
import torch.nn as nn

from lopt_core.methods import register
from lopt_core.methods.base import ModelAdapter


@register
class ShiftAdapter(ModelAdapter):
    """Adds one trained vector (d,) to every input embedding, through a hook on the model's embedding layer."""
    name = "{name}"
    label = "Shift {name}"
    color = "#654321"
    formula_text = "d"
    has_rank = False
    default_lr = 0.05
    export_refusal = "a shift of the embeddings is not a prompt"

    def __init__(self, d):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(d))
        self.hook = None

    @classmethod
    def from_config(cls, cfg, ctx):
        return cls(ctx.d)

    @classmethod
    def formula(cls, n, r, d, **_):
        return d

    def attach(self, lm):
        self.to(lm.device)
        emb = lm.model.get_input_embeddings()
        self.hook = emb.register_forward_hook(lambda mod, args, out: out + self.shift.to(out.dtype))
        self.set_adapted(lm.model)

    def detach(self, lm):
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        self.set_adapted(None)
'''


@pytest.fixture
def shift_adapter(tmp_path, monkeypatch):
    """The toy adapter's class, imported from a module file of its own and registered; unregistered after."""
    name = f"shift_{uuid.uuid4().hex[:6]}"
    (tmp_path / f"{name}.py").write_text(TOY_SOURCE.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module(name).ShiftAdapter
    finally:
        unregister(name)
        sys.modules.pop(name, None)
    assert name not in METHODS


def test_a_toy_adapter_trains_saves_reloads_and_is_refused_by_export(shift_adapter, tiny_model_dir, sentiment_csv,
                                                                    tmp_path):
    from lopt_core.training import artifacts
    from lopt_core.analysis.export import export_refusal
    from lopt_core.lm.models import load_model
    from lopt_core.training.runs import evaluate_run, run_and_record
    from lopt_core.store.sqlite import Store

    assert get_method(shift_adapter.name) is shift_adapter
    facts = shift_adapter.facts()
    assert facts["changes_model"] is True and facts["exportable"] is False
    lm = load_model(tiny_model_dir, "cpu")
    base = lm.model
    before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(sentiment_csv), method=shift_adapter.name,
                    n=4, r=1, steps=2, batch_size=4, eval_every=0, eval_size=0, device="cpu")
    store = Store()
    res = run_and_record(cfg, store=store, lm=lm)

    assert res["state"] == "done" and res["steps_done"] == 2 and 0 <= res["accuracy"] <= 1
    assert res["trainable_params"] == 32  # its formula, d at the tiny model's width
    assert res["fast_path"]["shared_prefix"] is False and "adapter" in res["fast_path"]["reason"]
    # the shared base model is given back: the same object, its weights untouched, no hook left on it
    assert lm.model is base and not base.get_input_embeddings()._forward_hooks
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())

    folder = Path(res["artifact_dir"])
    assert (folder / artifacts.ADAPTER_FILE).is_file() and not (folder / artifacts.PROMPT_FILE).exists()
    _, method = artifacts.load_method(folder, lm)
    assert isinstance(method, shift_adapter) and method.adapted_model is None  # loaded, not yet attached
    assert method.shift.abs().sum() > 0  # two steps moved it away from zeros
    again = evaluate_run(res["run_id"], store=store, lm=lm)
    assert again["accuracy"] == res["accuracy"] and again["eval_examples"] == res["eval_examples"]
    assert lm.model is base and not base.get_input_embeddings()._forward_hooks

    assert "a shift of the embeddings is not a prompt" in export_refusal(shift_adapter.name)


def test_a_peft_adapter_gives_the_base_model_back_when_scoring_fails(tiny_model_dir):
    from lopt_core.methods import PromptContext
    from lopt_core.lm.models import load_model
    lm = load_model(tiny_model_dir, "cpu")
    base = lm.model
    before = {k: v.clone() for k, v in base.state_dict().items()}
    for name in ("lora", "prefix"):
        cls = METHODS[name]
        assert issubclass(cls, ModelAdapter) and cls.changes_model and not issubclass(cls, SoftPrompt)
        method = cls.from_config(RunConfig(method=name, n=3, r=2), PromptContext(lm.d, lm.embeddings, lm.tokenizer))
        with pytest.raises(RuntimeError, match="attach"):
            method.scoring_args()
        with pytest.raises(KeyError):
            with method.attached(lm):
                args = method.scoring_args()
                assert args["method"] is None and args["peft_model"] is not None and method.num_trainable() > 0
                raise KeyError("scoring failed")
        assert lm.model is base and method.adapted_model is None
        assert set(base.state_dict()) == set(before)  # no LoRA layers left in the base model
        assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())


def test_every_method_is_one_kind_and_says_so():
    for cls in METHODS.values():
        assert issubclass(cls, SoftPrompt) != issubclass(cls, ModelAdapter)
        assert cls.changes_model == issubclass(cls, ModelAdapter)
        assert not hasattr(cls, "is_peft")
    with pytest.raises(TypeError, match="contradicts its kind"):
        register(type("Liar", (SoftPrompt,), {"name": "liar_toy", "label": "Liar", "changes_model": True,
                                              "exportable": False, "export_refusal": "no"}))
    with pytest.raises(TypeError, match="either a SoftPrompt or a ModelAdapter"):
        register(type("Neither", (TuningMethod,), {"name": "neither_toy", "label": "Neither"}))
    assert "liar_toy" not in METHODS and "neither_toy" not in METHODS


@pytest.mark.parametrize("path", ["lopt_core/training/loop.py", "lopt_core/training/runs.py", "lopt_core/training/artifacts.py"])
def test_run_code_has_no_branch_on_the_kind_of_method(path):
    """train, runs and artifacts call the method (attached, scoring_args, save, load); they never ask what it is."""
    text = (ROOT / path).read_text()
    for branch in ("is_peft", "changes_model", ".peft_model", "isinstance(method", "unwrap("):
        assert branch not in text, f"{path} still branches on the kind of method: {branch!r}"
