"""The store of runs, sweeps, analyses and their metrics: sqlite3 (sqlite.py), behind one contract
(protocol.py) that the Ray backend's relay implements too.

May import: errors, paths.
"""
