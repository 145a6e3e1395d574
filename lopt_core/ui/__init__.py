"""The Gradio UI, one module per tab. Thin: widgets and callbacks over lopt_core (jobs, store, plots, export)."""
