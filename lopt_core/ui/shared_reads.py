"""Reads that many open pages make at once, made once: a class watching one run sends a tick per page per
second, and each tick used to read the same run's progress and draw the same curves for itself
(scripts/soak.py --shown train measured it). A value computed for one page is handed to the others that ask
within `ttl` seconds, so the shown progress lags the store by at most that.

Staleness never sticks: a page skips its next ticks while the store's mark stands, so it may keep the mark only
when what it shows was read *after* it read that mark: the page takes a ticket (`ticket()`) just before reading
the mark, and an entry computed later carries a later ticket (`Entry.seq`).
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable


@dataclass
class Entry:
    value: Any
    at: float   # when it was computed (the clock: time.time, so tests can drive it)
    seq: int    # the ticket drawn just before computing it


class SharedReads:
    def __init__(self, ttl: float, max_keys: int = 256):
        self.ttl, self.max_keys = ttl, max_keys
        self._entries: dict[Hashable, Entry] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._tickets = itertools.count()

    def ticket(self) -> int:
        return next(self._tickets)

    def _fresh(self, e: Entry | None, now: float) -> bool:
        return e is not None and 0 <= now - e.at < self.ttl

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Entry:
        """The entry for `key`: the one computed within ttl seconds, else computed now (once, however many
        pages ask at the same moment: the others wait for it)."""
        with self._lock:
            e = self._entries.get(key)
            if self._fresh(e, time.time()):
                return e
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            e = self._entries.get(key)
            if self._fresh(e, time.time()):  # another page computed it while this one waited
                return e
            seq = self.ticket()
            e = Entry(compute(), time.time(), seq)
            with self._lock:
                self._entries[key] = e
                if len(self._entries) > self.max_keys:  # keys are runs and visitors: drop the stale ones
                    now = time.time()
                    for k in [k for k, old in self._entries.items() if not self._fresh(old, now)]:
                        self._entries.pop(k, None)
                        self._key_locks.pop(k, None)
            return e
