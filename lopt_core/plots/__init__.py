"""Plotly figures: the trade-off, curves and seed-pooled views (figures.py) and the rank views (rank.py).

May import: errors, choices, lm, methods, config, analysis.
"""
