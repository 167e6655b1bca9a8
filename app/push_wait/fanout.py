"""The ear for push fan-out: a Redis subscription to the channel on which web nodes announce
answered pushes (`app.core.push_events`), one per process that waits for answers (the RADIUS
door, the push event stream). Each announcement makes the push waiter look in the database at
once. The subscription reconnects by itself; while it is down the waiter polls at its short
interval, and after a reconnect it looks once at once, for the announcements missed
meanwhile."""

from __future__ import annotations

import asyncio
import logging
import socket

import redis
import redis.asyncio as aioredis

from app.core.push_events import CHANNEL
from app.push_wait.waiter import PushWaiter

log = logging.getLogger("um2fa.push")

MAX_BACKOFF = 10.0
KEEPALIVE = {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3}


async def listen(url: str, waiter: PushWaiter, channel: str = CHANNEL) -> None:
    backoff = 0.5
    while True:
        # TCP keepalive: a connection that dies without a reset (a network cut) is noticed in
        # about 25 s, and the listener reconnects, instead of waiting on it for ever.
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2, health_check_interval=15,
                                         socket_keepalive=True,
                                         socket_keepalive_options=KEEPALIVE)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                waiter.subscribed = True
                waiter.look_now()
                log.info("push fan-out: subscribed to Redis")
                backoff = 0.5
                async for message in pubsub.listen():
                    data = message.get("data")
                    if message.get("type") == "message" and isinstance(data, bytes):
                        waiter.announced(data.decode("ascii", "replace"))
        except (redis.RedisError, OSError) as exc:
            log.warning("push fan-out: Redis unavailable (%s); polling every %.2f s",
                        type(exc).__name__, waiter.interval)
        finally:
            waiter.subscribed = False
            await client.aclose()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
