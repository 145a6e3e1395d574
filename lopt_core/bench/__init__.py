"""Benchmarks that print ratios against a baseline measured in the same process (`python -m lopt_core.bench`):
engine speed against PEFT (core.py) and batched sweeps (sweep.py).

May import: anything below ui and cli.
"""
