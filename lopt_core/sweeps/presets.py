"""Guided experiments: one click launches a sweep that answers one question, with a quick setting for a class.

Each preset (an entry of assets/presets/presets.json: the methods it compares are data, not code) builds its
SweepSpec(s) for the chosen model; `quick` trades steps and evaluation size for time. Its steps are the fewest
measured at which every configuration of the prompt-tuning-vs-LoPT-1 preset beats no prompt on seeds 0-2: at 30
steps LoPT-1 fell to or below it on two seeds (bench/quick-settings-2026-12-06.txt), at 60 none did.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lopt_core.hosting import limits as hosting
from lopt_core.lm.models import OFFLINE_DEFAULT, hub_reachable
from lopt_core.sweeps import spec
from lopt_core.sweeps.spec import SweepError, SweepSpec

FULL = dict(steps=150, batch_size=8, eval_every=50, eval_size=0)
QUICK = dict(steps=60, batch_size=8, eval_every=0, eval_size=300)


def quick_gives_up() -> str:
    """What the quick setting trades for time, from the two settings themselves (the preset cards say it)."""
    return (f"quick trains {QUICK['steps']} steps instead of {FULL['steps']} and scores the first "
            f"{QUICK['eval_size']} test examples instead of all: lower scores, and differences under about "
            f"{100 * 2 * (2 * 0.25 / QUICK['eval_size']) ** 0.5:.0f} points between two runs can be noise; a "
            f"low-rank prompt can still land under no prompt on an unlucky seed (one run of 15 over seeds 0-4 in "
            f"the measured check, bench/quick-settings-2026-12-07-xeon-amx.txt); compare quick runs with quick "
            f"runs, or with full ones on the examples they share")


PRESETS_FILE = Path(__file__).resolve().parents[2] / "assets" / "presets" / "presets.json"
HARDER = "$harder"  # a sweep's task placeholder: harder_task() on this machine
OTHER = "$other"    # a sweep's model placeholder: the other embedded model than the one chosen (other_model)


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    question: str
    why: str
    sweeps: tuple[dict, ...]   # each: task (or HARDER), methods, n, r, seeds; model (OTHER) where not the chosen
    quick: dict | None = None  # knobs its quick setting changes beyond QUICK, as measured: {"knobs": {...}, "why": ...}

    def quick_note(self) -> str:
        """What this preset's quick setting changes beyond the common one, and why ("" where nothing)."""
        if not self.quick:
            return ""
        knobs = ", ".join(f"{k} {v}" for k, v in self.quick["knobs"].items())
        return f"quick runs this one at {knobs}: {self.quick['why']}"

    def specs(self, model: str = OFFLINE_DEFAULT, quick: bool = False, hub: bool | None = None,
              limits=None) -> list[SweepSpec]:
        """The preset's sweeps; on a host with size caps (`limits`), its knobs brought within them."""
        hub = hub_reachable() if hub is None else hub
        knobs = dict(QUICK, **(self.quick or {}).get("knobs", {})) if quick else dict(FULL)
        knobs = limits.fit(knobs) if limits is not None else knobs
        return [SweepSpec(model=other_model(model) if s.get("model") == OTHER else model,
                          task=harder_task(hub) if s["task"] == HARDER else s["task"],
                          methods=list(s["methods"]), n=list(s["n"]), r=list(s["r"]), seeds=list(s["seeds"]),
                          knobs=dict(knobs)) for s in self.sweeps]


def other_model(model: str) -> str:
    """The embedded model that is not `model` (SmolLM2 <-> Gemma 3): a cross-model experiment's second model.
    SweepError naming the pip line where it is not installed."""
    from lopt_core.lm import embedded
    from lopt_core.lm.models import canonical
    others = [m for m in embedded.EMBEDDED.values() if m.alias != canonical(model)]
    if not others:
        raise SweepError(f"no second embedded model beside {model}")
    if not embedded.installed(others[0]):
        raise SweepError(f"this experiment also trains {others[0].alias}, which is not installed: "
                         f"{others[0].pip_command}")
    return others[0].alias


def harder_task(hub: bool) -> str:
    """CB where the hub answers (its real train split); offline RTE, since offline CB is only its 56
    validation examples (a 22-example test set is noise) and BoolQ's long passages cost several times more
    per example on a CPU."""
    return "cb" if hub else "rte"


def _load(path: Path = PRESETS_FILE) -> dict[str, Preset]:
    """The guided experiments are data (assets/presets/presets.json): adding one is a new entry there."""
    doc = json.loads(path.read_text())
    return {p["key"]: Preset(p["key"], p["title"], p["question"], p["why"], tuple(p["sweeps"]), p.get("quick"))
            for p in doc["presets"]}


PRESETS = _load()


def get(key: str) -> Preset:
    if key not in PRESETS:
        raise SweepError(f"unknown preset {key!r}; choose from: {', '.join(PRESETS)}")
    return PRESETS[key]


def create_preset(key: str, store, model: str, quick: bool, limits=None, claim: bool = False,
                  owner: str | None = None) -> list[str]:
    """Queue a guided experiment: every one of its sweeps is validated before any is queued; they share one
    launch id (the sweep id of the first), so the app watches and reads them together."""
    limits = limits or hosting.limits()
    specs = [s.validate(limits) for s in get(key).specs(model=model, quick=quick, limits=limits)]
    ids: list[str] = []
    for s in specs:
        ids.append(spec.create(s, store, preset=key, limits=limits, launch_id=ids[0] if ids else None, claim=claim,
                          owner=owner))
    return ids
