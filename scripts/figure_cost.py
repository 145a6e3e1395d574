"""What a figure costs the server, in one process: plotly_white set on every figure (as before) against it as
the default template (lopt_core/plots/__init__.py), for one empty figure and for a whole Compare refresh (five
figures and two tables, an empty store: what scripts/soak.py's clients ask for).
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/figure_cost.py
"""
from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("LOPT_HOME", tempfile.mkdtemp(prefix="lopt-figure-cost-"))

import gradio as gr  # noqa: E402

from lopt_core.hosting import limits as hosting  # noqa: E402
from lopt_core.jobs.manager import JobManager  # noqa: E402
from lopt_core.lm import precision  # noqa: E402
from lopt_core.plots import figures  # noqa: E402
from lopt_core.ui import compare  # noqa: E402
from lopt_core.ui.common import AppContext  # noqa: E402


def ms(fn, k: int = 20) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t) / k * 1e3


def main() -> None:
    jobs = JobManager(start=False)
    with gr.Blocks():
        refresh = compare.build(AppContext(jobs=jobs, limits=hosting.limits()))["refresh"][0]
    cases = {"one empty figure": lambda: figures.empty_figure("no runs yet", "t"),
             "Compare refresh": lambda: refresh("(all)", "(all)", None, [])}
    now = {name: ms(fn) for name, fn in cases.items()}
    layout = figures._layout
    figures._layout = lambda fig, title, height=380: layout(fig, title, height).update_layout(template="plotly_white")
    before = {name: ms(fn) for name, fn in cases.items()}
    figures._layout = layout
    print(f"# {precision.cpu_model()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for name in cases:
        print(f"{name:18s} template per figure {before[name]:6.1f} ms   default template {now[name]:6.1f} ms   "
              f"ratio {before[name] / now[name]:.2f}x")
    jobs.close()


if __name__ == "__main__":
    main()
