"""Training a run: the one check before queuing (checks.py), which configurations train together (group.py),
the one loop (loop.py: a solo run is a group of one), artifacts on disk (artifacts.py), and run-level operations
that write the store (runs.py: train-and-record, evaluate later, delete).

May import: errors, paths, choices, lm, methods, config, hosting, data, store.
"""
