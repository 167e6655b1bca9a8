"""Waiting for push answers on the event loop, many at once, without a thread each.

One task asks the database for the pushes answered since the oldest one being waited for
(`app.core.push.answered_since`: a primary-key range scan that skips the pending rows inside
the database), and wakes the waiters whose push has an answer. The answer can come through any
web node: the database is what they share. A wait that is not answered ends at its timeout; the
caller then decides from the database (the push may have just been answered, or it is expired
then).

When does it ask? With push fan-out (Redis, `app.push_wait.fanout`), as soon as a web node
announces an answer, and otherwise only every `fallback_interval` seconds as a safety net.
Without fan-out (or while Redis is down) every `interval` seconds.

Used by the RADIUS door (a VPN login waits for its push) and by the push event stream
(`app.push_wait.events`: a login page waits for its push).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("um2fa.push")


@dataclass
class _Entry:
    row: int
    future: asyncio.Future[str]
    waits: int = 0  # how many waits share it (a page that reconnects may briefly have two)


class PushWaiter:
    def __init__(self, lookup: Callable[[int], Awaitable[dict[str, str]]],
                 interval: float = 0.25, fallback_interval: float = 2.0, *,
                 trust_announcements: bool = False) -> None:
        """`lookup(since_row)` maps push ids to their status for the pushes no longer pending
        from that row id on (run off the event loop by the caller). `trust_announcements`: an
        announced push's wait ends at once with the status "announced", without a lookup (a
        node announces an answer only after its commit; for a waiter that needs no status)."""
        self.lookup = lookup
        self.interval = interval
        self.fallback_interval = fallback_interval
        self.trust_announcements = trust_announcements
        self.subscribed = False  # set by the fan-out listener while it hears announcements
        self.lookups = 0
        self._waiting: dict[str, _Entry] = {}
        self._task: asyncio.Task | None = None
        self._kick = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    def announced(self, push_id: str) -> None:
        """A node says this push was answered: look now, if we are waiting for it."""
        entry = self._waiting.get(push_id)
        if entry is None:
            return
        if self.trust_announcements:
            if not entry.future.done():
                entry.future.set_result("announced")
        else:
            self._kick.set()

    def look_now(self) -> None:
        """Look at once (e.g. after fan-out reconnects: announcements may have been missed)."""
        if self._waiting:
            self._kick.set()

    async def wait(self, push_id: str, row: int, timeout: float, *, look: bool = False) -> str:
        """The push's final status, or "pending" when it is still unanswered after `timeout`.
        `look`: look at once rather than at the next round (the push may be answered already:
        a login page that connects late)."""
        loop = asyncio.get_running_loop()
        entry = self._waiting.get(push_id)
        if entry is None:
            entry = self._waiting[push_id] = _Entry(row, loop.create_future())
        entry.waits += 1
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._poll())
        elif look:
            self._kick.set()
        try:
            return await asyncio.wait_for(asyncio.shield(entry.future), timeout)
        except TimeoutError:
            return "pending"
        finally:
            entry.waits -= 1
            if entry.waits == 0 and self._waiting.get(push_id) is entry:
                del self._waiting[push_id]

    async def _poll(self) -> None:
        while self._waiting:
            self._kick.clear()  # an announcement during the lookup leaves it set: look again
            since = min(entry.row for entry in self._waiting.values())
            self.lookups += 1
            try:
                answered = await self.lookup(since)
            except Exception as exc:  # noqa: BLE001 - keep waiting; timeouts still end waits
                log.error("push status lookup failed: %s", type(exc).__name__)
                answered = {}
            for push_id, status in answered.items():
                entry = self._waiting.get(push_id)
                if entry is not None and not entry.future.done():
                    entry.future.set_result(status)
            pause = self.fallback_interval if self.subscribed else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), pause)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
