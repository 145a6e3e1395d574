"""Run-level operations shared by the CLI and the app: train-and-record, re-evaluate, count parameters."""
from __future__ import annotations

import shutil
import traceback
from pathlib import Path

from lopt_core.config import RunConfig
from lopt_core.data import uploads
from lopt_core.data.tasks import load_for_config
from lopt_core.lm import precision
from lopt_core.lm.models import model_config, model_width
from lopt_core.methods import get_method
from lopt_core.store.sqlite import Store
from lopt_core.training import artifacts, objectives
from lopt_core.training.loop import new_run_id, train_group


def create_run(cfg: RunConfig, store: Store) -> str:
    """A new run of `cfg` in the store, running in this process; its id."""
    run_id = new_run_id(cfg)
    store.create(run_id, cfg, state="running")
    return run_id


def run_and_record(cfg: RunConfig, on_event=None, store: Store | None = None, run_id: str | None = None,
                   lm=None) -> dict:
    """Train `cfg` (a group of one), writing state and metrics into the store. A failure marks the run failed
    with its reason and re-raises; other runs are never touched."""
    store = store or Store()
    run_id = run_id or create_run(cfg, store)
    return record_group([cfg], [run_id], store, lm, on_event=(lambda rid, ev: on_event(ev)) if on_event else None)[0]


def record_group(cfgs: list[RunConfig], run_ids: list[str], store: Store, lm, on_event=None,
                 prompts_per_pass: int | None = None) -> list[dict]:
    """Train one batched group (loop.train_group), writing every configuration's state, curves and result
    into the store. A failure of the whole group marks each of its unfinished runs failed, with the reason."""
    recorders = {rid: store.recorder(rid) for rid in run_ids}

    def record(rid, ev):
        recorders[rid](ev)
        if ev["type"] == "end":  # each configuration lands in the store as soon as its final evaluation is done
            _record_result(store, rid, ev["result"])
        if on_event:
            on_event(rid, ev)
    try:
        results = train_group(cfgs, run_ids, record, should_stop=store.stop_requested, lm=lm, store=store,
                              should_skip_eval=lambda rid: store.stop_level(rid) >= 2,
                              prompts_per_pass=prompts_per_pass)
    except BaseException as e:  # noqa: BLE001 (recorded, then re-raised)
        for rid in run_ids:
            if store.get(rid)["state"] not in ("done", "stopped", "failed"):
                store.update(rid, state="failed", error=f"{type(e).__name__}: {e}",
                             result={"traceback": traceback.format_exc(limit=8)})
        raise
    return results


def _record_result(store: Store, run_id: str, result: dict) -> None:
    store.update(run_id, state=result["state"], accuracy=result["accuracy"], trainable_params=result["trainable_params"],
                 zero_shot_accuracy=result["zero_shot_accuracy"], train_seconds=result["train_seconds"],
                 artifact_dir=result["artifact_dir"], result=result, error=result.get("error"))


def evaluate_run(run_id: str, store: Store | None = None, lm=None, record: bool = False, on_progress=None) -> dict:
    """Reload a run's artifact and evaluate it on the same test examples. record=True writes the accuracy
    into the store (and the artifact's run.json): how a stopped run that was never evaluated reaches the plots."""
    store = store or Store()
    row = store.get(run_id)
    if row["state"] in ("queued", "running"):
        raise ValueError(f"run {run_id} is {row['state']}; evaluate it once it has ended")
    folder = row["artifact_dir"] or str(artifacts.run_dir(run_id))
    if not (Path(folder) / artifacts.RUN_FILE).is_file():
        raise ValueError(f"run {run_id} ({row['state']}) saved nothing to evaluate")
    cfg = RunConfig.from_dict(artifacts.read_run(folder)["config"])
    lm = lm or precision.load(cfg.model, cfg.device, cfg.precision)  # scored as it trained
    cfg, method = artifacts.load_method(folder, lm)
    with method.attached(lm):
        objective, test_set = test_data(cfg, lm)
        res = objective.evaluate(lm, test_set, **method.scoring_args(), batch_size=cfg.eval_batch_size,
                                 shared_prefix=cfg.shared_prefix, on_progress=on_progress)
    out = {"run_id": run_id, "accuracy": res.score, "metric": res.metric, "scores": res.extra,
           "eval_examples": len(test_set), "correct": "".join("1" if c else "0" for c in res.correct)}
    if record:
        _record_evaluation(store, row, folder, out)
    return out


def _record_evaluation(store: Store, row: dict, folder: str, out: dict) -> None:
    """A later evaluation becomes the run's accuracy (at the step it stopped), in the store and in run.json."""
    step = row["steps_done"] or (row["result"] or {}).get("steps_done") or 0
    result = dict(row["result"] or {}, accuracy=out["accuracy"], eval_examples=out["eval_examples"],
                  correct=out["correct"], evaluated_later=True)  # per example: a paired or shared-examples comparison
    store.add_metric(row["run_id"], step, "accuracy", out["accuracy"])
    store.update(row["run_id"], accuracy=out["accuracy"], result=result)
    artifacts.update_result(folder, result)


def test_data(cfg: RunConfig, lm, eval_size: int | None = None):
    """The run's objective (its task kind's scoring) and its test examples (the first `eval_size`, default the
    run's own), encoded."""
    data = load_for_config(cfg, lm.tokenizer)
    size = cfg.eval_size if eval_size is None else eval_size
    test = data.test[:size] if size else data.test
    objective = objectives.for_data(data, lm.tokenizer, cfg.max_length)
    return objective, objective.encode(test)


def count_params(method: str, n: int, r: int, model: str = "smollm2-135m", knobs: dict | None = None) -> int:
    """Trainable parameters of a method on a model, from the model's config alone (no weights loaded), at the
    method's knob defaults unless `knobs` ({name: value}) says otherwise."""
    cls = get_method(method)
    values = {k.name: k.default for k in cls.knobs} | (knobs or {})
    return cls.formula(n, r, model_width(model), model_config=model_config(model), **values)


def delete_run(store, run_id: str) -> str:
    """Delete an ended run: its row, its artifact folder, and its upload when no other run uses it.
    Returns what was deleted, in words; ValueError for a run still queued or running, KeyError for none."""
    row = store.get(run_id)
    if row["state"] in ("queued", "running"):
        raise ValueError(f"run {run_id} is {row['state']}; stop it first")
    folder = row["artifact_dir"] or str(artifacts.run_dir(run_id))
    store.delete(run_id)
    shutil.rmtree(folder, ignore_errors=True)
    data_file = row["config"].get("data_file")
    if uploads.release(store, data_file):
        return f"Deleted {run_id}, its artifact folder and its uploaded file {Path(data_file).name}."
    return f"Deleted {run_id} and its artifact folder."
