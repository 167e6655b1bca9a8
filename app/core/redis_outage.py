"""The one rule for a Redis that cannot be reached, for everything that uses the optional Redis
beside the database: the web door's limits on guessing (app/core/hit_counters.py), the VPN
door's failure counters (app/core/attempts.py) and the push fan-out (app/core/push_events.py).

Every synchronous Redis client of the service is made by `client` (its timeouts), and its
errors are `errors()`: these three, the browser sessions in Redis (app/core/session_store.py,
app/web/server_session.py) and /healthz (app/web/ops.py).

Each of the three has a fallback that keeps the door working (this node's memory, the
database, polling). After an error it uses the fallback and asks Redis again after a back-off
of 1, 2, 4... up to 30 s: a blip costs a second, a long outage costs one timed-out call every
30 s instead of one per login. Each failed ask is logged with what happens meanwhile, and the
first answer after an outage once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

BACKOFF_FIRST = 1.0  # seconds
BACKOFF_MAX = 30.0
TIMEOUT = 0.5  # seconds to connect, and for each reply: a login never waits long on Redis


def client(url: str, timeout: float = TIMEOUT) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.RedisError, OSError)


class Outage:
    """Whether to ask Redis now, for one user of it: `asking()` before a call, then `failed(exc)`
    or `answered()` after it."""

    def __init__(self, log: logging.Logger, what: str, meanwhile: str) -> None:
        self._log = log
        self._what = what  # "rate limits"
        self._meanwhile = meanwhile  # "falling back to in-memory storage"
        self._until = 0.0
        self.backoff = 0.0  # seconds; 0 while Redis answers

    def asking(self) -> bool:
        return time.monotonic() >= self._until

    def failed(self, exc: BaseException) -> None:
        self.backoff = min(BACKOFF_MAX, self.backoff * 2 or BACKOFF_FIRST)
        self._until = time.monotonic() + self.backoff
        self._log.warning("%s: Redis unavailable (%s); %s for %.0f s", self._what,
                          type(exc).__name__, self._meanwhile, self.backoff)

    def answered(self) -> None:
        if self.backoff:
            self.backoff = 0.0
            self._log.warning("%s: Redis answers again", self._what)
