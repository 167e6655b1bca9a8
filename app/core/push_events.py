"""Push fan-out: telling every node at once that a push was answered.

The database stays the record of every push; this only saves the nodes that wait for answers
(the RADIUS door's push waits) from learning about them at their next poll. An answer is
published on a Redis channel after its commit, so a node that hears it finds the answer in the
database. Without Redis, or while Redis is down, the waiting nodes' polling alone ends every
wait: a lost message costs latency, never an answer.
"""

from __future__ import annotations

import logging
from typing import Protocol

from app.core import redis_outage

log = logging.getLogger("um2fa.push")

CHANNEL = "um2fa:push-answered"


class PushEvents(Protocol):
    def answered(self, public_id: str) -> None: ...


class NoPushEvents:
    def answered(self, public_id: str) -> None:
        return None


class RedisPushEvents:
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.channel = channel
        self._client = redis_outage.client(url)
        self._errors = redis_outage.errors()
        self.outage = redis_outage.Outage(log, "push fan-out",
                                          "waiting nodes fall back to polling")

    def answered(self, public_id: str) -> None:
        """Skipped while Redis is away (a login never waits on it): the waiting nodes poll."""
        if not self.outage.asking():
            return
        try:
            self._client.publish(self.channel, public_id)
        except self._errors as exc:
            self.outage.failed(exc)
        else:
            self.outage.answered()


def channel_for(prefix: str) -> str:
    """Pub/sub channels are server-wide in Redis (not per database number): services sharing
    one Redis keep apart by their prefix (UM2FA_RATELIMIT_KEY_PREFIX, as the limits do)."""
    return f"{prefix}:{CHANNEL}" if prefix else CHANNEL


def make_push_events(redis_url: str, prefix: str = "") -> PushEvents:
    return RedisPushEvents(redis_url, channel_for(prefix)) if redis_url else NoPushEvents()
