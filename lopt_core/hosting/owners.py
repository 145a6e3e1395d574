"""Who may do what on a public host: visitors own the runs and sweeps they start.

A visitor is known by the identities they hold, strongest first: their Hugging Face account when the Space has
OAuth on ("hf:<name>", the same in every tab and browser), a random token kept in their browser's storage
("b:<token>", survives reloads and new tabs), and the page's session ("s:<hash>", what an API client has).
A run records the first of these as its owner; the visitor owns it while they hold that identity.

Local use (LOPT_PUBLIC unset) has one user who may do everything and sees everything: `LOCAL`.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from lopt_core.errors import NotFound, NotYours, QueueFull

FINAL = ("done", "stopped", "failed", "interrupted")


@dataclass(frozen=True)
class Visitor:
    keys: tuple[str, ...] = ()     # identities held, strongest first
    public: bool = False           # False: local use, everything allowed
    show_others: bool = False      # others' finished runs are visible read-only

    @property
    def owner(self) -> str | None:
        """What a new run records as its owner (None locally)."""
        return self.keys[0] if self.public and self.keys else None

    def owns(self, row: dict) -> bool:
        return not self.public or (row.get("owner") is not None and row.get("owner") in self.keys)

    def sees(self, row: dict) -> bool:
        """A run this visitor may look at: their own; others' finished runs when the host shows them, but never
        one trained on another visitor's uploaded file."""
        if self.owns(row):
            return True
        return self.show_others and row.get("state") == "done" and row.get("task") != "file"

    def sees_sweep(self, sweep: dict) -> bool:
        return self.owns(sweep) or (self.show_others and sweep.get("state") == "done"
                                    and (sweep.get("spec") or {}).get("task") != "file")

    def query(self) -> dict:
        """Store.list's filter for what this visitor may see (the owner index), so a poll reads only those."""
        return {"owners": self.keys, "others_done": self.show_others} if self.public else {}

    def visible(self, rows: list[dict]) -> list[dict]:
        return [r for r in rows if self.sees(r)]

    def check(self, row: dict, action: str, what: str = "run") -> None:
        """Raise NotYours unless this visitor may `action` (stop, delete, re-run...) the run or sweep `row`; for
        one they may not even see, NotFound worded as the store words a missing one (nothing to tell it apart)."""
        if not self.owns(row):
            key = row.get("run_id") or row.get("sweep_id") or "?"
            seen = self.sees_sweep(row) if what == "sweep" else self.sees(row)
            if not seen:
                raise NotFound(f"no {what} {key!r}")
            raise NotYours(f"{what} {key} was started by another visitor: only they can {action} it")


LOCAL = Visitor()


def host_secret(home) -> str:
    """The host's secret under LOPT_HOME (made on first use): it signs the tokens this server hands out and
    encrypts them in the browser, so both survive a restart."""
    path = Path(home) / "visitor-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def _signature(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()[:32]


def mint_token(secret: str) -> str:
    """A new visitor token: a random nonce and this server's signature of it."""
    nonce = secrets.token_hex(16)
    return f"{nonce}.{_signature(secret, nonce)}"


def token_is_ours(token, secret: str | None) -> bool:
    """True for a token this server minted (a client cannot make one up to pose as a new visitor)."""
    if not isinstance(token, str) or not secret or token.count(".") != 1 or len(token) > 80:
        return False
    nonce, sig = token.split(".")
    return len(nonce) == 32 and hmac.compare_digest(sig, _signature(secret, nonce))


def visitor(public: bool, show_others: bool = False, username: str | None = None, token: str | None = None,
            session: str | None = None, secret: str | None = None) -> Visitor:
    """The visitor of one request from what the web layer knows of it. A browser token counts only when this
    server signed it (`secret`): any other is ignored, and the request is its session's."""
    if not public:
        return LOCAL
    keys = tuple(k for k in (f"hf:{username}" if username else None,
                             f"b:{token}" if token_is_ours(token, secret) else None,
                             f"s:{session}" if session else None) if k)
    return Visitor(keys=keys, public=True, show_others=show_others)


def unfinished_jobs(store, keys: tuple[str, ...] | None = None) -> int:
    """Queued or running jobs (a run outside a sweep, a sweep, or an analysis of a run, each counts one), of the
    owner holding `keys` (any of a visitor's identities) or in all."""
    live = ("queued", "running")
    owners_of_runs = {r["run_id"]: r.get("owner") for r in store.list()}
    owners = [r.get("owner") for r in store.list(states=live) if not r.get("sweep_id")]
    owners += [s.get("owner") for s in store.list_sweeps(states=live)]
    owners += [owners_of_runs.get(a["run_id"]) for a in store.list_analyses(states=live)]  # the run's owner
    return len(owners) if keys is None else sum(o is not None and o in keys for o in owners)


def check_room(store, limits, who: Visitor, jobs: int = 1) -> None:
    """Raise QueueFull when `jobs` more jobs would pass the host's caps."""
    if who.public and who.owner is None:
        raise NotYours("this host could not tell who you are (no browser session): reload the page")
    if limits.max_queued is not None and unfinished_jobs(store) + jobs > limits.max_queued:
        raise QueueFull(f"the queue is full: this host runs at most {limits.max_queued} unfinished jobs "
                        f"(LOPT_MAX_QUEUED); try again when one has finished")
    cap = limits.max_queued_per_visitor
    if who.public and cap is not None and unfinished_jobs(store, who.keys) + jobs > cap:
        raise QueueFull(f"you already have {cap} unfinished job(s), this host's limit per visitor "
                        f"(LOPT_MAX_QUEUED_PER_VISITOR); stop one or wait until it finishes")
