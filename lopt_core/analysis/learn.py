"""The Learn page's numbers: each method's trainable-parameter formula at live n, r and d, its count, the rank
below which a low-rank method is cheaper than the reference prompt, and a chart of parameters against r.

Every fact comes from the method classes (label, formula_text, has_rank, max_rank, formula, color, reference,
changes_model); nothing here names a method. Counts of methods that change the model (peft adapters) depend on the
model's layers and come from runs.count_params when a model is given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import plotly.graph_objects as go

from lopt_core.methods import METHODS, reference_method

OFFLINE_DEFAULT_D = 576   # the offline default's width (SmolLM2-135M), for when no model config can be read
R_POINTS_PEFT = (1, 2, 4, 8, 16, 32, 64)   # ranks at which a peft method's count is built (each builds a model)


def reference_class():
    """The class of the full-rank prompt that low-rank methods are read against (registry.reference_method)."""
    return METHODS[reference_method()]


@lru_cache(maxsize=512)
def _peft_count(name: str, n: int, r: int, model: str) -> int:
    from lopt_core.training.runs import count_params
    return count_params(name, n, r, model)


def count(cls, n: int, r: int, d: int, model: str | None = None) -> int | None:
    """Trainable parameters; None for a peft method without a model (its count needs the model's layers)."""
    if cls.changes_model:
        return _peft_count(cls.name, n, r, model) if model else None
    return int(cls.formula(n, r, d))


def live_formula(text: str, n: int, r: int, d: int) -> str:
    """formula_text with n, r and d replaced by their values: 'r·(n + d)' -> '5·(20 + 576)'."""
    values = {"n": n, "r": r, "d": d}
    return re.sub(r"\b[nrd]\b", lambda m: str(values[m.group(0)]), text)


def parameter_table(n: int, r: int, d: int, model: str | None = None) -> list[dict]:
    """One row per method: label, formula (text and with live values), trainable count, how many times fewer
    than the reference prompt, and a note where the count cannot be given (a rank the method cannot take)."""
    ref = count(reference_class(), n, r, d, model)
    rows = []
    for name, cls in METHODS.items():
        note, c = "", None
        top = cls.max_rank(n, d)
        if cls.has_rank and r > top:
            note = f"needs r ≤ {top} at n = {n}, d = {d}"
        else:
            try:
                c = count(cls, n, r, d, model)
            except Exception as e:  # noqa: BLE001  (a model whose layers peft cannot wrap: say so, keep the rest)
                note = f"cannot count on this model: {e}"
            if c is None and not note:
                note = "depends on the model's layers: choose a model"
        live = live_formula(cls.formula_text, n, r, d)
        rows.append({"method": name, "label": cls.label, "color": cls.color, "formula": cls.formula_text,
                     "live": live if live != cls.formula_text else "", "uses_r": cls.has_rank, "count": c,
                     "ratio": ref / c if c and ref else None, "reference": cls.reference, "note": note})
    return rows


def crossover(cls, n: int, d: int) -> float | None:
    """The rank r* below which `cls` trains fewer parameters than the reference prompt (its count is affine in
    r: a + b·r < reference  <=>  r < (reference - a) / b). None where it is never fewer, even at r = 1."""
    ref = reference_class().formula(n, 1, d)
    f1, f2 = cls.formula(n, 1, d), cls.formula(n, 2, d)
    b = f2 - f1
    if b <= 0 or f1 >= ref:
        return None
    return (ref - (f1 - b)) / b


@dataclass
class Rule:
    """'r < d·n/(d + n)', read from the formulas' text, and its value at given n and d."""
    text: str
    expr: object

    def value(self, n: int, d: int) -> float:
        import sympy
        return float(self.expr.subs({sympy.Symbol("n"): n, sympy.Symbol("d"): d}))


def _parse(text: str):
    import sympy
    from sympy.parsing.sympy_parser import parse_expr
    names = {k: sympy.Symbol(k) for k in "nrd"}
    try:
        expr = parse_expr(text.replace("·", "*"), local_dict=names, evaluate=True)
    except Exception:  # noqa: BLE001  (prose, e.g. "per-layer keys/values": no rule)
        return None
    return expr if getattr(expr, "free_symbols", None) and expr.free_symbols <= set(names.values()) else None


@lru_cache(maxsize=64)
def crossover_rule(cls) -> Rule | None:
    """The symbolic rule 'r < …' where `cls`'s formula_text (affine in r) beats the reference's, or None
    (no rank, or a formula given in words)."""
    import sympy
    if not cls.has_rank:
        return None
    mine, ref = _parse(cls.formula_text), _parse(reference_class().formula_text)
    r = sympy.Symbol("r")
    if mine is None or ref is None or r not in mine.free_symbols or sympy.degree(mine, r) != 1:
        return None
    a, b = mine.subs(r, 0), sympy.diff(mine, r)
    bound = sympy.factor(sympy.simplify((ref - a) / b))
    return Rule(f"r < {sympy.sstr(bound).replace('*', '·')}", bound)


def ratio_text(ratio: float | None) -> str:
    """'3.9× fewer', '2.0× more', 'as many' (than the reference), '' when unknown."""
    if not ratio:
        return ""
    if abs(ratio - 1) < 1e-9:
        return "as many"
    return f"{ratio:.1f}× fewer" if ratio > 1 else f"{1 / ratio:.1f}× more"


def _fmt(c: int | None) -> str:
    return "–" if c is None else f"{c:,}"


def summary_markdown(n: int, r: int, d: int, model: str | None = None) -> str:
    """Each method's count at these n, r, d, and for each low-rank method where it stops being cheaper."""
    ref = reference_class()
    ref_count = count(ref, n, r, d, model)
    lines = [f"At **n = {n}**, **r = {r}**, **d = {d}**, the reference ({ref.label}) trains "
             f"{ref.formula_text} = {live_formula(ref.formula_text, n, r, d)} = **{_fmt(ref_count)}** parameters.", ""]
    for row in parameter_table(n, r, d, model):
        cls = METHODS[row["method"]]
        if cls.reference:
            continue
        head = f"- **{cls.label}**: {cls.formula_text}" + (f" = {row['live']}" if row["live"] else "")
        if row["count"] is None:
            lines.append(f"{head}: {row['note']}.")
            continue
        head += f" = **{_fmt(row['count'])}**"
        if row["ratio"]:
            head += f" ({ratio_text(row['ratio'])})"
        if cls.has_rank and not cls.changes_model:
            x, rule = crossover(cls, n, d), crossover_rule(cls)
            if x is None:
                head += f"; never fewer than {ref.label}, even at r = 1"
            else:
                head += (f"; fewer than {ref.label} while " + (f"{rule.text} = " if rule else "r < ") +
                         f"{x:.1f}" + (f" (so yes at r = {r})" if r < x else f" (so not at r = {r})"))
        lines.append(head + ".")
    return "\n".join(lines)


def figure(n: int, r: int, d: int, model: str | None = None, r_max: int = 64) -> go.Figure:
    """Trainable parameters against r (log y): a line per method with a rank (up to its largest rank), a flat
    line per method without one (the reference dashed), the chosen r marked."""
    fig = go.Figure()
    for name, cls in METHODS.items():
        if cls.changes_model and not model:
            continue
        top = min(cls.max_rank(n, d), r_max)
        if cls.has_rank:
            rs = [x for x in R_POINTS_PEFT if x <= top] if cls.changes_model else list(range(1, top + 1))
        else:
            rs = [1, r_max]
        try:
            ys = [count(cls, n, x if cls.has_rank else 1, d, model) for x in rs]
        except Exception:  # noqa: BLE001  (counted in the table's note)
            continue
        fig.add_trace(go.Scatter(
            x=rs, y=ys, name=cls.label, mode="lines+markers" if cls.changes_model and cls.has_rank else "lines",
            line=dict(color=cls.color, width=3 if cls.reference else 2,
                      dash="dash" if cls.reference else ("dot" if not cls.has_rank else "solid")),
            hovertemplate=f"{cls.label}<br>" + ("r %{x}<br>" if cls.has_rank else "") + "%{y:,} parameters"
                          "<extra></extra>"))
    fig.add_vline(x=r, line=dict(color="#888", dash="dot"), annotation_text=f"r = {r}",
                  annotation_position="top")
    fig.update_xaxes(title_text="rank r", range=[0, r_max + 1])
    fig.update_yaxes(title_text="trainable parameters (log scale)", type="log")
    fig.update_layout(title=dict(text=f"Parameters against r at n = {n}, d = {d}", x=0.01, font=dict(size=15)),
                      height=380, template="plotly_white", margin=dict(l=60, r=20, t=50, b=45),
                      legend=dict(orientation="h", y=-0.22))
    return fig


def model_d(model: str | None) -> tuple[int, str]:
    """(d, note): the model's width from its config, or the offline default's when it cannot be read."""
    if not model:
        return OFFLINE_DEFAULT_D, ""
    try:
        from lopt_core.lm.models import model_width
        return int(model_width(model)), ""
    except Exception as e:  # noqa: BLE001  (no hub, a bad folder: explain and go on with the default's d)
        return OFFLINE_DEFAULT_D, f"could not read {model}'s config ({type(e).__name__}); using d = {OFFLINE_DEFAULT_D}"
