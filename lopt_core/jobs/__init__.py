"""Background work in the app: the job manager (manager.py: FIFO queue, worker processes, stop, dead workers,
visitors' caps) and analyses queued like runs (analyses.py).

May import: everything but ui and cli.
"""
