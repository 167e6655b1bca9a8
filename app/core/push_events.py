"""Push fan-out: telling every node at once that a push was answered.

The database stays the record of every push; this only saves the nodes that wait for answers
(the RADIUS door's push waits) from learning about them at their next poll. An answer is
published on a Redis channel after its commit, so a node that hears it finds the answer in the
database. Without Redis, or while Redis is down, the waiting nodes' polling alone ends every
wait: a lost message costs latency, never an answer.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger("um2fa.push")

CHANNEL = "um2fa:push-answered"
RETRY_SECONDS = 5.0  # after a failed publish, skip Redis for this long (keep logins fast)


class PushEvents(Protocol):
    def answered(self, public_id: str) -> None: ...


class NoPushEvents:
    def answered(self, public_id: str) -> None:
        return None


class RedisPushEvents:
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        import redis

        self.channel = channel
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._errors = (redis.RedisError, OSError)
        self._down_until = 0.0

    def answered(self, public_id: str) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            self._client.publish(self.channel, public_id)
        except self._errors as exc:
            self._down_until = time.monotonic() + RETRY_SECONDS
            log.warning("push fan-out: Redis unavailable (%s); waiting nodes fall back to "
                        "polling", type(exc).__name__)


def channel_for(prefix: str) -> str:
    """Pub/sub channels are server-wide in Redis (not per database number): services sharing
    one Redis keep apart by their prefix (UM2FA_RATELIMIT_KEY_PREFIX, as the limits do)."""
    return f"{prefix}:{CHANNEL}" if prefix else CHANNEL


def make_push_events(redis_url: str, prefix: str = "") -> PushEvents:
    return RedisPushEvents(redis_url, channel_for(prefix)) if redis_url else NoPushEvents()
