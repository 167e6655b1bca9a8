"""Waiting for push answers on the event loop, many at once, without a thread each.

One task asks the database for the status of every push being waited for, in one query per
round (`app.core.push.statuses`), and wakes the waiters whose push has an answer. The answer can
come through any web node: the database is what they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("um2fa.radius")

CHUNK = 500  # ids per query (SQLite and PostgreSQL take far more; this keeps queries small)


class PushWaiter:
    def __init__(self, lookup: Callable[[list[str]], Awaitable[dict[str, str]]],
                 interval: float = 0.25) -> None:
        """`lookup` maps push ids to their status (run off the event loop by the caller)."""
        self.lookup = lookup
        self.interval = interval
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._task: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    async def wait(self, push_id: str, timeout: float) -> str:
        """The push's final status, or "pending" when it is still unanswered after `timeout`."""
        loop = asyncio.get_running_loop()
        future = self._waiting.get(push_id)
        if future is None:
            future = self._waiting[push_id] = loop.create_future()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._poll())
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return "pending"
        finally:
            if self._waiting.get(push_id) is future:
                del self._waiting[push_id]

    async def _poll(self) -> None:
        while self._waiting:
            ids = list(self._waiting)
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                try:
                    found = await self.lookup(chunk)
                except Exception as exc:  # noqa: BLE001 - keep waiting; timeouts still end waits
                    log.error("push status lookup failed: %s", type(exc).__name__)
                    break
                for push_id in chunk:
                    status = found.get(push_id, "expired")
                    future = self._waiting.get(push_id)
                    if status != "pending" and future is not None and not future.done():
                        future.set_result(status)
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
