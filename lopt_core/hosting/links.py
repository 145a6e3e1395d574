"""One-time download links: a zip the server made for one visitor (a run's artifact folder, a PEFT export) is
served once, to the session that asked for it, within a few minutes, and then removed.

Why not a file returned to a gr.File: Gradio copies it into its cache and serves it at a /file= URL that anyone
holding the URL can fetch, without a session, until its cache is cleared (two hours here). A link is instead
`ROUTE/<id>?exp=..&session_hash=..&sig=..`: the signature (HMAC with a secret of this process) binds the id, the
expiry and the session, so no part can be changed; the grant behind the id is spent on the first fetch. The
session is the page's Gradio session, which the link carries as Gradio's own queue stream does: only that page
receives the link, over its own event stream. Every refusal says why, and never names a server path.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from lopt_core.errors import NotYours
from lopt_core.hosting import downloads

ROUTE = "/lopt/download"
TTL_S = 300.0   # a link not fetched within this is refused, and forgotten when the next link is issued


@dataclass(frozen=True)
class Grant:
    path: Path      # the file to send (inside a downloads entry, removed with it once sent)
    session: str
    expires: float


class Refused(Exception):
    """A fetch that gets no file: `status` is the HTTP status, the message says why (no server path)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Links:
    """The grants this process has issued and not yet served."""
    ttl_s: float = TTL_S
    secret: str = field(default_factory=lambda: secrets.token_hex(32))  # links do not outlive the process
    _grants: dict[str, Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _sign(self, gid: str, exp: int, session: str) -> str:
        return hmac.new(self.secret.encode(), f"{gid}|{exp}|{session}".encode(), hashlib.sha256).hexdigest()

    def issue(self, path: str | Path, session: str | None, now: float | None = None) -> str:
        """The one-time link (relative to the app's root) to `path` for the page whose session is `session`."""
        if not session:
            raise NotYours("this host could not tell who you are (no browser session): reload the page")
        now = time.time() if now is None else now
        path = Path(path)
        if path.parent.parent != downloads.root():  # a link only ever serves (and then removes) a downloads entry
            raise ValueError("a download link serves only a file of a downloads entry")
        gid, exp = secrets.token_urlsafe(18), int(now + self.ttl_s)
        with self._lock:  # expired grants go, and so do this page's older ones: its page shows the newest link
            for old in [k for k, g in self._grants.items() if g.expires < now or g.session == session]:
                downloads.unpin(self._grants.pop(old).path.parent)
            self._grants[gid] = Grant(path, session, exp)
        downloads.pin(path.parent, exp)  # no other visitor's new download prunes it before it is fetched
        query = urlencode({"exp": exp, "session_hash": session, "sig": self._sign(gid, exp, session)})
        return f"{ROUTE.lstrip('/')}/{gid}?{query}"

    def redeem(self, gid: str, exp, session, sig, now: float | None = None) -> Grant:
        """The grant of a fetched link, spent now; Refused when the link is not this session's, forged, expired or
        already used."""
        if not session:
            raise Refused(403, "this download link needs the session of the page that asked for it: press "
                               "Download again on that page")
        try:
            exp = int(exp)
        except (TypeError, ValueError):
            raise Refused(403, "this download link is damaged (its expiry is not a time): press Download again") \
                from None
        if not isinstance(sig, str) or not sig.isascii() or \
                not hmac.compare_digest(sig, self._sign(gid, exp, str(session))):  # compare_digest: ASCII only
            raise Refused(403, "this download link is not valid for this session (its signature does not match): "
                               "press Download again on the page that asked for it")
        if exp < (time.time() if now is None else now):
            raise Refused(404, "this download link has expired: press Download again")
        with self._lock:
            grant = self._grants.pop(gid, None)
        if grant is None or grant.session != str(session) or not grant.path.is_file():
            raise Refused(404, "this download link was already used or has expired: press Download again")
        return grant


def spend(path: Path) -> None:
    """Remove a sent file and its downloads entry (the folder holding it): a link serves once."""
    if path.parent.parent == downloads.root():
        downloads.unpin(path.parent)
        shutil.rmtree(path.parent, ignore_errors=True)


def mount(app, links: Links) -> None:
    """Serve ROUTE on a running Gradio app (its FastAPI app), ahead of Gradio's own routes."""
    from fastapi.responses import FileResponse, PlainTextResponse
    from starlette.background import BackgroundTask

    def fetch(gid: str, exp: str = "", session_hash: str = "", sig: str = ""):
        try:
            grant = links.redeem(gid, exp, session_hash, sig)
        except Refused as e:
            return PlainTextResponse(str(e), status_code=e.status)
        return FileResponse(grant.path, filename=grant.path.name, background=BackgroundTask(spend, grant.path),
                            headers={"Cache-Control": "no-store"})

    app.add_api_route(f"{ROUTE}/{{gid}}", fetch, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())  # before any catch-all of Gradio's
