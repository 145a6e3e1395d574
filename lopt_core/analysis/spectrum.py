"""The spectrum of a trained prompt: is it low-rank?

A prompt's materialised matrix X (n, d) has singular values s_1 >= ... >= s_min(n,d). We report them normalised by
s_1, the numerical rank (how many exceed s_1 * max(n, d) * float32 eps, as numpy/torch matrix_rank do) and the
effective rank exp(H(p)) with p_i = s_i / sum(s) (Roy & Vetterli, 2007): 1 for a rank-1 matrix, min(n, d) for a
flat spectrum. A LoPT-1 prompt of rank r has numerical rank r by construction; prompt tuning's is whatever
training made it, which is the question.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lopt_core.training import artifacts
from lopt_core.methods import METHODS
from lopt_core.errors import AnalysisError


@dataclass
class Spectrum:
    run_id: str
    label: str          # e.g. "LoPT-1 n=20 r=5"
    n: int
    d: int
    singular: list[float]        # descending, raw
    numerical_rank: int
    effective_rank: float

    @property
    def normalised(self) -> list[float]:
        top = self.singular[0] if self.singular and self.singular[0] > 0 else 1.0
        return [s / top for s in self.singular]

    def energy(self, k: int) -> float:
        """Fraction of the squared Frobenius norm kept by the top-k singular directions."""
        sq = [s * s for s in self.singular]
        return sum(sq[:k]) / sum(sq) if sum(sq) > 0 else 0.0


def analyse(prompt: torch.Tensor) -> tuple[list[float], int, float]:
    """Singular values (descending), numerical rank and effective rank of an (n, d) matrix."""
    assert prompt.dim() == 2, f"expected an (n, d) prompt, got shape {tuple(prompt.shape)}"
    s = torch.linalg.svdvals(prompt.double())                               # (min(n, d),)
    tol = float(s[0]) * max(prompt.shape) * torch.finfo(torch.float32).eps if len(s) else 0.0
    rank = int((s > tol).sum())
    p = s / s.sum() if float(s.sum()) > 0 else s
    p = p[p > 0]
    erank = math.exp(float(-(p * p.log()).sum())) if len(p) else 0.0
    return [float(x) for x in s], rank, erank


def run_label(row: dict) -> str:
    cls = METHODS.get(row["method"])
    name = cls.label if cls else row["method"]
    r = f" r={row['r']}" if cls is None or cls.has_rank else ""
    return f"{name} n={row['n']}{r}"


def prompt_of_run(row: dict) -> torch.Tensor:
    """The run's materialised (n, d) prompt, or AnalysisError saying why it has none."""
    cls = METHODS.get(row["method"])
    rid = row["run_id"]
    if cls is not None and cls.changes_model:
        raise AnalysisError(f"{rid}: {cls.label} changes the model's weights; it has no prompt matrix to analyse")
    if cls is not None and cls.input_dependent:
        raise AnalysisError(f"{rid}: {cls.label} builds a different prompt for every input; there is no single "
                            "prompt matrix to analyse")
    folder = row.get("artifact_dir")
    if not folder or not (Path(folder) / artifacts.PROMPT_FILE).is_file():
        raise AnalysisError(f"{rid} ({row['state']}) saved no prompt: only finished or stopped runs have one")
    return artifacts.load_prompt_matrix(folder)


def of_run(row: dict) -> Spectrum:
    P = prompt_of_run(row)
    s, rank, erank = analyse(P)
    return Spectrum(row["run_id"], run_label(row), P.shape[0], P.shape[1], s, rank, erank)
