"""Command line: python -m lopt_core {train,params,eval,list,tasks,generate} ... (same functions as the app)."""
from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, RunConfig


def _add_run_args(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    p.add_argument("--model", default=d.model, help="offline default alias, hub id or local folder")
    p.add_argument("--task", default=d.task)
    p.add_argument("--method", default=d.method)
    p.add_argument("--n", type=int, default=d.n)
    p.add_argument("--r", type=int, default=d.r)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m lopt_core", description="LoPT Lab: low-rank soft-prompt tuning")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one run and store it")
    _add_run_args(t)
    d = RunConfig()
    for name, typ in [("steps", int), ("batch_size", int), ("lr", float), ("warmup", float), ("seed", int),
                      ("eval_every", int), ("eval_size", int), ("eval_batch_size", int), ("max_length", int),
                      ("weight_decay", float), ("grad_clip", float), ("lopa_hidden", int)]:
        t.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=getattr(d, name))
    t.add_argument("--init", choices=["vocab", "text", "random"], default=None)
    t.add_argument("--init-text", dest="init_text", default="")
    t.add_argument("--activation", choices=["elu", "relu", "gelu"], default=d.activation)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    t.add_argument("--data-source", dest="data_source", choices=["auto", "offline", "hub"], default=d.data_source,
                   help="auto: the offline pack when installed, else the hub")
    t.add_argument("--data-file", dest="data_file", default=None, help="CSV/JSONL for --task file")
    t.add_argument("--text-column", dest="text_column", default=d.text_column)
    t.add_argument("--text-b-column", dest="text_b_column", default=None)
    t.add_argument("--label-column", dest="label_column", default=d.label_column)
    t.add_argument("--label-words", dest="label_words", default=None, help="comma-separated, e.g. ' bad, good'")
    t.add_argument("--no-shared-prefix", dest="shared_prefix", action="store_false")
    t.add_argument("--json", action="store_true", help="print one final JSON object")

    p = sub.add_parser("params", help="trainable-parameter count without training")
    _add_run_args(p)
    p.add_argument("--lopa-hidden", dest="lopa_hidden", type=int, default=d.lopa_hidden)
    e = sub.add_parser("eval", help="re-evaluate a stored run from its artifact")
    e.add_argument("--run", required=True)
    e.add_argument("--json", action="store_true")
    ls = sub.add_parser("list", help="stored runs")
    ls.add_argument("--json", action="store_true")
    sub.add_parser("tasks", help="tasks and whether they are available offline")
    g = sub.add_parser("generate", help="one text under no prompt and up to four runs' prompts, side by side")
    g.add_argument("--run", action="append", default=[], help="a finished prompt run (repeat up to 4 times)")
    g.add_argument("--text", required=True)
    g.add_argument("--raw", action="store_true", help="do not put the text into each run's task template")
    g.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=20)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", dest="top_p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": cmd_train, "params": cmd_params, "eval": cmd_eval, "list": cmd_list,
                "tasks": cmd_tasks, "generate": cmd_generate}[args.cmd](args)
    except (ConfigError, ValueError, KeyError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def cmd_train(args) -> int:
    from tqdm import tqdm
    from . import runs
    fields = {k: v for k, v in vars(args).items() if k not in ("cmd", "json")}
    if fields.get("label_words"):
        fields["label_words"] = [w if w.startswith(" ") else " " + w for w in fields["label_words"].split(",")]
    cfg = RunConfig(**fields).validate()
    bar = tqdm(total=cfg.steps, desc=f"{cfg.method} n={cfg.n} r={cfg.r}", file=sys.stderr, dynamic_ncols=True)

    def show(ev):
        if ev["type"] == "start":
            bar.write(f"run {ev['run_id']}: {ev['trainable_params']:,} trainable parameters; {ev['data_source']}")
        elif ev["type"] == "step":
            bar.update(1)
            bar.set_postfix(loss=f"{ev['loss']:.3f}", ex_s=f"{ev['examples_per_s']:.1f}")
        elif ev["type"] == "eval":
            bar.write(f"step {ev['step']}: accuracy {ev['accuracy']:.4f}")
    result = runs.run_and_record(cfg, show)
    bar.close()
    if args.json:
        print(json.dumps(result))
    else:
        fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731 (a stopped run may have no evaluation)
        print(f"{result['state']}: accuracy {fmt(result['accuracy'])} (zero-shot {fmt(result['zero_shot_accuracy'])}), "
              f"{result['trainable_params']:,} trainable, {result['train_seconds']:.0f} s; saved to {result['artifact_dir']}")
    return 0 if result["state"] in ("done", "stopped") else 1


def cmd_params(args) -> int:
    from .runs import count_params
    n = count_params(args.method, args.n, args.r, args.model, lopa_hidden=args.lopa_hidden)
    print(n)
    return 0


def cmd_eval(args) -> int:
    from .runs import evaluate_run
    res = evaluate_run(args.run)
    print(json.dumps(res) if args.json else f"{args.run}: accuracy {res['accuracy']:.4f} on {res['eval_examples']} examples")
    return 0


def cmd_list(args) -> int:
    from .store import Store
    rows = Store().list()
    if args.json:
        print(json.dumps([{k: r[k] for k in ("run_id", "state", "method", "n", "r", "trainable_params", "accuracy")}
                          for r in rows]))
        return 0
    for r in rows:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        print(f"{r['run_id']:40s} {r['state']:11s} {r['method']:14s} n={r['n']:<4} r={r['r']:<4} "
              f"{(r['trainable_params'] or 0):>10,} {acc}")
    return 0


def cmd_tasks(args) -> int:
    from .tasks import TASKS, offline_tasks
    off = set(offline_tasks())
    for t in TASKS.values():
        print(f"{t.name:10s} {'offline' if t.name in off else 'hub only':9s} {t.description}")
    return 0


def cmd_generate(args) -> int:
    from .side_by_side import PromptBank, generate_columns
    from .store import Store
    cols = generate_columns(Store(), PromptBank(), args.run, args.text, not args.raw, args.max_new_tokens,
                            args.temperature, args.top_p, args.seed)
    if args.json:
        print(json.dumps(cols))
        return 0
    for c in cols:
        probs = "" if not c["probs"] else "  [" + ", ".join(f"{w} {p:.2f}" for w, p in c["probs"].items()) + "]"
        print(f"== {c['title']}{probs}\n{c['input']!r} -> {c['output']!r}")
    return 0
