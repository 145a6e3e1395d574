"""A fix for Gradio's per-session state, which grew by one component at every poll (scripts/soak.py found it).

When a handler returns gr.update(...) for a component, Gradio stores a new instance of that component in the
session's state under the component's id; the new instance gets an id of its own. The next event that takes
that component as an *input* looks the instance up and, finding its own new id missing, stores it again under
that new id, with a full config dict beside it (gradio/blocks.py preprocess_data). The Train tab's Timer
(every second: the "Run shown" picker and the status line are inputs and outputs), the Sweep and Rank tabs'
Timers did this on every tick: one Dropdown or Markdown plus its config per tick per open page, never freed,
about 25 MiB a minute with 8 pages open.

keep_session_ids() makes the session's copy of a component answer to the id of the component it stands for,
so that lookup finds it and nothing new is stored. Idempotent; app.py calls it before building the page.
"""
from __future__ import annotations


def keep_session_ids() -> None:
    from gradio.blocks import Block
    from gradio.state_holder import SessionState

    if getattr(SessionState.__setitem__, "_lopt_keeps_ids", False):
        return
    original = SessionState.__setitem__

    def __setitem__(self, key, value):
        # an unrendered component (a gr.update's instance) standing for component `key` takes key's id
        if isinstance(value, Block) and not value.is_rendered and getattr(value, "_id", key) != key:
            value._id = key
        original(self, key, value)

    __setitem__._lopt_keeps_ids = True
    SessionState.__setitem__ = __setitem__


def name_number_errors() -> None:
    """Gradio checks a Number or Slider value (its range, that it is a number) before our handler runs, and its
    errors name no field ("Value 500 is greater than maximum value 100", or a bare "Error" for a list, a dict or
    a string sent through the API). Wrapped here, each says which box it is about and what it got. Idempotent;
    app.py calls it before building the page."""
    import numbers

    import gradio as gr

    for cls in (gr.Number, gr.Slider):
        original = cls.preprocess
        if getattr(original, "_lopt_names", False):
            continue

        def preprocess(self, payload, _original=original):
            name = self.label or "a number box"
            if payload is not None and (isinstance(payload, bool) or not isinstance(payload, numbers.Real)):
                shown = repr(payload) if len(repr(payload)) <= 40 else repr(payload)[:40] + "…"
                raise gr.Error(f"{name} must be a number, got {type(payload).__name__} {shown}")
            try:
                return _original(self, payload)
            except gr.Error as e:
                raise gr.Error(f"{name}: {e.message}") from None
            except Exception as e:  # noqa: BLE001  (anything else Gradio's check raises: still named)
                raise gr.Error(f"{name}: {e}") from None

        preprocess._lopt_names = True
        cls.preprocess = preprocess


ANALYTICS_EVERY = 1000  # events between two of Gradio's analytics summaries (its default: after every event)


def rare_queue_analytics() -> None:
    """Gradio's queue rebuilds a pandas summary of its last 10,000 events (a DataFrame and a group-by per
    function) after *every* event, for a monitoring page this app does not enable: 15% of the server's CPU with
    16 pages on the Train tab (bench/profile-soak-train-2026-12-06.txt). Its own setting makes that once per
    ANALYTICS_EVERY events; a value set in the environment wins. Read when the queue is made (demo.queue), so
    app.py calls this before building the page."""
    import os
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))
