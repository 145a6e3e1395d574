"""The Gradio UI, one module per tab (train, sweep, compare, generate, rank, runs, learn) and what they share
(common.py, gradio_fixes.py). Thin: widgets and callbacks over lopt_core, and no logic the CLI lacks.

May import: everything below it (jobs, sweeps, analysis, plots, hosting, ...); nothing imports ui.
"""
