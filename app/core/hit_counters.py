"""Fixed-window hit counters for the web door's limits on guessing (app/web/limits.py): a hit
adds one to the counters it names, in order, up to the first that goes past its limit (the
ones after it are not counted: a request refused by a narrow limit does not use up a wider
one), and a counter is forgotten `window` seconds after its first hit. Redis when
`UM2FA_REDIS_URL` is set, so that every node counts together; the node's own memory otherwise,
and while Redis cannot be reached (logged; it is asked again after a back-off of 1, 2, 4... up
to 30 s).

A request's counters (per address, per account and address, per account) go to Redis in one
round trip: one script that increments them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger("um2fa.limits")

BACKOFF_MAX = 30.0  # seconds between looks at a Redis that failed
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
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=0.5,
                                            socket_connect_timeout=0.5)
        self._script = self._client.register_script(_HIT)
        self._errors = (redis.RedisError, OSError)
        self._prefix = f"{prefix}:um2fa:limits:" if prefix else "um2fa:limits:"
        self._memory = MemoryHits()
        self._down_until = 0.0
        self._backoff = 0.0

    def hit(self, keys: Sequence[str], windows: Sequence[int], limits: Sequence[int]) -> bool:
        if time.monotonic() >= self._down_until:
            try:
                within = self._script(keys=[self._prefix + key for key in keys],
                                      args=[*windows, *limits])
            except self._errors as exc:
                self._down(exc)
            else:
                if self._backoff:
                    self._backoff = 0.0
                    log.warning("rate limits: Redis answers again; counting there")
                return bool(within)
        return self._memory.hit(keys, windows, limits)

    def _down(self, exc: BaseException) -> None:
        self._backoff = min(BACKOFF_MAX, self._backoff * 2 or 1.0)
        self._down_until = time.monotonic() + self._backoff
        log.warning("rate limits: Redis unavailable (%s); falling back to in-memory storage "
                    "for %.0f s", type(exc).__name__, self._backoff)


def make_hit_counters(redis_url: str, prefix: str = "") -> HitCounters:
    return RedisHits(redis_url, prefix) if redis_url else MemoryHits()
