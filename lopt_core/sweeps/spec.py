"""A sweep: one model and task, a grid of methods x n x r x seeds, trained as one job.

    spec = SweepSpec(task="sst2", methods=["prompt_tuning", "lopt1"], n=[20], r=[1, 2, 5, 10], seeds=[0, 1])
    configs = spec.validate().configs()            # ordinary RunConfigs; methods without a rank get one per n
    sweep_id = create(spec, store)                 # a sweep row + one queued run per configuration
    run(sweep_id, store)                           # what the CLI does in-process and a worker does in the app

run() loads the model once, trains every batched group (input-independent prompts that share data and budget,
group.py: one model pass for all their prompts per step) and then the rest (LoRA, prefix tuning, LoPA) one
after another on the same loaded model. Each configuration is an ordinary run in the store (curves, artifact,
export), tagged with the sweep id; a run stopped or failed inside the sweep leaves the others alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from lopt_core.config import RunConfig
from lopt_core.errors import LoptError
from lopt_core import flags
from lopt_core.hosting import limits as hosting
from lopt_core.methods import METHODS, default_sweep_methods, get_method
from lopt_core.training import artifacts
from lopt_core.training.checks import check_configs
from lopt_core.errors import SweepError

# RunConfig fields a sweep sets per configuration; every other field is shared and lives in `knobs`
GRID_FIELDS = ("method", "n", "r", "seed")
DEFAULT_METHODS = default_sweep_methods()  # the classes with sweep_default = True, as registered at import


MAX_LIST = 64          # values in one grid list (n, r or seeds); the host's config cap bounds their product
MAX_LIST_TEXT = 2_000  # characters of one list as typed


def parse_int_list(text, name: str) -> list[int]:
    """'1, 2 5' -> [1, 2, 5]; a clear error naming the list and the bad item. Lists longer than MAX_LIST
    values (or MAX_LIST_TEXT characters) are refused before anything is parsed."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        if len(str(text or "")) > MAX_LIST_TEXT:
            raise SweepError(f"{name} is {len(str(text)):,} characters long; at most {MAX_LIST_TEXT:,}")
        items = [t for t in str(text or "").replace(",", " ").split() if t]
    if not items:
        raise SweepError(f"{name} is empty: give at least one value, e.g. 1,2,5")
    if len(items) > MAX_LIST:
        raise SweepError(f"{name} has {len(items):,} values; at most {MAX_LIST} (a sweep's size is the product of "
                         f"its lists)")
    out: dict[int, None] = {}  # ordered and O(1) to de-duplicate
    for t in items:
        try:
            v = float(t)
        except (TypeError, ValueError):
            raise SweepError(f"{name}: {t!r} is not a whole number") from None
        if not math.isfinite(v) or v != int(v):
            raise SweepError(f"{name}: {t!r} is not a whole number")
        out[int(v)] = None
    return list(out)


@dataclass
class SweepSpec:
    model: str = "smollm2-135m"
    task: str = "sst2"
    methods: list[str] = field(default_factory=default_sweep_methods)
    n: list[int] = field(default_factory=lambda: [20])
    r: list[int] = field(default_factory=lambda: [1, 2, 5, 10])
    seeds: list[int] = field(default_factory=lambda: [0])
    knobs: dict = field(default_factory=dict)   # shared RunConfig fields: steps, batch_size, eval_size, lr, ...
    # set by validate(): the configurations as checked (training/checks.py), so queuing does not check again
    checked: list | None = field(default=None, init=False, repr=False, compare=False)

    # ------------------------------------------------------------ expansion
    def configs(self) -> list[RunConfig]:
        """Every configuration, method by method; a method without a rank gets one per (n, seed)."""
        out = []
        for m in self.methods:
            ranks = self.r if get_method(m).has_rank else [min(self.r) if isinstance(self.r, list) and self.r else 1]
            for n in self.n:
                for r in ranks:
                    for seed in self.seeds:
                        out.append(RunConfig(**{**self.knobs, "model": self.model, "task": self.task, "method": m,
                                                "n": n, "r": r, "seed": seed}))
        return out

    def size(self) -> int:
        """How many configurations configs() gives, from the list lengths alone."""
        per_n = sum(len(self.r) if get_method(m).has_rank else 1 for m in self.methods)
        return per_n * len(self.n) * len(self.seeds)

    def validate(self, limits=None) -> "SweepSpec":
        """Clear errors for empty lists, unknown methods, impossible (n, r) pairs and host limits."""
        limits = limits or hosting.limits()
        if not self.methods:
            raise SweepError("methods is empty: tick at least one method")
        if not isinstance(self.methods, (list, tuple)) or len(self.methods) > len(METHODS) * 4:
            raise SweepError(f"methods must be a list of at most {len(METHODS)} registered methods")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise SweepError(f"unknown method {unknown[0]!r}; choose from: {', '.join(METHODS)}")
        self.methods = list(dict.fromkeys(self.methods))
        self.n = parse_int_list(self.n, "n list")
        if any(get_method(m).has_rank for m in self.methods):
            self.r = parse_int_list(self.r, "r list")
        else:  # no ticked method has a rank: the r list plays no part
            self.r = [1]
        self.seeds = parse_int_list(self.seeds, "seeds")
        count = self.size()
        if count > limits.max_sweep_configs:  # counted from the lists: nothing is built for a grid refused
            raise SweepError(f"this sweep has {count:,} configurations; this host allows at most "
                             f"{limits.max_sweep_configs} (LOPT_MAX_SWEEP_CONFIGS): shorten the n, r or seed lists")
        bad = set(self.knobs) - {f.name for f in dataclasses.fields(RunConfig)} | (set(self.knobs) & set(GRID_FIELDS))
        if bad:
            raise SweepError(f"unknown or grid field(s) in the shared settings: {', '.join(sorted(bad))}")
        cfgs = self.configs()
        try:
            self.checked = check_configs(cfgs, limits, name=lambda c: f"{describe(c)}: ")
        except LoptError as e:  # a sweep's refusals are SweepErrors, each naming its configuration
            raise SweepError(str(e)) from None
        return self

    # ------------------------------------------------------------ records
    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise SweepError(f"unknown sweep field(s): {', '.join(sorted(set(d) - known))}")
        return cls(**d)

    def command(self) -> str:
        """The CLI command that runs this sweep again."""
        args = ["python", "-m", "lopt_core", "sweep", "--model", self.model, "--task", self.task,
                "--methods", ",".join(self.methods), "--n", _csv(self.n), "--r", _csv(self.r),
                "--seeds", _csv(self.seeds)]
        return shlex.join(args + flags.to_args(self.knobs))  # the CLI's own flag table, written back


def _csv(xs) -> str:
    return ",".join(str(x) for x in xs)


def describe(cfg: RunConfig) -> str:
    """'LoPT-1 n=20 r=5 seed 0' (r only where the method has a rank)."""
    cls = get_method(cfg.method)
    return f"{cls.label} n={cfg.n}" + (f" r={cfg.r}" if cls.has_rank else "") + f" seed {cfg.seed}"


# ---------------------------------------------------------------- the plan

@dataclass
class Group:
    batched: bool           # True: one model pass for all its prompts per step (loop.train_group)
    indices: list[int]      # into the sweep's configuration list


def plan(cfgs: list[RunConfig]) -> list[Group]:
    """Batched groups first (by group key, in order of first appearance), then every other configuration."""
    from lopt_core.training.group import batchable, group_key
    groups: dict[str, Group] = {}
    rest = []
    for i, c in enumerate(cfgs):
        if batchable(c):
            groups.setdefault(group_key(c), Group(True, [])).indices.append(i)
        else:
            rest.append(i)
    return list(groups.values()) + ([Group(False, rest)] if rest else [])


def new_sweep_id() -> str:
    return f"sweep-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def create(spec: SweepSpec, store, preset: str | None = None, limits=None, launch_id: str | None = None,
           claim: bool = False, owner: str | None = None) -> str:
    """Validate the spec and queue all its runs (or none of them); returns the sweep id. claim=True: this
    process will run it (the CLI), so the sweep is born running and no app sharing the store picks it up."""
    from lopt_core.training.loop import new_run_id
    if spec.checked is None:
        spec.validate(limits)
    sweep_id = new_sweep_id()
    pairs = [(new_run_id(c.config), c.config) for c in spec.checked]
    store.create_sweep(sweep_id, spec.to_dict(), pairs, command=spec.command(), preset=preset, launch_id=launch_id,
                       claimed_by=os.getpid() if claim else None, owner=owner)
    return sweep_id


def launch_sweeps(store, launch_id: str) -> list[dict]:
    """The sweeps one launch queued, oldest first."""
    return [s for s in store.list_sweeps() if (s.get("launch_id") or s["sweep_id"]) == launch_id]


def current_runs(store, sweep_id: str) -> list[dict]:
    """The sweep's runs, one per configuration: a configuration resumed after a stop or interruption counts
    once, by its newest run (the older ones stay in the store with what they trained)."""
    latest: dict[str, dict] = {}
    for r in store.list(sweep_id=sweep_id):  # oldest first: later runs of a configuration replace earlier ones
        latest[json.dumps(r["config"], sort_keys=True)] = r
    return sorted(latest.values(), key=lambda r: r["created"])


def stop(sweep_id: str, store) -> str:
    """Queued runs leave the queue as stopped; running ones end after their current step, keeping what they
    trained; the sweep starts nothing new."""
    sw = store.get_sweep(sweep_id)
    if sw["state"] not in ("queued", "running"):
        return f"{sweep_id} is already {sw['state']}"
    store.update_sweep(sweep_id, stop_requested=1, **({"state": "stopped"} if sw["state"] == "queued" else {}))
    n_q = n_r = 0
    for r in store.list(sweep_id=sweep_id):
        if r["state"] == "queued":
            store.update(r["run_id"], state="stopped", stop_requested=1)
            n_q += 1
        elif r["state"] == "running":
            store.request_stop(r["run_id"])
            n_r += 1
    return (f"stop requested for {sweep_id}: {n_r} running configuration(s) end after this step and keep what "
            f"they trained; {n_q} queued configuration(s) removed")


def resume(sweep_id: str, store, claim: bool = False) -> list[str]:
    """Queue again every configuration that has no finished run yet (its run was interrupted, failed or
    stopped), in place: its latest row is queued again and older duplicates are dropped, so a resumed sweep
    keeps one row per configuration. A configuration with a checkpoint (training/checkpoints.py) continues from
    it, its curve kept up to there; any other leftover of a killed run is removed. Runs that finished are kept.
    Returns the re-queued run ids."""
    from lopt_core.store.sqlite import pid_alive
    sw = store.get_sweep(sweep_id)
    orphaned = sw["state"] == "running" and not pid_alive(sw["pid"])  # its process was killed (a crash, a reboot)
    if sw["state"] in ("queued", "running") and not orphaned:
        raise SweepError(f"{sweep_id} is {sw['state']}: stop it first, or let it finish")
    runs = store.list(sweep_id=sweep_id)
    key = lambda r: json.dumps(r["config"], sort_keys=True)  # noqa: E731  a resumed run repeats its config exactly
    finished = {key(r) for r in runs if r["state"] == "done"}
    latest: dict[str, dict] = {}
    for r in runs:  # oldest first: the last one of a configuration wins
        if key(r) not in finished:
            if key(r) in latest:
                store.delete(latest[key(r)]["run_id"])  # an older attempt of the same configuration
            latest[key(r)] = r
    if not latest:
        raise SweepError(f"every configuration of {sweep_id} already finished: nothing to resume")
    for r in latest.values():
        store.requeue(r["run_id"], keep_until=artifacts.clear_for_resume(r["run_id"]))
    store.update_sweep(sweep_id, stop_requested=0, error=None,
                       **({"state": "running", "pid": os.getpid()} if claim else {"state": "queued"}))
    return [r["run_id"] for r in latest.values()]


def run(sweep_id: str, store, lm=None, on_event=None, prompts_per_pass: int | None = None) -> dict:
    """Train every still-queued run of the sweep on one loaded model; returns the sweep's summary. The sweep
    must be claimed by this process (created or resumed with claim=True, or claimed by the app's scheduler
    for its worker) or still queued, in which case it is claimed here. (ray_backend.run_sweep is the same
    with each group of the plan a task on a Ray cluster.)"""
    from lopt_core.lm import precision
    ids, cfgs = begin(sweep_id, store)
    try:
        if cfgs:
            lm = lm or precision.load(cfgs[0].model, cfgs[0].device, cfgs[0].precision)
        for g in plan(cfgs):
            if store.get_sweep(sweep_id)["stop_requested"]:
                break
            todo = [i for i in g.indices if may_start(store, sweep_id, ids[i])]  # stopped meanwhile: skip
            if todo:
                run_group(sweep_id, g.batched, [cfgs[i] for i in todo], [ids[i] for i in todo], store, lm,
                            on_event, prompts_per_pass)
    except BaseException as e:
        fail(sweep_id, store, e)
        raise
    return finish(sweep_id, store)


def begin(sweep_id: str, store) -> tuple[list[str], list[RunConfig]]:
    """Claim the sweep for this process (unless it already has); the ids and configurations of its queued runs."""
    sw = store.get_sweep(sweep_id)  # a missing sweep fails here, before anything is marked running
    if not store.claim_sweep(sweep_id, os.getpid()) and sw["state"] != "running":
        raise SweepError(f"{sweep_id} is {sw['state']}: nothing to run")
    store.update_sweep(sweep_id, pid=os.getpid())
    rows = [r for r in store.list(sweep_id=sweep_id) if r["state"] == "queued"]
    return [r["run_id"] for r in rows], [RunConfig.from_dict(r["config"]) for r in rows]


def may_start(store, sweep_id: str, run_id: str) -> bool:
    """A configuration starts only while it is still queued and its sweep is not stopping."""
    return not store.get_sweep(sweep_id)["stop_requested"] and store.get(run_id)["state"] == "queued"


def run_group(sweep_id: str, batched: bool, cfgs: list[RunConfig], ids: list[str], store, lm, on_event=None,
                prompts_per_pass: int | None = None) -> None:
    """One group of the plan on a loaded model: a batched group in one go where the model allows it, otherwise
    one configuration after another. Every failure is recorded on its runs and the sweep goes on. `store` is
    the Store here, or a remote task's stand-in (remote_store.RemoteStore)."""
    from lopt_core.lm import multi_prompt
    from lopt_core.training.runs import record_group, run_and_record
    if batched and multi_prompt.supported(lm):
        try:
            record_group(cfgs, ids, store, lm, on_event, prompts_per_pass)
        except Exception:  # noqa: BLE001  recorded as failed on each of the group's runs; go on
            pass
        return
    for cfg, rid in zip(cfgs, ids):
        if not may_start(store, sweep_id, rid):
            continue
        try:
            run_and_record(cfg, store=store, run_id=rid, lm=lm,
                           on_event=(lambda ev, rid=rid: on_event(rid, ev)) if on_event else None)
        except Exception:  # noqa: BLE001  recorded as failed on that run; the sweep goes on
            pass


def fail(sweep_id: str, store, e: BaseException) -> None:
    """The sweep itself broke (not one of its runs): it fails with the reason, and no run is left queued."""
    why = f"{type(e).__name__}: {e}"
    store.update_sweep(sweep_id, state="failed", error=why)
    for r in store.list(states=("queued",), sweep_id=sweep_id):  # never left queued for someone to pick up
        store.update(r["run_id"], state="failed", error=f"the sweep stopped before this run started: {why}")


def finish(sweep_id: str, store) -> dict:
    """Every group has ended: the sweep's final state and reading from its runs; returns its summary."""
    from lopt_core.sweeps import readings
    stopped = bool(store.get_sweep(sweep_id)["stop_requested"])
    runs = current_runs(store, sweep_id)
    failed = [r for r in runs if r["state"] == "failed"]
    if failed and not any(r["state"] == "done" for r in runs) and not stopped:
        store.update_sweep(sweep_id, state="failed", reading=readings.read_runs(runs),
                           error=f"every configuration failed; the first: {failed[0]['error']}")
    else:
        store.update_sweep(sweep_id, state="stopped" if stopped else "done", reading=readings.read_runs(runs),
                           error=f"{len(failed)} configuration(s) failed" if failed else None)
    return summary(store, sweep_id)


def summary(store, sweep_id: str) -> dict:
    sw = store.get_sweep(sweep_id)
    runs = current_runs(store, sweep_id)
    keys = ("run_id", "state", "method", "n", "r", "trainable_params", "accuracy", "zero_shot_accuracy",
            "train_seconds", "error")
    extra = ("final_loss", "eval_seconds", "group_size", "precision")
    return {"sweep_id": sweep_id, "state": sw["state"], "command": sw["command"], "preset": sw["preset"],
            "reading": sw["reading"],
            "runs": [{**{k: r.get(k) for k in keys}, "seed": r["config"].get("seed"),
                      **{k: (r.get("result") or {}).get(k) for k in extra}} for r in runs]}
