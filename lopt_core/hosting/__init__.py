"""What a public host needs: its limits and LOPT_* settings (limits.py), visitors and ownership (owners.py),
which models a visitor may name (model_access.py), bounded downloads (downloads.py) served by one-time links to
their own session (links.py), Gradio's copies of a consumed upload removed (upload_cache.py), and messages
without server paths or tracebacks (safe_errors.py).

May import: errors, paths, choices, lm, methods, config.
"""
