"""The truncation curve: is a trained prompt inherently low-rank?

Take a run's trained prompt X (n, d) = U S V^T, keep its top-k singular directions X_k = U_k S_k V_k^T for each
k, and evaluate X_k as a fixed prompt on the task's test examples. If accuracy at small k is already that of the
full prompt, the prompt never needed its n*d parameters: a rank-k factorisation (k(n + d) numbers, LoPT-1's shape)
holds it. The curve is drawn beside the runs that were *trained* at those ranks (see rank_plots.py).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from lopt_core.training import artifacts
from lopt_core.config import RunConfig
from lopt_core.analysis.spectrum import AnalysisError, prompt_of_run

DEFAULT_EVAL_SIZE = 300


class FixedPrompt(nn.Module):
    """A frozen (n, d) prompt behind the interface the engine evaluates (input-independent, not a peft model)."""
    input_dependent = False

    def __init__(self, prompt: torch.Tensor):
        super().__init__()
        self.register_buffer("prompt", prompt)

    def forward(self) -> torch.Tensor:
        return self.prompt                                           # (n, d)

    def prompt_for(self, lm, ids, mask) -> torch.Tensor:
        """The same prompt for every input (the plain path and generation ask through this)."""
        return self.prompt                                           # (n, d)


def truncated(prompt: torch.Tensor, k: int) -> torch.Tensor:
    """Best rank-k approximation (Eckart-Young) of an (n, d) prompt."""
    U, S, Vh = torch.linalg.svd(prompt.double(), full_matrices=False)  # (n, m), (m,), (m, d)
    return ((U[:, :k] * S[:k]) @ Vh[:k]).to(prompt.dtype)             # (n, d)


def default_ranks(n: int, d: int) -> list[int]:
    top = min(n, d)
    return sorted({k for k in (1, 2, 3, 5, 8, 10, 15, 20, 30, 50) if k < top} | {top})


def parse_ranks(text, n: int, d: int) -> list[int]:
    """'1,2,5,10' -> [1, 2, 5, 10]; blank -> default_ranks; each must be a whole number in [1, min(n, d)]."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return default_ranks(n, d)
    items = text if isinstance(text, (list, tuple)) else str(text).replace(";", ",").split(",")
    out = []
    for item in items:
        s = str(item).strip()
        if not s:
            continue
        try:
            k = int(s)
        except ValueError:
            raise AnalysisError(f"ranks: {s!r} is not a whole number (write e.g. 1,2,5,10)") from None
        if not 1 <= k <= min(n, d):
            raise AnalysisError(f"ranks: {k} is outside [1, {min(n, d)}] (the prompt is {n} x {d})")
        out.append(k)
    if not out:
        raise AnalysisError("ranks: give at least one rank, e.g. 1,2,5,10")
    return sorted(set(out))


def check(row: dict, ranks, eval_size: int) -> list[int]:
    """Everything checkable before a job is queued; returns the ranks to evaluate."""
    P = prompt_of_run(row)
    _check_size(eval_size)
    return parse_ranks(ranks, *P.shape)


def _check_size(eval_size) -> None:
    if not isinstance(eval_size, int) or eval_size < 0:
        raise AnalysisError(f"eval examples must be a whole number >= 0 (0 = all), got {eval_size!r}")


def truncation_curve(row: dict, ranks=None, eval_size: int = DEFAULT_EVAL_SIZE, lm=None, on_progress=None) -> dict:
    """Accuracy of the top-k truncation for each k in `ranks`, and of the full prompt, on the first `eval_size`
    test examples (0 = all). on_progress(done, total) counts evaluated examples over the whole curve."""
    from lopt_core.lm import precision
    from lopt_core.training.runs import test_data
    P = prompt_of_run(row)                                           # (n, d)
    n, d = P.shape
    _check_size(eval_size)
    ks = parse_ranks(ranks, n, d)  # the checks of check(), on the prompt loaded once
    cfg = RunConfig.from_dict(artifacts.read_run(row["artifact_dir"])["config"])
    lm = lm or precision.load(cfg.model, cfg.device, cfg.precision)  # scored as it trained
    objective, test_set = test_data(cfg, lm, eval_size)
    full_rank = min(n, d)
    todo = ks + ([full_rank] if full_rank not in ks else [])
    total, t0 = len(todo) * len(test_set), time.time()
    points = []
    for i, k in enumerate(todo):
        base = i * len(test_set)
        report = (lambda done, _t, base=base: on_progress(base + done, total)) if on_progress else None
        prompt = FixedPrompt(truncated(P, k).to(lm.device))
        acc = objective.evaluate(lm, test_set, prompt, None, cfg.eval_batch_size, cfg.shared_prefix, report).score
        points.append({"k": k, "params": k * (n + d), "accuracy": acc})
    full = next(p["accuracy"] for p in points if p["k"] == full_rank)
    return {"run_id": row["run_id"], "method": row["method"], "n": n, "d": d, "task": row["task"],
            "model": row["model"], "eval_examples": len(test_set), "prompt_params": n * d,
            "trainable_params": row.get("trainable_params"), "full_accuracy": full,
            "points": [p for p in points if p["k"] in ks], "seconds": round(time.time() - t0, 1)}


def trained_beside(rows: list[dict], result: dict) -> list[dict]:
    """The runs *trained* at a rank that the curve is drawn beside: same model, task and n, a method with a rank
    and a single prompt (not input-dependent, not a peft adapter), scored."""
    from lopt_core.analysis.aggregate import scored
    from lopt_core.methods import METHODS

    def low_rank(m: str) -> bool:
        cls = METHODS.get(m)
        return cls is not None and cls.has_rank and not cls.input_dependent and not cls.changes_model
    return [r for r in scored(rows) if r["model"] == result["model"] and r["task"] == result["task"]
            and r["n"] == result["n"] and low_rank(r["method"])]


def prompt_runs(rows: list[dict]) -> list[dict]:
    """Runs that have a single saved prompt matrix to analyse (ended, not peft, not input-dependent)."""
    from lopt_core.methods import METHODS
    return [r for r in rows if r["state"] in ("done", "stopped") and r.get("artifact_dir")
            and r["method"] in METHODS and not METHODS[r["method"]].changes_model
            and not METHODS[r["method"]].input_dependent]
