"""What a page may say about an error: the message, never the server's paths or a traceback.

    user_message(exc)   logs the exception with its traceback to the server log (logger "lopt") and returns its
                        message with every absolute path cut to its last part ("…/prompt.safetensors") and any
                        traceback text dropped: the text a handler shows through gr.Error, gr.Warning or a status
                        line.
    scrub(text)         the same cleaning for a text that is not an exception (a stored run's error).
    ui_error(exc)       gr.Error(user_message(exc)), for `raise ui_error(e) from None`.
"""
from __future__ import annotations

import logging
import re

from lopt_core.errors import LoptError

log = logging.getLogger("lopt")
if not log.handlers and not logging.getLogger().handlers:  # the server log is stderr; a host may configure more
    _h = logging.StreamHandler()
    _h.setFormatter(logging.Formatter("[lopt] %(levelname)s %(message)s"))
    log.addHandler(_h)
    log.setLevel(logging.INFO)
    log.propagate = False

# an absolute POSIX path (two or more parts) or a Windows one; stops at quotes, spaces, brackets, commas and colons
_PATH = re.compile(r"""(?<![\w.~/-])(?:[A-Za-z]:\\|~?/)(?:[^\s'"`()\[\]{}<>,;:|/\\]+[/\\])+([^\s'"`()\[\]{}<>,;:|/\\]*)""")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):.*?(?=\n\S|\Z)", re.S)
_FILE_LINE = re.compile(r'^\s*File "[^"]*", line \d+.*$\n?', re.M)


def scrub(text) -> str:
    """`text` without tracebacks and with each absolute path shown as its last part."""
    text = "" if text is None else str(text)
    text = _TRACEBACK.sub("", text)
    text = _FILE_LINE.sub("", text)
    text = _PATH.sub(lambda m: f"…/{m.group(1)}" if m.group(1) else "…", text)
    return text.strip()


def user_message(exc: BaseException, action: str = "") -> str:
    """Log `exc` with its traceback server-side; its message for the page (scrubbed, never empty)."""
    where = f"{action}: " if action else ""
    if isinstance(exc, (LoptError, ValueError, LookupError)):  # a user's bad input (every LoptError): one line
        log.info("%s%s: %s", where, type(exc).__name__, exc)
    else:  # anything else: the whole traceback, for whoever runs the server
        log.warning("%s%s: %s", where, type(exc).__name__, exc, exc_info=exc)
    msg = scrub(str(exc)) if str(exc) else ""
    if isinstance(exc, KeyError) and msg.startswith(("'", '"')) and msg.endswith(("'", '"')):
        msg = msg[1:-1]  # KeyError's str() is the repr of its argument
    return msg or f"{type(exc).__name__} (details are in the server log)"


def ui_error(exc: BaseException, action: str = ""):
    """A gr.Error carrying user_message(exc)."""
    import gradio as gr
    return gr.Error(user_message(exc, action))


def shown_record(rec: dict | None, public: bool) -> dict | None:
    """A run's stored record as the page shows it: its error scrubbed; on a public host its artifact folder and
    data file by name only (they are server paths)."""
    if rec is None:
        return None
    out = {**rec, "error": scrub(rec.get("error")) or None}
    if public:
        from pathlib import PurePath
        if out.get("artifact_dir"):
            out["artifact_dir"] = f"artifacts/{PurePath(out['artifact_dir']).name}"
        if isinstance(out.get("config"), dict) and out["config"].get("data_file"):
            out["config"] = {**out["config"], "data_file": PurePath(out["config"]["data_file"]).name}
    return out
