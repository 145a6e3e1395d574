"""Guided experiments: one click launches a sweep that answers one question, with a quick setting for a class.

Each preset builds its SweepSpec(s) for the chosen model; `quick` trades steps and evaluation size for time,
chosen by measurement so that the rank-sensitivity experiment finishes within 15 minutes on the project's
2-core CPU (README, "Sweeps").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .sweep import SweepError, SweepSpec

FULL = dict(steps=150, batch_size=8, eval_every=50, eval_size=0)
QUICK = dict(steps=30, batch_size=8, eval_every=0, eval_size=300)


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    question: str
    why: str
    build: Callable[[str, dict, bool], list[SweepSpec]]   # (model, knobs, hub) -> specs

    def specs(self, model: str = "smollm2-135m", quick: bool = False, hub: bool | None = None,
              limits=None) -> list[SweepSpec]:
        """The preset's sweeps; on a host with size caps (`limits`), its knobs brought within them."""
        from .models import hub_reachable
        hub = hub_reachable() if hub is None else hub
        knobs = dict(QUICK if quick else FULL)
        return self.build(model, limits.fit(knobs) if limits is not None else knobs, hub)


def _pt_vs_lopt(model, knobs, hub):
    return [SweepSpec(model=model, task="sst2", methods=["prompt_tuning", "lopt1"], n=[10], r=[2, 5], seeds=[0],
                      knobs=knobs)]


def _rank(model, knobs, hub):
    return [SweepSpec(model=model, task="sst2", methods=["prompt_tuning", "lopt1", "lopt2", "ulpt"], n=[20],
                      r=[1, 2, 5, 10], seeds=[0], knobs=knobs)]


def harder_task(hub: bool) -> str:
    """CB where the hub answers (its real train split); offline RTE, since offline CB is only its 56
    validation examples (a 22-example test set is noise) and BoolQ's long passages cost several times more
    per example on a CPU."""
    return "cb" if hub else "rte"


def _tasks(model, knobs, hub):
    return [SweepSpec(model=model, task=t, methods=["prompt_tuning", "lopt1"], n=[10], r=[2, 5], seeds=[0],
                      knobs=knobs) for t in ("sst2", harder_task(hub))]


PRESETS = {p.key: p for p in [
    Preset("pt_vs_lopt", "Prompt tuning vs LoPT-1",
           "Does factorising a 10-token prompt into rank 2 or 5 lose accuracy, and how many parameters does it save?",
           "Prompt tuning n=10 against LoPT-1 r=2 and r=5 on SST-2: three configurations.", _pt_vs_lopt),
    Preset("rank_sensitivity", "Rank sensitivity",
           "How does accuracy change with the rank r, and how low can r go before it drops?",
           "LoPT-1, LoPT-2 and ULPT at n=20 with r in {1, 2, 5, 10}, prompt tuning n=20 as the reference: "
           "13 configurations on SST-2.", _rank),
    Preset("task_difficulty", "Easy vs harder task",
           "Does a low-rank prompt lose more on a harder task than on SST-2, at the same parameter counts?",
           "Prompt tuning n=10 and LoPT-1 r=2, 5 on SST-2 and on a harder task: CB where the Hugging Face Hub "
           "answers; offline RTE, because the offline CB pack is only CB's 56 validation examples (a 22-example "
           "test set is noise) and BoolQ's long passages are several times slower per example on a CPU.", _tasks),
]}


def get(key: str) -> Preset:
    if key not in PRESETS:
        raise SweepError(f"unknown preset {key!r}; choose from: {', '.join(PRESETS)}")
    return PRESETS[key]
