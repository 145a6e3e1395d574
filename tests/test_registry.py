"""Issue 10, one registry that tells the truth: every fact about a method lives on its class, so a method written in
a file of its own and registered with one call shows up in the CLI, the Train tab, the plots and the export rules,
and trains end to end; user-facing checks raise ConfigError (also under python -O); config and methods do not
import each other at module level."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lopt_core import cli
from lopt_core.plots import figures as plots
from lopt_core.config import ConfigError, RunConfig
from lopt_core.methods import METHODS, SoftPrompt, all_knobs, register, unregister

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "lopt_core"

TOY_SOURCE = '''
import torch
import torch.nn as nn

from lopt_core.errors import ConfigError
from lopt_core.methods import register
from lopt_core.methods.base import Knob, PromptContext, SoftPrompt


@register
class Toy(SoftPrompt):
    """X = gain * a b^T: a rank-one prompt, n + d trainable."""
    name = "{name}"
    label = "Toy {name}"
    color = "#123456"
    formula_text = "n + d"
    has_rank = False
    default_lr = 0.05
    exportable = {exportable}
    export_refusal = "" if {exportable} else "toys stay in the lab"
    knobs = (Knob("toy_gain", float, 1.0, "how much the toy prompt is scaled", low=0.5, high=8.0),)

    def __init__(self, n, d, toy_gain=1.0, token_norm=1.0):
        super().__init__(n, d)
        if n > 6:
            raise ConfigError(f"the toy takes n <= 6, got n={{n}}")
        self.gain = toy_gain
        self.a = nn.Parameter(torch.ones(n, 1))
        self.b = nn.Parameter(torch.full((1, d), token_norm / d ** 0.5))

    @classmethod
    def from_config(cls, cfg, ctx: PromptContext):
        return cls(cfg.n, ctx.d, **cls.knob_values(cfg), token_norm=ctx.token_norm)

    @classmethod
    def formula(cls, n, r, d, **_):
        return n + d

    def forward(self, summary=None):
        return self.gain * (self.a @ self.b)  # (n, 1) @ (1, d) -> (n, d)
'''


@pytest.fixture(params=[True, False], ids=["exportable", "refused"])
def toy(request, tmp_path):
    """A method written to a module file of its own, imported, registered by its decorator; unregistered after."""
    name = f"toy_{'exp' if request.param else 'kept'}_{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.py"
    path.write_text(TOY_SOURCE.format(name=name, exportable=request.param))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module.Toy
    finally:
        unregister(name)
        sys.modules.pop(name, None)
    assert name not in METHODS and "toy_gain" not in all_knobs()


def test_a_toy_method_is_found_in_the_cli(toy, tiny_model_dir, capsys):
    assert cli.main(["params", "--model", tiny_model_dir, "--method", toy.name, "--n", "4"]) == 0
    assert capsys.readouterr().out.strip() == str(4 + 32)  # its formula, n + d at the tiny model's d=32
    assert cli.main(["params", "--model", tiny_model_dir, "--method", toy.name, "--n", "9"]) == 2
    assert "the toy takes n <= 6, got n=9" in capsys.readouterr().err  # its own check, as a message
    assert cli.main(["params", "--model", tiny_model_dir, "--method", toy.name, "--n", "4", "--toy-gain", "9"]) == 2
    assert "toy_gain must be between 0.5 and 8.0, got 9.0" in capsys.readouterr().err
    assert cli.main(["params", "--model", tiny_model_dir, "--method", "lopt1", "--toy-gain", "2"]) == 2
    assert f"--toy-gain is a knob of Toy {toy.name}" in capsys.readouterr().err

    assert cli.main(["methods", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert list(listed) == list(METHODS)
    mine = listed[toy.name]
    assert (mine["label"], mine["formula"], mine["has_rank"], mine["input_dependent"], mine["exportable"]) == \
        (toy.label, "n + d", False, False, toy.exportable)
    assert mine["knobs"] == [{"name": "toy_gain", "flag": "--toy-gain", "type": "float", "default": 1.0,
                              "help": "how much the toy prompt is scaled", "choices": [], "low": 0.5, "high": 8.0}]
    assert cli.main(["methods"]) == 0
    text = capsys.readouterr().out
    assert toy.name in text and toy.label in text and "--toy-gain float (default 1.0): how much" in text
    assert all("--toy-gain" in _subparser_help(cmd) for cmd in cli.KNOB_COMMANDS)


def _subparser_help(cmd: str) -> str:
    sub = next(a for a in cli._parser()._actions if getattr(a, "choices", None) and cmd in a.choices)
    return sub.choices[cmd].format_help()


def test_a_toy_method_is_found_in_the_train_tab_and_the_plots(toy, tiny_model_dir):
    from lopt_core.ui import train as tab
    from lopt_core.ui.common import method_choices
    assert (toy.label, toy.name) in method_choices()
    readout = tab.param_readout(tiny_model_dir, toy.name, 4, 1)
    assert "36</span> trainable" in readout and f"{toy.label}: n + d, n=4<" in readout  # no r: it has no rank
    assert "the toy takes n &lt;= 6" in tab.param_readout(tiny_model_dir, toy.name, 9, 1)

    assert plots.method_label(toy.name) == toy.label and plots.method_color(toy.name) == "#123456"
    row = {"run_id": "2025-x", "method": toy.name, "n": 4, "r": 1, "trainable_params": 36, "accuracy": 0.7,
           "zero_shot_accuracy": 0.5, "state": "done", "model": "m", "task": "sst2",
           "config": {"steps": 10, "batch_size": 8, "lr": None, "seed": 0}}
    trace = next(t for t in plots.tradeoff_figure([row]).data if t.name == toy.label)
    assert trace.marker.color == "#123456"


def test_a_toy_method_trains_and_follows_its_export_rule(toy, tiny_model_dir, tmp_path):
    """Train, store, artifact and export take the toy with no edit outside its file."""
    from lopt_core.analysis.export import ExportError, export_peft, export_refusal
    from lopt_core.training.runs import run_and_record
    from helpers import tiny_cfg
    cfg = tiny_cfg(tiny_model_dir, method=toy.name, steps=2, method_knobs={"toy_gain": 2.0})
    res = run_and_record(cfg)
    assert res["state"] == "done" and res["trainable_params"] == 36
    assert json.loads((Path(res["artifact_dir"]) / "run.json").read_text())["config"]["method_knobs"] == \
        {"toy_gain": 2.0}
    if toy.exportable:
        assert export_refusal(toy.name) is None
        folder = export_peft(res["artifact_dir"], tmp_path / "adapter")
        assert json.loads((folder / "adapter_config.json").read_text())["num_virtual_tokens"] == 4
    else:
        assert f"{toy.label} cannot be exported" in export_refusal(toy.name)
        with pytest.raises(ExportError, match=f"{toy.label} cannot be exported as a prompt-tuning adapter: "
                                              "toys stay in the lab"):
            export_peft(res["artifact_dir"], tmp_path / "adapter")


def test_register_refuses_facts_that_contradict(tmp_path):
    def make(**facts):
        return type("Bad", (SoftPrompt,), {"name": "bad_toy", "label": "Bad", **facts})
    for facts, why in [(dict(input_dependent=True), "not one (n, d) matrix"),
                       (dict(exportable=False), "does not say why"),
                       (dict(default=True), "already is the default"),
                       (dict(name="lopt1"), "registered twice"),
                       (dict(knobs=(METHODS["lopa"].knobs[0],)), "already lopa's"),
                       (dict(knobs=(type(METHODS["lopa"].knobs[0])("steps", int, 1, "x"),)), "RunConfig field")]:
        with pytest.raises(TypeError, match=re.escape(why)):
            register(make(**facts))
    assert "bad_toy" not in METHODS


def test_the_facts_are_consistent_with_the_config():
    assert METHODS[RunConfig().method].reference  # the config's default method is the reference prompt
    assert not set(all_knobs()) & set(RunConfig().to_dict())  # knobs live in method_knobs, never as fields
    with pytest.raises(ConfigError, match="activation must be one of elu, relu, gelu, got 'tanh'"):
        RunConfig(method_knobs={"activation": "tanh"}).validate()
    with pytest.raises(ConfigError, match="z_lr_scale must be between"):
        RunConfig(method="ulpt", method_knobs={"z_lr_scale": 0}).validate()
    with pytest.raises(ConfigError, match="unknown method knob 'nope'"):
        RunConfig(method_knobs={"nope": 1}).validate()


def test_method_knobs_reach_the_methods():
    import torch
    from lopt_core.methods import PromptContext
    ctx = PromptContext(16, torch.randn(50, 16), None, 0)
    ulpt = METHODS["ulpt"].from_config(RunConfig(method="ulpt", n=3, r=2, method_knobs={"z_lr_scale": 4.0}), ctx)
    assert [g["lr"] for g in ulpt.param_groups(0.01)] == pytest.approx([0.01, 0.04])
    lora = METHODS["lora"].from_config(RunConfig(method="lora", n=3, r=2, method_knobs={"lora_alpha": 3.0}), ctx)
    assert lora.lora_alpha == 3.0 and METHODS["lora"].from_config(RunConfig(method="lora", r=4), ctx).lora_alpha == 8


def test_no_method_is_named_where_facts_are_read():
    """The places that used to hold method facts now read them from the classes."""
    for f in sorted(PKG.rglob("*.py")):
        if (PKG / "methods") in f.parents:
            continue
        names = {n.value for n in ast.walk(ast.parse(f.read_text()))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not names & set(METHODS), (str(f.relative_to(PKG)), names & set(METHODS))
    assert "assert " not in (PKG / "config.py").read_text()
    for f in (PKG / "methods").glob("*.py"):  # user shapes are checked in constructors; other asserts are internal
        assert "assert " not in _constructors(f), f.name


def _constructors(path: Path) -> str:
    src = path.read_text()
    return "".join(ast.get_source_segment(src, n) for n in ast.walk(ast.parse(src))
                   if isinstance(n, ast.FunctionDef) and n.name == "__init__")


def test_cli_train_with_an_impossible_shape_fails_with_one_line_under_python_O(lopt_home):
    """`python -O`: asserts vanish, the preflight does not; it fails before the model loads."""
    env = {**os.environ, "LOPT_HOME": str(lopt_home), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-O", "-m", "lopt_core", "train", "--method", "lopt1", "--n", "3", "--r", "40",
                        "--steps", "1"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    assert "rank r must be" in lines[0] and "got 40" in lines[0] and "n=3" in lines[0]
    assert not (lopt_home / "artifacts").exists() or not any((lopt_home / "artifacts").iterdir())
