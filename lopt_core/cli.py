"""Command line: python -m lopt_core {train,sweep,params,methods,eval,list,configs,tasks,generate,sweep-export,
sweep-import,spectrum,truncate,nearest,show,export,delete} ...
(the same functions as the app)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lopt_core import flags
from lopt_core.config import ConfigError, RunConfig
from lopt_core.errors import LoptError


def _add_run_args(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    p.add_argument("--model", default=d.model, help="offline default alias, hub id or local folder")
    p.add_argument("--task", default=d.task)
    p.add_argument("--method", default=d.method, help="a registered method (see the `methods` command)")
    p.add_argument("--n", type=int, default=d.n)
    p.add_argument("--r", type=int, default=d.r)


KNOB_COMMANDS = ("train", "sweep", "params")  # the commands that take the methods' own knobs (--<knob>)


def _add_report_args(p) -> None:
    """--report-to: an optional copy of each run's curves in a tracker (training/report.py)."""
    p.add_argument("--report-to", dest="report_to", default=None, metavar="TRACKER",
                   help="also log each run's curves to: tensorboard (needs tensorboardX; off by default)")
    p.add_argument("--report-dir", dest="report_dir", default=None,
                   help="where --report-to writes, one folder per run (default: $LOPT_HOME/tensorboard)")


def _parser(method_knobs: bool = True) -> argparse.ArgumentParser:
    """`method_knobs=False` leaves out the methods' knob flags, so commands without them never import torch."""
    ap = argparse.ArgumentParser(prog="python -m lopt_core", description="LoPT Lab: low-rank soft-prompt tuning")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one run and store it")
    _add_run_args(t)
    d = RunConfig()
    t.add_argument("--seed", type=int, default=d.seed, help="initialisation and batch order (never the data split)")
    flags.add_shared(t, with_defaults=True, method_knobs=method_knobs)
    t.add_argument("--json", action="store_true", help="print one final JSON object")
    _add_report_args(t)

    s = sub.add_parser("sweep", help="train a grid of methods x n x r x seeds as one job (batched where it can)")
    s.add_argument("--model", default=d.model, help="offline default alias, hub id or local folder")
    s.add_argument("--task", default=d.task)
    s.add_argument("--methods", default=None,
                   help="comma-separated registered methods (see the `methods` command); blank: the sweep defaults")
    s.add_argument("--n", default=None, help="prompt lengths, e.g. 20 or 10,20")
    s.add_argument("--r", default=None, help="ranks, e.g. 1,2,5,10")
    s.add_argument("--seeds", default=None, help="e.g. 0,1,2")
    s.add_argument("--preset", default=None, help="a guided experiment (see --list-presets); flags override it")
    s.add_argument("--quick", action="store_true", help="the preset's quick setting (fewer steps, smaller eval)")
    s.add_argument("--list-presets", action="store_true")
    flags.add_shared(s, with_defaults=False, method_knobs=method_knobs)
    s.add_argument("--prompts-per-pass", dest="prompts_per_pass", type=int, default=None,
                   help="prompt rows per model pass (default: all on a GPU, 2 on a CPU)")
    s.add_argument("--dry-run", action="store_true", help="list the configurations and the time estimate only")
    s.add_argument("--resume", default=None, metavar="SWEEP_ID",
                   help="train again the configurations of a stopped or interrupted sweep that never finished")
    s.add_argument("--backend", choices=("local", "ray"), default=None,
                   help="where the sweep trains: this process, or a Ray cluster (default: ray when "
                        "LOPT_RAY_ADDRESS is set)")
    s.add_argument("--ray-address", dest="ray_address", default=None, help="the Ray cluster (implies --backend ray)")
    s.add_argument("--json", action="store_true", help="print one final JSON object")
    _add_report_args(s)
    x = sub.add_parser("sweep-export", help="write a sweep's results (configs, curves, accuracies) to one file")
    x.add_argument("--sweep", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--checkpoints", action="store_true",
                   help="carry the unfinished configurations' checkpoints, so that the sweep, imported elsewhere, "
                        "resumes from their steps")
    i = sub.add_parser("sweep-import", help="read a sweep results file back into the store")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    ls_s = sub.add_parser("sweeps", help="stored sweeps")
    ls_s.add_argument("--json", action="store_true")
    pr = sub.add_parser("precision", help="fp32 or bf16 for a model on this machine, and the measured speed-up "
                                          "(measures once, a few seconds, then cached)")
    pr.add_argument("--model", default=RunConfig().model)
    pr.add_argument("--device", default="auto")
    pr.add_argument("--json", action="store_true")
    cl = sub.add_parser("cluster", help="the backend sweeps train on, and its nodes, CPUs and GPUs")
    cl.add_argument("--ray-address", dest="ray_address", default=None,
                    help="a Ray cluster (default: $LOPT_RAY_ADDRESS)")
    cl.add_argument("--json", action="store_true")

    p = sub.add_parser("params", help="trainable-parameter count without training (the run's checks included)")
    _add_run_args(p)
    flags.add_shared(p, with_defaults=True, method_knobs=method_knobs)
    pv = sub.add_parser("preview", help="check a CSV/JSONL before training: rows, classes, split, label words")
    pv.add_argument("--data-file", dest="data_file", required=True)
    pv.add_argument("--text-column", dest="text_column", default=d.text_column)
    pv.add_argument("--text-b-column", dest="text_b_column", default=None)
    pv.add_argument("--label-column", dest="label_column", default=d.label_column)
    pv.add_argument("--label-words", dest="label_words", default=None, help="comma-separated, e.g. 'bad, good'")
    pv.add_argument("--model", default=d.model, help="whose tokenizer the label words are checked with")
    pv.add_argument("--json", action="store_true")
    dl = sub.add_parser("delete", help="delete an ended run, its artifact folder and its upload if no run uses it")
    dl.add_argument("--run", required=True)
    ex = sub.add_parser("export", help="write a run's prompt as a PEFT prompt-tuning adapter folder "
                                       "(PeftModel.from_pretrained loads it)")
    ex.add_argument("--run", required=True)
    ex.add_argument("--out", required=True, help="the adapter folder to write (replaced if present)")
    mt = sub.add_parser("methods", help="the registered methods: label, formula, rank, input-dependence, export, knobs")
    mt.add_argument("--json", action="store_true")
    e = sub.add_parser("eval", help="re-evaluate a stored run from its artifact")
    e.add_argument("--run", required=True)
    e.add_argument("--record", action="store_true",
                   help="write the accuracy into the store (a stopped run that was never evaluated then reaches "
                        "the Compare plots)")
    e.add_argument("--json", action="store_true")
    sh = sub.add_parser("show", help="a readable summary of one stored run (the Runs tab's)")
    sh.add_argument("--run", required=True)
    sp = sub.add_parser("spectrum", help="singular values, numerical and effective rank of runs' trained prompts")
    sp.add_argument("--run", nargs="+", required=True)
    sp.add_argument("--top", type=int, default=10, help="normalised singular values printed per run")
    sp.add_argument("--json", action="store_true")
    tr = sub.add_parser("truncate", help="accuracy of a run's prompt truncated to its top-k singular directions")
    tr.add_argument("--run", required=True)
    tr.add_argument("--ranks", default="", help="e.g. 1,2,5,10 (blank: 1,2,3,5,8,... up to min(n, d))")
    tr.add_argument("--eval-size", dest="eval_size", type=int, default=300,
                    help="the first N test examples (0 = all)")
    tr.add_argument("--json", action="store_true")
    ne = sub.add_parser("nearest", help="the vocabulary tokens nearest (cosine) to each row of a run's prompt")
    ne.add_argument("--run", required=True)
    ne.add_argument("--k", type=int, default=5)
    ne.add_argument("--json", action="store_true")
    ls = sub.add_parser("list", help="stored runs")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--csv", nargs="?", const="-", default=None, metavar="FILE",
                    help="the runs table as CSV (config fields included) to FILE, or stdout (- or no FILE)")
    cf = sub.add_parser("configs", help="configurations with seeds pooled: mean, std, per-seed scores")
    cf.add_argument("--csv", nargs="?", const="-", default=None, metavar="FILE",
                    help="as CSV to FILE, or stdout (- or no FILE); without --csv, one line each")
    cf.add_argument("--shared-examples", action="store_true",
                    help="re-score runs of one test split on the examples they all share (runs of other sizes)")
    cf.add_argument("--atlas", action="store_true",
                    help="the shipped atlas's configurations (assets/atlas), not this store's: what the app draws")
    cf.add_argument("--task", default=None, help="only this task's configurations (sst2, arithmetic, ...)")
    p_models = sub.add_parser("models", help="the embedded offline models: facts, licence, precision here")
    p_models.add_argument("--json", action="store_true")
    p_tasks = sub.add_parser("tasks", help="tasks: kind, metric, whether available offline, split sizes")
    p_tasks.add_argument("--json", action="store_true")
    g = sub.add_parser("generate", help="one text under no prompt and up to four runs' prompts, side by side")
    g.add_argument("--run", action="append", default=[], help="a finished prompt run (repeat up to 4 times)")
    g.add_argument("--text", required=True)
    g.add_argument("--raw", action="store_true", help="do not put the text into each run's task template")
    g.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=20)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", dest="top_p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true")
    rs = sub.add_parser("resume", help="continue a run whose process died (or that failed) from its last checkpoint")
    rs.add_argument("--run", required=True)
    rs.add_argument("--json", action="store_true")
    _add_report_args(rs)
    a = sub.add_parser("answers", help="no prompt and up to four runs' prompts on their task's test examples, "
                                       "beside the gold answers, marked right or wrong")
    a.add_argument("--run", action="append", default=[], help="a finished prompt run (repeat up to 4 times)")
    a.add_argument("--k", type=int, default=20, help="how many test examples (the first k of the fixed split)")
    a.add_argument("--question", default="", help="a question of your own instead (generation tasks)")
    a.add_argument("--json", action="store_true")
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(method_knobs=not argv or argv[0] in KNOB_COMMANDS).parse_args(argv)
    try:
        if args.cmd not in ("methods", "models", "tasks", "params", "preview", "cluster", "precision"):  # commands that use LOPT_HOME
            from lopt_core import paths
            paths.check_home()  # HomeError (a RuntimeError): one line naming LOPT_HOME
        return {"train": cmd_train, "params": cmd_params, "methods": cmd_methods, "eval": cmd_eval, "list": cmd_list, "configs": cmd_configs,
                "tasks": cmd_tasks, "models": cmd_models, "generate": cmd_generate, "answers": cmd_answers, "resume": cmd_resume, "sweep": cmd_sweep, "sweep-export": cmd_sweep_export,
                "cluster": cmd_cluster, "precision": cmd_precision,
                "sweep-import": cmd_sweep_import, "sweeps": cmd_sweeps, "spectrum": cmd_spectrum,
                "truncate": cmd_truncate, "nearest": cmd_nearest, "show": cmd_show, "preview": cmd_preview,
                "delete": cmd_delete, "export": cmd_export}[args.cmd](args)
    except LoptError as e:  # every error a user can act on: its message, one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, RuntimeError, OSError) as e:  # a library's refusal (a file, a tokenizer)
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


def _label_words(text):
    from lopt_core.data.label_words import parse
    return parse(text)


def _run_config(args) -> RunConfig:
    """train/params: the run's fields from the flags (flags.py's table) and the run arguments."""
    from lopt_core.methods import get_method
    get_method(args.method)
    run = {k: getattr(args, k) for k in ("model", "task", "method", "n", "r", "seed") if hasattr(args, k)}
    return RunConfig(**run, **flags.given(args, [args.method]))


def _reporter(args, configs: dict[str, dict] | None = None):
    """The tracker hook --report-to asks for, or None; refused (ConfigError) before anything trains."""
    from lopt_core.training import report
    if not getattr(args, "report_to", None):
        return None
    from lopt_core import paths
    return report.reporter(args.report_to, args.report_dir or paths.home() / "tensorboard", configs)


def cmd_train(args) -> int:
    from lopt_core.training.checks import check
    from lopt_core.training import report
    report.check(args.report_to)  # before the run is checked or stored
    cfg = check(_run_config(args)).config  # the one check, model unloaded
    return _train(args, cfg)


def cmd_resume(args) -> int:
    """A run whose process died (or that failed) continues from its last checkpoint, in this process."""
    from lopt_core.store.sqlite import Store, pid_alive
    from lopt_core.training import artifacts
    store = Store()
    row = store.get(args.run)
    from lopt_core.training import report
    report.check(args.report_to)
    if row.get("sweep_id"):
        raise ConfigError(f"{args.run} belongs to sweep {row['sweep_id']}: sweep --resume {row['sweep_id']}")
    dead = row["state"] == "running" and not pid_alive(row.get("pid"))
    if row["state"] not in ("interrupted", "failed") and not dead:
        raise ConfigError(f"{args.run} is {row['state']}: only an interrupted or failed run can be resumed")
    step = artifacts.clear_for_resume(args.run)
    store.requeue(args.run, keep_until=step)
    print(f"{args.run}: " + (f"continues after step {step}" if step else "no checkpoint: starts over"),
          file=sys.stderr)
    store.update(args.run, state="running")
    return _train(args, RunConfig.from_dict(row["config"]), run_id=args.run, store=store, done=step)


def _train(args, cfg, run_id=None, store=None, done: int = 0) -> int:
    from tqdm import tqdm
    from lopt_core.training import runs
    bar = tqdm(total=cfg.steps, initial=done, desc=f"{cfg.method} n={cfg.n} r={cfg.r}", file=sys.stderr,
               dynamic_ncols=True)

    def show(ev):
        if ev["type"] == "start":
            bar.write(f"run {ev['run_id']}: {ev['trainable_params']:,} trainable parameters; {ev['data_source']}")
        elif ev["type"] == "step":
            bar.update(1)
            bar.set_postfix(loss=f"{ev['loss']:.3f}", ex_s=f"{ev['examples_per_s']:.1f}")
        elif ev["type"] == "eval":
            bar.write(f"step {ev['step']}: {ev.get('metric', 'accuracy').replace('_', ' ')} {ev['accuracy']:.4f}")
        if tracker:
            tracker(run_id, ev)
    tracker = None
    if getattr(args, "report_to", None):
        from lopt_core.store.sqlite import Store
        store = store or Store()
        run_id = run_id or runs.create_run(cfg, store)  # the run's id names its log folder
        tracker = _reporter(args, {run_id: cfg.to_dict()})
    try:
        result = runs.run_and_record(cfg, show, store=store, run_id=run_id)
    finally:
        bar.close()
        if tracker:
            tracker.close()
    if args.json:
        print(json.dumps(result))
    else:
        fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731 (a stopped run may have no evaluation)
        metric = result.get("metric", "accuracy").replace("_", " ")
        print(f"{result['state']}: {metric} {fmt(result['accuracy'])} (zero-shot {fmt(result['zero_shot_accuracy'])}), "
              f"{result['trainable_params']:,} trainable, {result['train_seconds']:.0f} s; saved to {result['artifact_dir']}")
    return 0 if result["state"] in ("done", "stopped") else 1


def cmd_params(args) -> int:
    from lopt_core.training.checks import check
    from lopt_core.methods import count_trainable
    # the run's own checks: an impossible shape (LoPT-1 with r > n) or a file's label words are errors, not a count
    cfg = check(_run_config(args)).config
    print(count_trainable(cfg))
    return 0


def cmd_preview(args) -> int:
    """The Train tab's preview of a user file, on the command line."""
    from lopt_core.data.preview import preview
    from lopt_core.data.tasks import TaskError
    try:
        p = preview(args.data_file, args.text_column, args.label_column, args.text_b_column, args.model,
                    _label_words(args.label_words),
                    on_rows=lambda n: print(f"checking {Path(args.data_file).name}: {n:,} rows read…", file=sys.stderr))
    except TaskError as e:
        raise ConfigError(str(e)) from None
    if args.json:
        import dataclasses
        print(json.dumps(dataclasses.asdict(p)))
    else:
        f = p.facts
        print(" | ".join(f.head_columns))
        for row in f.head:
            print(" | ".join(row))
        print()
        print(p.markdown())
    return 1 if p.words_problem else 0


def cmd_delete(args) -> int:
    from lopt_core.training import runs
    from lopt_core.store.sqlite import Store
    print(runs.delete_run(Store(), args.run))
    return 0


def cmd_export(args) -> int:
    from lopt_core.analysis.export import export_peft
    from lopt_core.store.sqlite import Store
    from lopt_core.training import artifacts
    row = Store().get(args.run)
    folder = export_peft(row["artifact_dir"] or artifacts.run_dir(args.run), args.out)
    print(f"PEFT adapter written to {folder}: PeftModel.from_pretrained(base_model, {str(folder)!r})")
    return 0


def cmd_precision(args) -> int:
    import torch
    from lopt_core.lm import precision
    v = precision.decide(args.model, args.device, "auto")
    out = {"model": args.model, "precision": v.precision, "speedup": v.speedup, "reason": v.reason,
           "cpu": precision.cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    cal = precision.calibration(args.model) if v.speedup is not None else None
    if cal:
        out["calibration"] = {"step_s": cal["step_s"], "step_shape": cal["step_shape"]}
    line = f"{v.precision}: {v.reason}" + (f"\ncalibration: one step at batch {cal['step_shape'][0]} x "
                                           f"{cal['step_shape'][1]} tokens takes {cal['step_s']:.2f} s" if cal else "")
    print(json.dumps(out) if args.json else line)
    return 0


def cmd_models(args) -> int:
    """The embedded offline models with their facts, and the precision auto chose for each here."""
    from lopt_core.lm import embedded, precision
    rows = []
    for m in embedded.EMBEDDED.values():
        f = embedded.facts(m)
        v = precision.decide(m.alias, "cpu", "auto", measure_now=False) if f["installed"] else None
        rows.append(f | {"precision": precision.describe(v)})
    if args.json:
        print(json.dumps(rows))
        return 0
    for f in rows:
        print(f"{f['name']:14s} {embedded.describe(f)}\n{'':14s} precision: {f['precision']['reason']}")
    return 0


def cmd_methods(args) -> int:
    from lopt_core.methods import METHODS
    facts = [cls.facts() for cls in METHODS.values()]
    if args.json:
        print(json.dumps(facts))
        return 0
    yes = {True: "yes", False: "no"}
    for f in facts:
        export = "yes" if f["exportable"] else f"no ({f['export_refusal']})"
        ref = "  (the reference)" if f["reference"] else ""
        print(f"{f['name']:14s} {f['label']:22s} trainable: {f['formula']}{ref}")
        print(f"{'':14s} has rank: {yes[f['has_rank']]} · input-dependent: {yes[f['input_dependent']]} · "
              f"exportable: {export} · default lr {f['default_lr']:g}")
        for k in f["knobs"]:
            values = "{" + ",".join(k["choices"]) + "}" if k["choices"] else k["type"]
            print(f"{'':14s} {k['flag']} {values} (default {'blank' if k['default'] is None else k['default']}): "
                  f"{k['help']}")
    return 0


def cmd_eval(args) -> int:
    from lopt_core.training.runs import evaluate_run
    from lopt_core.store.sqlite import Store
    store = Store()
    had = store.get(args.run)["accuracy"]
    res = evaluate_run(args.run, store, record=args.record)
    if args.json:
        print(json.dumps(res))
        return 0
    note = " (recorded)" if args.record else (" (not recorded: the run has no accuracy yet; add --record)"
                                              if had is None else "")
    print(f"{args.run}: accuracy {res['accuracy']:.4f} on {res['eval_examples']} examples{note}")
    return 0


def cmd_show(args) -> int:
    from lopt_core.analysis.run_summary import summary_text
    from lopt_core.jobs.manager import run_progress
    from lopt_core.sweeps.estimate import fmt
    from lopt_core.store.sqlite import Store
    store = Store()
    row = store.get(args.run)
    print(summary_text(row))
    if row["state"] == "running":  # the page's progress line, with its pace check
        p = run_progress(store, args.run)
        line = f"{p['phase']}: step {p['step']}/{p['total']}" + (f", ETA {fmt(p['eta_s'])}" if p["eta_s"] else "")
        if p["slower"]:
            line += f"; {p['slower']:.1f}x slower than this machine measured before (the host is busy)"
        print(line)
    return 0


def cmd_spectrum(args) -> int:
    from lopt_core.analysis import spectrum
    from lopt_core.store.sqlite import Store
    store = Store()
    specs = [spectrum.of_run(store.get(rid)) for rid in args.run]
    if args.json:
        print(json.dumps([s.__dict__ | {"normalised": s.normalised} for s in specs]))
        return 0
    for s in specs:
        top = " ".join(f"{v:.4f}" for v in s.normalised[: args.top])
        print(f"{s.run_id}  {s.label}  ({s.n} x {s.d}): numerical rank {s.numerical_rank}, "
              f"effective rank {s.effective_rank:.3f}\n  singular values / s1: {top}")
    return 0


def cmd_truncate(args) -> int:
    from tqdm import tqdm
    from lopt_core.jobs import analyses
    from lopt_core.store.sqlite import Store
    store = Store()
    aid = analyses.create(store, "truncate", args.run, {"ranks": args.ranks, "eval_size": args.eval_size})
    bar = tqdm(desc="evaluating truncations", unit="ex", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()
    res = analyses.run(aid, store, on_progress=progress)
    bar.close()
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{args.run}  ({res['n']} x {res['d']} prompt, {res['eval_examples']} test examples; analysis {aid})")
    print(f"  full prompt (rank {min(res['n'], res['d'])}): accuracy {res['full_accuracy']:.4f}, "
          f"{res['prompt_params']:,} numbers")
    for p in res["points"]:
        print(f"  top-{p['k']:<3d} {p['params']:>9,} params (k(n+d))  accuracy {p['accuracy']:.4f}")
    return 0


def cmd_nearest(args) -> int:
    from lopt_core.analysis import nearest
    from lopt_core.store.sqlite import Store
    rows = nearest.of_run(Store().get(args.run), k=args.k)
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"row {r['row']:>3d}: " + "  ".join(f"{t!r} {c:.3f}" for t, c in r["tokens"]))
    return 0


def _to_csv(table, out: str) -> None:
    """A table as CSV to a file, or to stdout for "-"."""
    table.to_csv(sys.stdout if out == "-" else out, index=False)
    if out != "-":
        print(f"wrote {out} ({len(table)} rows)", file=sys.stderr)


def cmd_list(args) -> int:
    from lopt_core.store.sqlite import Store
    rows = Store().list()
    if args.csv:
        from lopt_core.analysis.tables import runs_table
        _to_csv(runs_table(rows), args.csv)
        return 0
    if args.json:
        print(json.dumps([{k: r[k] for k in ("run_id", "state", "method", "n", "r", "trainable_params", "accuracy")}
                          for r in rows]))
        return 0
    for r in rows:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        print(f"{r['run_id']:40s} {r['state']:11s} {r['method']:14s} n={r['n']:<4} r={r['r']:<4} "
              f"{(r['trainable_params'] or 0):>10,} {acc}")
    return 0


def cmd_configs(args) -> int:
    from lopt_core.analysis import aggregate, tables
    from lopt_core.store.sqlite import Store
    from lopt_core.sweeps import results_file
    rows = results_file.atlas_rows() if args.atlas else Store().list()
    if args.task:
        rows = aggregate.filter_rows(rows, args.task, None)
    if args.shared_examples:
        from lopt_core.analysis import shared_examples
        rows, left = shared_examples.on_shared(rows)
        for r in left:
            print(f"left out: {r['run_id']} recorded no per-example results (re-score it: eval --run "
                  f"{r['run_id']} --record)", file=sys.stderr)
    if args.csv:
        _to_csv(tables.configs_table(rows), args.csv)
        return 0
    for c in tables.config_records(rows):
        spread = f" ± {c['std']:.4f}" if c["std"] is not None else ""
        print(f"{c['method']:14s} n={c['n']:<4} r={'' if c['r'] is None else c['r']:<4} {c['trainable_params']:>10,} "
              f"{c['mean']:.4f}{spread} seeds {c['seed_list']:8s} {c['task']} {c['model']}")
    return 0


def cmd_tasks(args) -> int:
    from lopt_core.data.tasks import task_table
    rows = task_table()
    if getattr(args, "json", False):
        print(json.dumps(rows))
        return 0
    for t in rows:
        size = f"{t['train']}/{t['test']}" if t["train"] is not None else "-"
        print(f"{t['name']:15s} {t['kind']:16s} {t['where']:9s} {size:>11s}  {t['description']}")
    print("mmlu:<subject> trains one MMLU subject, e.g. mmlu:anatomy")
    return 0


def cmd_answers(args) -> int:
    from lopt_core.analysis.side_by_side import PromptBank
    from lopt_core.analysis.test_answers import answer_table
    from lopt_core.store.sqlite import Store
    a = answer_table(Store(), PromptBank(), args.run, args.k, args.question)
    if args.json:
        print(json.dumps({"task": a.task, "kind": a.kind, "metric": a.metric, "reading": a.reading(),
                          "rows": a.rows()}))
        return 0
    for row in a.rows():
        print(f"{row['input']!r}  gold: {row['gold']}")
        for c in a.columns:
            print(f"    {c}: {row[c]}")
    print(a.reading())
    return 0


def cmd_generate(args) -> int:
    from lopt_core.analysis.side_by_side import PromptBank, generate_columns
    from lopt_core.store.sqlite import Store
    cols = generate_columns(Store(), PromptBank(), args.run, args.text, not args.raw, args.max_new_tokens,
                            args.temperature, args.top_p, args.seed)
    if args.json:
        print(json.dumps(cols))
        return 0
    for c in cols:
        probs = "" if not c["probs"] else "  [" + ", ".join(f"{w} {p:.2f}" for w, p in c["probs"].items()) + "]"
        print(f"== {c['title']}{probs}\n{c['input']!r} -> {c['output']!r}")
    return 0


def sweep_spec_from_args(args):
    """A SweepSpec from the sweep command's flags (a preset first, when named; flags override it)."""
    from lopt_core.sweeps import presets
    from lopt_core.methods import default_sweep_methods
    from lopt_core.sweeps.spec import SweepSpec
    d = RunConfig()
    if args.preset:
        specs = presets.get(args.preset).specs(model=args.model, quick=args.quick)
        if len(specs) != 1:
            raise ConfigError(f"preset {args.preset!r} runs {len(specs)} sweeps (one per task); run it without "
                              f"other grid flags, or run each: " + " ; ".join(s.command() for s in specs))
        spec = specs[0]
        if args.quick:
            print(presets.quick_gives_up(), file=sys.stderr)
            if presets.get(args.preset).quick_note():
                print(presets.get(args.preset).quick_note(), file=sys.stderr)
    else:
        spec = SweepSpec(model=args.model, task=args.task, methods=default_sweep_methods())
    if args.methods is not None:
        spec.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name, flag in (("n", args.n), ("r", args.r), ("seeds", args.seeds)):
        if flag is not None:
            setattr(spec, name, flag)
    if args.task != d.task or not args.preset:
        spec.task = args.task
    knobs = dict(spec.knobs)
    settings = flags.given(args, spec.methods)
    if "method_knobs" in settings:
        settings["method_knobs"] = {**knobs.get("method_knobs", {}), **settings["method_knobs"]}
    spec.knobs = knobs | settings
    return spec


def cmd_sweep(args) -> int:
    from lopt_core.sweeps import estimate, presets, spec as sweep
    from lopt_core.store.sqlite import Store
    if args.list_presets:
        for p in presets.PRESETS.values():
            print(f"{p.key:18s} {p.title}: {p.question}")
        return 0
    _sweep_backend(args)  # a backend that cannot be used fails here, before anything is queued
    from lopt_core.training import report
    report.check(args.report_to)  # so does a tracker that is not installed
    store = Store()
    if args.resume:
        new = sweep.resume(args.resume, store, claim=True)
        print(f"sweep {args.resume}: {len(new)} configuration(s) queued again", file=sys.stderr)
        return _run_and_report(args, store, args.resume)
    if args.preset and len(presets.get(args.preset).specs(model=args.model, quick=args.quick)) > 1:
        return _multi_sweep_preset(args, store)
    spec = sweep_spec_from_args(args).validate()
    cfgs = spec.configs()
    est = estimate.sweep_seconds(cfgs, store)
    if args.dry_run or not args.json:
        print(f"{len(cfgs)} configuration(s); {estimate.describe(est)}", file=sys.stderr)
    if args.dry_run:
        from lopt_core.methods import count_trainable
        for c in cfgs:
            print(f"{sweep.describe(c):32s} {count_trainable(c):>10,} trainable")
        return 0
    sweep_id = sweep.create(spec, store, preset=args.preset, claim=True)
    print(f"sweep {sweep_id}: {spec.command()}", file=sys.stderr)
    return _run_and_report(args, store, sweep_id)


def _multi_sweep_preset(args, store) -> int:
    """A guided experiment over several tasks: its own settings only; each sweep runs even if another fails."""
    from lopt_core.sweeps import presets
    given = flags.given_flags(args)
    given += [f for f, v in (("--methods", args.methods), ("--n", args.n), ("--r", args.r), ("--seeds", args.seeds))
              if v is not None]
    if given:
        raise ConfigError(f"preset {args.preset!r} runs one sweep per task with its own settings; "
                          f"{', '.join(given)} cannot change it (run a custom sweep per task instead)")
    if args.dry_run:
        for spec in presets.get(args.preset).specs(model=args.model, quick=args.quick):
            print(spec.command())
        return 0
    rc = 0
    for sid in presets.create_preset(args.preset, store, args.model, args.quick, claim=True):
        try:
            rc = max(rc, _run_and_report(args, store, sid))
        except Exception as e:  # noqa: BLE001  recorded on that sweep; the next one still runs
            print(f"error: sweep {sid}: {e}", file=sys.stderr)
            rc = 1
    return rc


def _run_and_report(args, store, sweep_id: str) -> int:
    from tqdm import tqdm
    from lopt_core.sweeps import ray_backend, spec as sweep
    bars = {}

    def show(run_id, ev):
        if ev["type"] == "start":
            bars[run_id] = tqdm(total=ev["total_steps"], desc=run_id[-20:], file=sys.stderr, dynamic_ncols=True,
                                leave=False)
        elif ev["type"] == "step" and run_id in bars:
            bars[run_id].update(ev["step"] - bars[run_id].n)  # a resumed run's bar starts at its checkpoint
            bars[run_id].set_postfix(loss=f"{ev['loss']:.3f}")
        elif ev["type"] == "end" and run_id in bars:
            bars.pop(run_id).close()
            res = ev["result"]
            acc = "n/a" if res["accuracy"] is None else f"{res['accuracy']:.4f}"
            print(f"{res['state']:8s} {sweep.describe(RunConfig.from_dict(store.get(run_id)['config'])):32s} "
                  f"accuracy {acc}  {res['trainable_params']:>9,} trainable", file=sys.stderr)
        if tracker:
            tracker(run_id, ev)
    tracker = _reporter(args, {r["run_id"]: r["config"] for r in store.list(sweep_id=sweep_id)})
    try:
        out = ray_backend.run(sweep_id, store, _sweep_backend(args), on_event=show,
                              prompts_per_pass=args.prompts_per_pass)
    finally:
        if tracker:
            tracker.close()
    if args.json:
        print(json.dumps(out))
    else:
        print((out["reading"] or {}).get("markdown", ""))
    return 0 if all(r["state"] in ("done", "stopped") for r in out["runs"]) else 1


def cmd_sweep_export(args) -> int:
    from lopt_core.sweeps import results_file
    from lopt_core.store.sqlite import Store
    path = results_file.export_sweep(Store(), args.sweep, args.out, checkpoints=args.checkpoints)
    print(f"wrote {path}")
    return 0


def cmd_sweep_import(args) -> int:
    from lopt_core.sweeps import results_file
    from lopt_core.store.sqlite import Store
    store = Store()
    sweep_id = results_file.import_sweep(store, args.file)
    state = store.get_sweep(sweep_id)["state"]
    print(json.dumps({"sweep_id": sweep_id, "state": state}) if args.json else f"imported as {sweep_id}" + (
        f" ({state}: continue it with python -m lopt_core sweep --resume {sweep_id})" if state != "done" else ""))
    return 0


def cmd_sweeps(args) -> int:
    from lopt_core.store.sqlite import Store, pid_alive
    store = Store()
    rows = store.list_sweeps()
    for s in rows:  # a sweep left 'running' by a process that is gone (a crash, a restart) is not running
        if s["state"] == "running" and not pid_alive(s.get("pid")):
            s["state"] = "interrupted"
    if args.json:
        print(json.dumps([{k: s[k] for k in ("sweep_id", "state", "preset", "command")} for s in rows]))
        return 0
    for s in rows:
        print(f"{s['sweep_id']:30s} {s['state']:11s} {s['preset'] or '':18s} {s['command']}")
        if s["state"] == "interrupted":
            print(f"{'':30s} continue it with: python -m lopt_core sweep --resume {s['sweep_id']}")
        if s["state"] == "running":  # the Sweep tab's pace check, for the group training now
            from lopt_core.sweeps import estimate, spec
            slower = estimate.group_pace(store, spec.current_runs(store, s["sweep_id"]))
            if slower:
                print(f"{'':30s} its group steps {slower:.1f}x slower than this machine measured before "
                      f"(the host is busy)")
    return 0


def _sweep_backend(args):
    """--backend ray / --ray-address ADDR / LOPT_RAY_ADDRESS: a Ray cluster (ray_backend.py); else this process."""
    from lopt_core.sweeps import ray_backend
    if args.backend == "local":
        return None
    backend = ray_backend.from_env(args.ray_address)
    if args.backend == "ray" and backend is None:
        raise ConfigError(f"--backend ray needs --ray-address ADDR or {ray_backend.ENV_ADDRESS}")
    return backend


def cmd_cluster(args) -> int:
    """The Sweep tab's backend line: where sweeps train, with the nodes, CPUs and GPUs."""
    from lopt_core.sweeps import ray_backend
    info = ray_backend.cluster_info(ray_backend.from_env(args.ray_address))
    if args.json:
        print(json.dumps(info))
        return 0
    print(ray_backend.describe(info))
    for node in info["nodes"]:
        print(f"  {node['ip']:20s} {node['cpus']:>4} CPUs {node['gpus']:>3} GPUs")
    return 0
