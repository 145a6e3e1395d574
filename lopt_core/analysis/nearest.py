"""Nearest tokens: for each row of a trained prompt, the vocabulary tokens whose input embeddings are closest by
cosine similarity. A soft prompt's rows are free vectors, so the nearest token is usually far (cosine well below
1): a reading aid, not a translation."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_tokens(prompt: torch.Tensor, embeddings: torch.Tensor, tokenizer, k: int = 5) -> list[dict]:
    """[{"row": i, "tokens": [(text, cosine), ...]}] for each of the n rows, best first."""
    if k < 1:
        raise ValueError(f"k (tokens per row) must be at least 1, got {k}")
    P = F.normalize(prompt.float(), dim=-1)                          # (n, d)
    E = F.normalize(embeddings.float().to(P.device), dim=-1)         # (V, d)
    sims = P @ E.T                                                   # (n, V)
    top = sims.topk(min(k, E.shape[0]), dim=-1)
    rows = []
    for i in range(P.shape[0]):
        ids = top.indices[i].tolist()
        rows.append({"row": i, "tokens": [(tokenizer.decode([t]), float(c)) for t, c in zip(ids, top.values[i])]})
    return rows


def of_run(row: dict, k: int = 5, lm=None) -> list[dict]:
    from lopt_core.lm.models import load_model
    from lopt_core.analysis.spectrum import prompt_of_run
    P = prompt_of_run(row)
    lm = lm or load_model(row["model"], "cpu")
    return nearest_tokens(P, lm.embeddings.detach().cpu(), lm.tokenizer, k)


def as_table(rows: list[dict]) -> list[dict]:
    """Flat records for a table: one line per prompt row, its tokens and cosines."""
    out = []
    for r in rows:
        rec = {"row": r["row"]}
        for j, (text, cos) in enumerate(r["tokens"], 1):
            rec[f"token {j}"] = repr(text)
            rec[f"cos {j}"] = round(cos, 3)
        out.append(rec)
    return out
