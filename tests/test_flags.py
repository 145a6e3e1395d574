"""One flag table (lopt_core/flags.py): a sweep's command line parses back to the same sweep, every shared
setting and method knob included, and the train command takes the same flags."""
from __future__ import annotations

import shlex

import pytest

from lopt_core import cli, flags
from lopt_core.config import ConfigError, RunConfig
from lopt_core.sweeps.spec import SweepSpec, parse_int_list


def parse_back(command: str) -> SweepSpec:
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "lopt_core", "sweep"]
    return cli.sweep_spec_from_args(cli._parser().parse_args(argv[3:]))


def test_a_sweeps_command_line_gives_the_same_sweep_back():
    knobs = dict(steps=30, batch_size=4, lr=0.02, warmup=0.2, eval_every=0, eval_size=100, eval_batch_size=16,
                 max_length=128, weight_decay=0.01, grad_clip=0.5, lr_schedule="constant", split_seed=3, init="text", init_text="great movie",
                 device="cpu", data_source="offline", data_file="/tmp/x y.csv", text_column="review",
                 text_b_column="title", label_column="stars", label_words=[" bad", " good"], shared_prefix=False,
                 method_knobs={"activation": "relu", "z_lr_scale": 4.0})
    spec = SweepSpec(model="smollm2-135m", task="file", methods=["lopt2", "ulpt"], n=[5, 20], r=[1, 2],
                     seeds=[0, 1], knobs=knobs)
    back = parse_back(spec.command())
    for name in ("n", "r", "seeds"):  # the grid's lists arrive as text; validate() parses them
        setattr(back, name, parse_int_list(getattr(back, name), name))
    assert back.to_dict() == spec.to_dict()


def test_every_runconfig_field_but_the_grid_has_a_flag():
    grid = {"model", "task", "method", "n", "r", "seed", "method_knobs"}
    fields = set(RunConfig().to_dict()) - grid
    assert fields == {f.field for f in flags.SHARED}, "a new RunConfig field needs a row in flags.SHARED"


def test_a_knob_of_a_method_not_in_the_sweep_is_refused():
    args = cli._parser().parse_args(["sweep", "--methods", "lopt1", "--activation", "relu"])
    with pytest.raises(ConfigError, match="--activation is a knob of LoPT-2"):
        cli.sweep_spec_from_args(args)


def test_train_reads_the_same_flags(monkeypatch):
    args = cli._parser().parse_args(["train", "--method", "lopt2", "--n", "4", "--r", "2", "--no-shared-prefix",
                                     "--label-words", "bad, good", "--activation", "gelu", "--steps", "7"])
    cfg = cli._run_config(args)
    assert (cfg.shared_prefix, cfg.label_words, cfg.method_knobs, cfg.steps) == \
        (False, [" bad", " good"], {"activation": "gelu"}, 7)
