"""Views over finished runs: seed pooling and test-set matching (aggregate.py), spectrum, truncation and nearest
tokens (spectrum.py, truncate.py, nearest.py), side-by-side generation (side_by_side.py), PEFT export (export.py),
run summaries (run_summary.py) and the Learn tab's counts (learn.py).

May import: errors, paths, choices, lm, methods, config, hosting, data, store, training.
"""
