"""The one check before queuing. Every front end (the Train tab, the CLI, JobManager.submit, sweeps, presets,
the Ray backend) calls check() or check_configs() once per submission and passes on what it returns: a Checked
config, which the job manager and the worker trust, so neither re-runs the tokenizer or file-preview checks.

What is checked, each as a LoptError whose message names the problem (ConfigError, TaskError, ModelUnavailable,
HostingError):
  the fields (RunConfig.validate), the host's limits, the model and task available here (a hub model or an
  online-only task offline), a user file and its label words (read off the server's threads when large), a
  built-in task's label words, and the method's own shape rules (LoPT-1 needs r <= n) on a stand-in embedding
  table of the model's width, so nothing is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lopt_core.choices import Init
from lopt_core.config import ConfigError, RunConfig
from lopt_core.data import label_words
from lopt_core.data.preview import preview
from lopt_core.data.tasks import get_task, load_for_config, where
from lopt_core.errors import LoptError, TaskError
from lopt_core.hosting import limits as hosting
from lopt_core.lm.models import check_available, model_config, model_width
from lopt_core.methods import PromptContext, get_method


@dataclass(frozen=True)
class Checked:
    """A RunConfig that passed check(): made only here, or by a worker reading a run row of the store (which
    only checked configurations reach)."""
    config: RunConfig


def check(cfg: RunConfig, limits=None) -> Checked:
    """Everything that can be checked before a worker starts, as ConfigError with a clear message:
    field ranges, host limits, the data file, and method shape constraints (e.g. LoPT-1 needs r <= n)."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError("expected a RunConfig")
    cfg.validate()
    check_shared(cfg, limits)
    check_method(cfg)
    return Checked(cfg)


def check_shared(cfg: RunConfig, limits=None) -> None:
    """The checks that depend on the model, task and data only (one per sweep): host limits, the model and the
    task available here (a hub model or an online-only task offline), the data file and label words."""
    (limits or hosting.limits()).check(cfg)
    check_available(cfg.model)  # ModelUnavailable names what can be loaded here
    if cfg.task == "file" and cfg.kind not in (None, "classification"):  # read and checked whole, now
        try:
            data = load_for_config(cfg)
        except TaskError as e:
            raise ConfigError(str(e)) from None
        _check_kind_on_model(cfg, data.kind)
    elif cfg.task == "file":  # the file read (off the server's GIL when large) and its label words tokenized
        p = preview(cfg.data_file, cfg.text_column, cfg.label_column, cfg.text_b_column, cfg.model,
                    cfg.label_words, cfg.split_seed)
        if p.words_problem:
            raise ConfigError(f"{p.facts.name}: {p.words_problem}")
    else:
        try:
            task = get_task(cfg.task)
        except TaskError as e:
            raise ConfigError(f"{e}") from None
        if cfg.kind not in (None, task.kind):
            raise ConfigError(f"task {cfg.task} is {task.kind.replace('_', ' ')}, not {cfg.kind.replace('_', ' ')}; "
                              f"--kind is for --task file")
        where(cfg.task, cfg.data_source)  # TaskError for an online-only task offline
        _check_kind_on_model(cfg, task.kind)
        if cfg.label_words:
            if task.kind != "classification":
                raise ConfigError(f"task {cfg.task} is {task.kind.replace('_', ' ')}: label words are for "
                                  f"classification tasks")
            _check_task_words(cfg, task)


def _check_kind_on_model(cfg: RunConfig, kind: str) -> None:
    """Generation and multiple choice score answer tokens after the input: a causal LM only."""
    if kind == "classification":
        return
    try:
        encdec = bool(getattr(model_config(cfg.model), "is_encoder_decoder", False))
    except Exception:  # the config cannot be read here: the run itself will report why
        return
    if encdec:
        raise ConfigError(f"{kind.replace('_', ' ')} tasks need a causal LM; {cfg.model} is encoder-decoder")


def _check_task_words(cfg: RunConfig, task) -> None:
    """Label words given for a built-in task: one per class, starting with different tokens of the model's."""
    try:
        tok = label_words.tokenizer_for(cfg.model)
    except Exception:  # the tokenizer cannot be loaded here: the run itself will report why
        return
    try:
        label_words.check(cfg.label_words, tok, [w.strip() for w in task.label_words])
    except TaskError as e:
        raise ConfigError(f"task {cfg.task}: {e}") from None


def check_method(cfg: RunConfig, d: int | None = None) -> int | None:
    """The method's own shape checks (e.g. LoPT-1 needs r <= n), on a stand-in embedding table of the model's
    width d (read from the model's config when not given); returns d for the next configuration."""
    cls = get_method(cfg.method)
    if cfg.init == Init.TEXT:  # needs the tokenizer: the run itself checks it
        return d
    if d is None:
        try:
            d = model_width(cfg.model)
        except Exception:  # the config cannot be read here: the run itself will report why
            return None
    # build the method on a stand-in embedding table: its own checks raise ConfigError with their message
    cls.from_config(cfg, PromptContext(d, torch.ones(16, d), None, cfg.seed))
    return d


def check_configs(cfgs: list[RunConfig], limits=None, name=lambda c: "") -> list[Checked]:
    """One check of many configurations that share model, task and data (a sweep): every one's fields and
    method shape, the shared part once. `name(cfg)` prefixes a configuration's message ("lopt1 n=20 r=5: ...")."""
    for c in cfgs:
        try:
            c.validate()
        except LoptError as e:
            raise type(e)(f"{name(c)}{e}") from None
    check_shared(cfgs[0], limits)
    d = None
    for c in cfgs:
        try:
            d = check_method(c, d)
        except LoptError as e:
            raise type(e)(f"{name(c)}{e}") from None
    return [Checked(c) for c in cfgs]
