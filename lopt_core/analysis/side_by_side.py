"""Side-by-side generation: "no prompt" plus up to four trained prompts on ONE loaded base model.

Prompts are swapped, never the model: each run's method is rebuilt once from its artifact and its prompt
keys/values (engine.prefix_kv) are computed once and kept, keyed by run id. The Generate tab and the CLI's
`generate` command call generate_columns.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import torch

from lopt_core.training import artifacts
from lopt_core.lm import engine
from lopt_core.analysis.aggregate import config_label
from lopt_core.methods import METHODS
from lopt_core.lm.models import OFFLINE_DEFAULT, load_model
from lopt_core.methods import method_label
from lopt_core.analysis.run_summary import outcome, run_task
from lopt_core.store.sqlite import Store
from lopt_core.errors import GenerateError

MAX_PROMPTS = 4


class PromptBank:
    """Loaded prompts for the one base model in use; the kv cache of each is computed once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.model_name: str | None = None
        self.prompts: dict[str, tuple] = {}   # run_id -> (cfg, method, kv or None)

    def model(self, name: str):
        lm = load_model(name, "auto")  # cached per process by lopt_core.lm.models
        if name != self.model_name:
            self.model_name, self.prompts = name, {}
        return lm

    def get(self, lm, run_id: str, folder: str):
        if run_id not in self.prompts:
            cfg, method = artifacts.load_method(folder, lm)
            kv = None
            if engine.uses_shared_prefix(lm, method):
                with torch.inference_mode():
                    kv = engine.prefix_kv(lm, method())
            self.prompts[run_id] = (cfg, method, kv)
        return self.prompts[run_id]

    def forget(self, run_id: str) -> None:
        self.prompts.pop(run_id, None)


def task_view(cfg) -> tuple[str | None, list[str] | None]:
    """(template with one field, label words) of a run's task when they can be known without its data."""
    t = run_task(cfg)
    if t is None:
        return None, list(cfg.label_words) if cfg.label_words else None
    return (t.template if len(t.fields) == 1 else None), list(t.label_words)


def column_title(row: dict) -> str:
    """'LoPT-1 n=4 r=2 · done · acc 0.812 · 1a2b3c'; a stopped run without accuracy says so."""
    return f"{config_label(row['method'], row['n'], row['r'])} · {outcome(row)} · {row['run_id'][-6:]}"


def fill(template: str | None, text: str, use_template: bool) -> str:
    """The text as the model sees it: inside the task's template (one field) when asked, else as typed."""
    if template and use_template:
        field = re.findall(r"\{(\w+)\}", template)[0]
        return template.format(**{field: text})
    return text


_TRAINED_FOR = (" The prompt was trained to rank the label words at this point (see the label probabilities), "
                "not to write.")


def _blank(text: str) -> str:
    """'20 line breaks', '2 spaces', or 'whitespace' for a mix."""
    for ch, name in (("\n", "line break"), (" ", "space"), ("\t", "tab")):
        if set(text) == {ch}:
            return f"{len(text)} {name}{'s' if len(text) > 1 else ''}"
    return f"whitespace ({text!r})"


def shown_output(out: str, first_token: int | None, tokenizer, trained: bool = False) -> str:
    """The generated text as a column shows it: as is when it has anything visible, else what the model did
    instead. first_token: the model's top first token (greedy decoding), None when sampled or unknown;
    trained: a trained prompt with label words, whose training ranked only those words' logits."""
    if out.strip():
        return out
    if out:
        note = f"(only {_blank(out)}: nothing visible)"
    elif first_token is not None and first_token == tokenizer.eos_token_id:
        note = f"(the model ended at once: it produced the end-of-text token {tokenizer.eos_token})"
    elif first_token is not None and first_token in tokenizer.all_special_ids:
        note = (f"(the model produced only special tokens, which are not shown: it began with "
                f"{tokenizer.convert_ids_to_tokens(first_token)})")
    else:
        note = "(nothing visible: the sampled tokens were the end-of-text token or special tokens)"
    return note + (_TRAINED_FOR if trained else "")


@torch.inference_mode()
def _next_logits(lm, text: str, token_ids: list[int], method=None, kv=None) -> torch.Tensor:
    """Logits of the given tokens as the first token after `text` (under a prompt), (len(token_ids),)."""
    ids = torch.tensor([engine.encode(lm.tokenizer, [text], 1024)[0]], device=lm.device)
    mask = torch.ones_like(ids)
    return engine.class_logits(lm, ids, mask, mask.sum(1), token_ids, method, kv)[0]


def first_token(lm, text: str, method=None, kv=None) -> int:
    """The model's most likely first token after `text` (under a prompt), over the whole vocabulary."""
    return int(_next_logits(lm, text, list(range(lm.embeddings.shape[0])), method, kv).argmax())


def label_probs(lm, text: str, words: list[str], method=None, kv=None) -> dict[str, float]:
    p = _next_logits(lm, text, engine.label_token_ids(lm.tokenizer, words), method, kv).softmax(-1).tolist()
    return {w.strip() or w: float(v) for w, v in zip(words, p)}


def prompt_rows(store: Store, run_ids) -> list[dict]:
    """The store rows of the chosen runs, each checked to hold a trained prompt (GenerateError otherwise)."""
    run_ids = [r for r in (run_ids or []) if r]
    if len(run_ids) > MAX_PROMPTS:
        raise GenerateError(f"choose at most {MAX_PROMPTS} trained prompts (you chose {len(run_ids)})")
    rows = []
    for rid in run_ids:
        try:
            row = store.get(rid)
        except KeyError:
            raise GenerateError(f"run {rid} no longer exists") from None
        if row["state"] not in ("done", "stopped") or not row["artifact_dir"] or \
                not Path(row["artifact_dir"], artifacts.RUN_FILE).is_file():
            raise GenerateError(f"run {rid} has no trained prompt to use (state {row['state']})")
        if METHODS.get(row["method"]) is None or METHODS[row["method"]].changes_model:
            raise GenerateError(f"run {rid} is a {method_label(row['method'])} adapter, not a prompt; pick a prompt run")
        rows.append(row)
    return rows


def generate_columns(store: Store, bank: PromptBank, run_ids, text, use_template=True, max_new_tokens=20,
                     temperature=0.0, top_p=1.0, seed=0, default_model: str = OFFLINE_DEFAULT) -> list[dict]:
    """"No prompt" plus each run's prompt on one base model, same decoding settings and seed.
    One dict per column: title, input as the model saw it, output text, label probabilities (or None).
    Bad choices raise GenerateError with a message for the user."""
    if not text or not text.strip():
        raise GenerateError("type an input text first")
    rows = prompt_rows(store, run_ids)
    models = sorted({r["model"] for r in rows})
    if len(models) > 1:
        raise GenerateError(f"the chosen runs use different base models ({', '.join(models)}); choose runs of one model")
    model_name = models[0] if models else default_model
    try:
        max_new_tokens, seed = int(max_new_tokens), int(seed or 0)
        temperature, top_p = float(temperature), float(top_p)
    except (TypeError, ValueError):
        raise GenerateError("decoding settings must be numbers") from None
    if not (1 <= max_new_tokens <= 256) or temperature < 0 or not (0 < top_p <= 1):
        raise GenerateError("need 1 ≤ max new tokens ≤ 256, temperature ≥ 0 and 0 < top-p ≤ 1")
    cols = []
    with bank.lock:
        try:
            lm = bank.model(model_name)
        except Exception as e:
            raise GenerateError(f"could not load the base model {model_name}: {e}") from None
        loaded = []
        for row in rows:
            cfg, method, kv = bank.get(lm, row["run_id"], row["artifact_dir"])
            loaded.append((row, cfg, method, kv))
        first_view = task_view(loaded[0][1]) if loaded else (None, None)
        specs = [("No prompt (base model)", None, None, *first_view)] + \
                [(column_title(row), method, kv, *task_view(cfg)) for row, cfg, method, kv in loaded]
        for title, method, kv, template, words in specs:
            seen = fill(template, text.strip(), use_template)
            out = engine.generate(lm, seen, method=method, kv=kv, max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_p=top_p, seed=seed)
            probs = None
            if words:
                try:
                    probs = label_probs(lm, seen, words, method, kv)
                except Exception:  # e.g. label words that share a first token: show the text only
                    probs = None
            first = first_token(lm, seen, method, kv) if not out and temperature == 0 else None
            out = shown_output(out, first, lm.tokenizer, trained=method is not None and bool(probs))
            cols.append({"title": title, "input": seen, "output": out, "probs": probs})
    return cols
