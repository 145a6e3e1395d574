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
