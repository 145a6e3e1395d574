"""One run in words: its outcome in a few words (for pickers and column titles) and a readable summary
(for the Runs tab, as Markdown, and the CLI's `show`, as plain text) built from a store row.

Only what applies is shown: r only for methods with a rank, accuracy with the number of examples it was
measured on, a stopped or failed run's reason instead of empty numbers.
"""
from __future__ import annotations

from pathlib import Path

from lopt_core.analysis.aggregate import config_label, has_rank
from lopt_core.methods import METHODS
from lopt_core.hosting.safe_errors import scrub


def _steps_done(row: dict) -> int:
    return int(row.get("steps_done") or (row.get("result") or {}).get("steps_done") or 0)


def _acc(value: float) -> str:
    return f"{value:.3f}"


def outcome(row: dict) -> str:
    """'done · acc 0.812', 'stopped at step 12 · not evaluated', 'running', 'failed' ..."""
    state = row.get("state") or "?"
    if state not in ("done", "stopped"):
        return state
    head = f"stopped at step {_steps_done(row)}" if state == "stopped" else "done"
    acc = row.get("accuracy")
    short = {"accuracy": "acc", "exact_match": "EM"}.get((row.get("result") or {}).get("metric"), "acc")
    return f"{head} · " + (f"{short} {_acc(acc)}" if acc is not None else "not evaluated")


def _state_line(row: dict) -> str:
    state, cfg = row.get("state") or "?", row.get("config") or {}
    planned = cfg.get("steps")
    if state == "stopped":
        line = f"stopped at step {_steps_done(row)}" + (f" of {planned}" if planned else "") + " (stop requested)"
    elif state in ("failed", "interrupted") and row.get("error"):
        line = f"{state}: {scrub(row['error'])}"
    else:
        line = state
    return line


def _task(row: dict) -> str:
    cfg = row.get("config") or {}
    if row.get("task") != "file":
        task = str(row.get("task"))
    else:
        cols = cfg.get("text_column") or "text"
        if cfg.get("text_b_column"):
            cols += f" + {cfg['text_b_column']}"
        label = cfg.get("label_column") or "label"
        task = f"file {Path(cfg.get('data_file') or '?').name} (columns {cols} → {label})"
    if cfg.get("label_words"):
        task += " · label words " + ", ".join(repr(w) for w in cfg["label_words"])
    return task


def _method(row: dict) -> str:
    m = row.get("method")
    cls = METHODS.get(m)
    if cls is None:
        return str(m)
    return f"{cls.label} (`{m}`), trainable parameters {cls.formula_text}" if cls.formula_text else \
        f"{cls.label} (`{m}`)"


def run_task(cfg):
    """The task (template, label words) a run was trained with, from its config (a RunConfig or its dict);
    None when it cannot be known without data that is gone (an uploaded file since deleted)."""
    import dataclasses
    from lopt_core.config import RunConfig
    from lopt_core.data.tasks import get_task, is_task
    cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    if is_task(cfg.task):
        t = get_task(cfg.task)
        return dataclasses.replace(t, label_words=tuple(cfg.label_words)) if cfg.label_words else t
    if cfg.task == "file" and cfg.kind not in (None, "classification"):
        from lopt_core.data.tasks import load_for_config
        try:
            return load_for_config(cfg).task
        except Exception:  # noqa: BLE001  (an unreadable or deleted file: the template cannot be known)
            return None
    if cfg.task == "file" and cfg.data_file and Path(cfg.data_file).is_file():
        from lopt_core.data.preview import preview
        from lopt_core.data.tasks import file_task
        try:  # the file's facts are cached, and a large file is read in a child process: the server stays free
            p = preview(cfg.data_file, cfg.text_column, cfg.label_column, cfg.text_b_column, cfg.model,
                        cfg.label_words, cfg.split_seed)
        except Exception:  # noqa: BLE001  (an unreadable file: the template cannot be known)
            return None
        return file_task(p.facts.name, p.label_words, bool(cfg.text_b_column)) if p.label_words else None
    return None


def accuracy_text(row: dict) -> str:
    """'0.812 on 300 test examples', or why there is no accuracy."""
    acc = row.get("accuracy")
    if acc is None:
        return "not evaluated" + (" (stopped before its evaluation)" if row.get("state") == "stopped" else "")
    n_eval = (row.get("result") or {}).get("eval_examples")
    return _acc(acc) + (f" on {n_eval} test examples" if n_eval else "")


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{float(seconds):.1f} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _lr(row: dict) -> str:
    cfg, res = row.get("config") or {}, row.get("result") or {}
    cls = METHODS.get(row.get("method"))
    if cfg.get("lr") is not None:
        return f"{cfg['lr']:g}"
    lr = res.get("lr") or (cls.default_lr if cls else None)
    return "default" if lr is None else f"{lr:g} ({cls.label if cls else row.get('method')}'s default)"


def summary_fields(row: dict) -> list[tuple[str, str]]:
    """(label, value) pairs of one run, in reading order; fields that do not apply are left out."""
    cfg = row.get("config") or {}
    m = row.get("method")
    out = [("state", _state_line(row)), ("model", str(row.get("model"))), ("task", _task(row)),
           ("method", _method(row)), ("n", str(row.get("n")))]
    if has_rank(m):
        out.append(("r", str(row.get("r"))))
    params = row.get("trainable_params")
    out.append(("trainable parameters", f"{params:,}" if params else "–"))
    out.append(("accuracy", accuracy_text(row)))
    if row.get("zero_shot_accuracy") is not None:
        out.append(("no prompt (zero-shot)", _acc(row["zero_shot_accuracy"])))
    out.append(("steps", f"{_steps_done(row)} / {cfg.get('steps', '?')}"))
    out.append(("training time", _duration(row.get("train_seconds") or (row.get("result") or {}).get("train_seconds"))))
    out.append(("learning rate", _lr(row)))
    out.append(("seed", str(cfg.get("seed", "?"))))
    if row.get("sweep_id"):
        out.append(("sweep", str(row["sweep_id"])))
    return out


def _title(row: dict) -> str:
    return f"{config_label(row.get('method'), row.get('n'), row.get('r'))} · {outcome(row)}"


def summary_markdown(row: dict) -> str:
    """The run as a Markdown table under a one-line heading."""
    def cell(v: str) -> str:
        return v.replace("|", "\\|").replace("\n", " ")
    lines = [f"**Run `{row.get('run_id')}`** · {_title(row)}", "", "| what | value |", "|---|---|"]
    lines += [f"| {k} | {cell(v)} |" for k, v in summary_fields(row)]
    return "\n".join(lines)


def summary_text(row: dict) -> str:
    """The same summary as plain aligned lines, for a terminal."""
    fields = summary_fields(row)
    width = max(len(k) for k, _ in fields)
    return "\n".join([f"run {row.get('run_id')} · {_title(row)}"] +
                     [f"  {k.ljust(width)}  {v.replace('`', '')}" for k, v in fields])
