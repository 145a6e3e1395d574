"""Sweeps: a grid of methods x n x r x seeds as one job (spec.py: expand, validate, plan, run), guided experiments
(presets.py), time estimates (estimate.py), readings (readings.py), the shipped reference and exported results
(results_file.py), and the Ray backend with its relay store (ray_backend.py, remote_store.py).

May import: everything below jobs (errors .. training, store, analysis, plots); never jobs or ui.
"""
