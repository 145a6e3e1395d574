"""Plotly figures: the trade-off, curves and seed-pooled views (figures.py) and the rank views (rank.py).

May import: errors, choices, lm, methods, config, analysis.
"""
import plotly.io as pio

# Every figure of the app is plotly_white. As the default template, a new Figure starts from it; set per
# figure with update_layout(template=...), plotly deep-copied and validated it again (3x the cost of a figure, most of a
# Compare refresh and of a Train tick's curves: scripts/soak.py).
pio.templates.default = "plotly_white"
