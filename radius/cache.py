"""Duplicate detection (RFC 5080 section 2.2.2): a retransmitted Access-Request gets the reply
already sent, or nothing while the first copy is still being decided. In-process on purpose:
a NAS retransmits to the same server, so no other node needs these entries."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

PENDING = object()


class RetransmitCache:
    """Replies kept `ttl` seconds, at most `max_entries` of them (the oldest go first).
    Pending requests are bounded by the server's in-flight limit, not here."""

    def __init__(self, ttl: float = 30.0, max_entries: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._pending: set[Hashable] = set()
        self._done: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending) + len(self._done)

    def lookup(self, key: Hashable) -> object | bytes | None:
        """PENDING, the reply bytes, or None for a request not seen (or long forgotten)."""
        if key in self._pending:
            return PENDING
        entry = self._done.get(key)
        if entry is None:
            return None
        expires, reply = entry
        if expires <= self.clock():
            del self._done[key]
            return None
        return reply

    def begin(self, key: Hashable) -> None:
        self._prune()
        self._pending.add(key)

    def complete(self, key: Hashable, reply: bytes) -> None:
        self._pending.discard(key)
        self._done[key] = (self.clock() + self.ttl, reply)
        self._done.move_to_end(key)
        self._prune()

    def forget(self, key: Hashable) -> None:
        self._pending.discard(key)
        self._done.pop(key, None)

    def _prune(self) -> None:
        now = self.clock()
        while self._done:
            key, (expires, _reply) = next(iter(self._done.items()))
            if expires > now and len(self._done) <= self.max_entries:
                break
            del self._done[key]
