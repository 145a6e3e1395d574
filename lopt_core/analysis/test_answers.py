"""What trained prompts make the model answer on their task's own test examples, beside the gold answers.

For up to four prompt runs of one task: the first k test examples (or a typed question), each answered with no
prompt and under each prompt on one loaded base model, marked right or wrong by the task's metric (exact match
for generation, the chosen choice or class otherwise), with a reading computed from the marks:
"under LoPT-1 n=20 r=2 the model answers 14/20 of these; without a prompt 3/20".
The Generate tab and the CLI's `answers` command call answer_table.
"""
from __future__ import annotations

from dataclasses import dataclass

from lopt_core.analysis.aggregate import config_label
from lopt_core.analysis.side_by_side import MAX_PROMPTS, PromptBank, prompt_rows
from lopt_core.data.examples import CLASSIFICATION, GENERATION, Example
from lopt_core.data.tasks import load_for_config
from lopt_core.errors import GenerateError
from lopt_core.lm.models import OFFLINE_DEFAULT
from lopt_core.store.sqlite import Store
from lopt_core.training import objectives

MAX_EXAMPLES = 50
SHOWN_CHARS = 40   # a column shows this much of an answer, so every prompt's column fits beside the others
NO_PROMPT = "no prompt"


@dataclass
class Answers:
    task: str
    kind: str
    metric: str
    columns: list[str]                 # "no prompt", then one per run
    inputs: list[str]
    gold: list[str]
    said: list[list[str]]              # per column, per example
    right: list[list[float]]           # per column, per example: 1 right, 0 wrong (None: no gold, a typed input)

    def reading(self) -> str:
        if self.right[0][0] is None:
            return "A typed question has no gold answer: compare the answers by eye."
        k = len(self.inputs)
        got = [int(sum(r)) for r in self.right]
        parts = [f"under {c} the model answers {g}/{k} of these" for c, g in zip(self.columns[1:], got[1:])]
        return "; ".join(parts) + f"; without a prompt {got[0]}/{k} ({self.metric.replace('_', ' ')})."

    def rows(self) -> list[dict]:
        """One row per example: input, gold, then each column's answer (cut at SHOWN_CHARS) with its mark (✓ right,
        ✗ wrong)."""
        out = []
        for i, (text, gold) in enumerate(zip(self.inputs, self.gold)):
            row = {"input": text, "gold": gold}
            for c, said, right in zip(self.columns, self.said, self.right):
                mark = "" if right[i] is None else ("✓ " if right[i] else "✗ ")
                text = said[i] or "(nothing)"
                row[c] = mark + (text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")
            out.append(row)
        return out


def _gold(e: Example, kind: str, words) -> str:
    if kind == GENERATION:
        return " / ".join(e.answers[:3]) + (" / …" if len(e.answers) > 3 else "")
    if kind == CLASSIFICATION:
        return words[e.label].strip()
    return e.choices[e.label].strip()


def _said(p, e: Example, kind: str, words) -> str:
    if kind == GENERATION:
        return p
    return words[p].strip() if kind == CLASSIFICATION else (e.contexts[p] if e.contexts else e.choices[p].strip())


def answer_table(store: Store, bank: PromptBank, run_ids, k: int = 20, question: str = "",
                 default_model: str = OFFLINE_DEFAULT) -> Answers:
    """No prompt and each run's prompt on the first k test examples of the runs' task (or on `question`,
    filled into the task's template): what each writes or picks, and whether it is right."""
    rows = prompt_rows(store, run_ids)
    if not rows:
        raise GenerateError("choose at least one trained prompt: its task's test examples are the ones shown")
    if len(rows) > MAX_PROMPTS:
        raise GenerateError(f"choose at most {MAX_PROMPTS} trained prompts (you chose {len(rows)})")
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise GenerateError("the number of test examples must be a whole number") from None
    if not 1 <= k <= MAX_EXAMPLES:
        raise GenerateError(f"show between 1 and {MAX_EXAMPLES} test examples, not {k}")
    keys = {(r["model"], r["task"], r["config"].get("data_file"), r["config"].get("split_seed", 0)) for r in rows}
    if len(keys) > 1:
        raise GenerateError("the chosen runs were trained on different tasks, models or splits; choose runs that "
                            "share one task and model, so that they answer the same examples")
    with bank.lock:
        try:
            lm = bank.model(rows[0]["model"] or default_model)
        except Exception as e:
            raise GenerateError(f"could not load the base model {rows[0]['model']}: {e}") from None
        loaded = [bank.get(lm, r["run_id"], r["artifact_dir"]) for r in rows]
        cfg = loaded[0][0]
        try:
            data = load_for_config(cfg, lm.tokenizer)
        except Exception as e:  # noqa: BLE001  (an uploaded file since deleted)
            raise GenerateError(f"the task's data cannot be read any more: {e}") from None
        objective = objectives.for_data(data, lm.tokenizer, cfg.max_length)
        words = data.task.label_words
        if question.strip():
            if data.kind != GENERATION:
                raise GenerateError("a typed question works for generation tasks; this task picks among its "
                                    "own choices, so it is shown on its test examples")
            examples = [Example(data.task.template.format(**{data.task.fields[0]: question.strip()}),
                                answers=("",))]
        else:
            examples = data.test[:k]
        enc = objective.encode(examples)
        said, right = [], []
        for method in [None] + [m for _, m, _ in loaded]:
            scored = objective.evaluate(lm, enc, method, None, cfg.eval_batch_size, cfg.shared_prefix)
            said.append([_said(p, e, data.kind, words) for p, e in zip(scored.predictions, examples)])
            right.append([None if question.strip() else c for c in scored.correct])
    columns = [NO_PROMPT] + [config_label(r["method"], r["n"], r["r"]) + f" · {r['run_id'][-6:]}" for r in rows]
    gold = ["" if question.strip() else _gold(e, data.kind, words) for e in examples]
    return Answers(data.task.name, data.kind, objective.metric, columns, [e.text for e in examples], gold, said,
                   right)
