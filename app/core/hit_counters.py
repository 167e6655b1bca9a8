"""Fixed-window hit counters for the web door's limits on guessing (app/web/limits.py): a hit
adds one to the counters it names, in order, up to the first that goes past its limit (the
ones after it are not counted: a request refused by a narrow limit does not use up a wider
one), and a counter is forgotten `window` seconds after its first hit. Redis when
`UM2FA_REDIS_URL` is set, so that every node counts together; the node's own memory otherwise,
and while Redis cannot be reached (app/core/redis_outage.py: logged, and asked again after a
back-off).

A request's counters (per address, per account and address, per account) go to Redis in one
round trip: one script that increments them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from app.core import redis_outage

log = logging.getLogger("um2fa.limits")

PURGE_EVERY = 1000  # hits between sweeps of the forgotten counters in memory

# KEYS: the counters; ARGV: each one's window in seconds, then each one's limit. Returns
# whether the hit stayed within every limit (1) or not (0).
_HIT = """
local n = #KEYS
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  if count > tonumber(ARGV[n + i]) then return 0 end
end
return 1
"""


class HitCounters(Protocol):
    def hit(self, keys: Sequence[str], windows: Sequence[int], limits: Sequence[int]) -> bool:
        """One more hit on each key (its window in seconds and its limit beside it), in order,
        up to the first key past its limit; whether the hit stayed within every limit."""
        ...


class MemoryHits:
    """Counters in this process, shared by its threads."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (hits, forgotten at)
        self._lock = threading.Lock()
        self._since_purge = 0

    def hit(self, keys: Sequence[str], windows: Sequence[int], limits: Sequence[int]) -> bool:
        now = time.monotonic()
        with self._lock:
            self._since_purge += 1
            if self._since_purge >= PURGE_EVERY:
                self._since_purge = 0
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            for key, window, limit in zip(keys, windows, limits, strict=True):
                hits, until = self._counts.get(key, (0, 0.0))
                if until <= now:
                    hits, until = 0, now + window
                self._counts[key] = (hits + 1, until)
                if hits + 1 > limit:
                    return False
        return True


class RedisHits:
    """Counters in Redis, every node's together; this node's memory while Redis is away."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self._client = redis_outage.client(url)
        self._script = self._client.register_script(_HIT)
        self._errors = redis_outage.errors()
        self._prefix = f"{prefix}:um2fa:limits:" if prefix else "um2fa:limits:"
        self._memory = MemoryHits()
        self.outage = redis_outage.Outage(log, "rate limits", "falling back to in-memory storage")

    def hit(self, keys: Sequence[str], windows: Sequence[int], limits: Sequence[int]) -> bool:
        if self.outage.asking():
            try:
                within = self._script(keys=[self._prefix + key for key in keys],
                                      args=[*windows, *limits])
            except self._errors as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return bool(within)
        return self._memory.hit(keys, windows, limits)


def make_hit_counters(redis_url: str, prefix: str = "") -> HitCounters:
    return RedisHits(redis_url, prefix) if redis_url else MemoryHits()
