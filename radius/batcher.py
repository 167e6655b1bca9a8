"""Group commit for the RADIUS door: one thread decides the requests that queued up together
in one transaction (app.core.radius_auth.decide_many) and hands the decisions back to the
event loop once they are committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from pyrad import packet as rp

from app.core import radius_auth
from app.core.services import CoreServices

log = logging.getLogger("um2fa.radius")

MAX_BATCH = 128  # requests decided in one transaction at most


class Pending(NamedTuple):
    """A request on its way through the decision thread, with what its answer needs."""

    protocol: Any
    pkt: rp.AuthPacket
    request: radius_auth.AccessRequest
    key: tuple
    addr: tuple


class Batcher:
    """One thread deciding queued requests in batches: each batch is what queued up while the
    previous one was decided (up to MAX_BATCH), so under light load a batch is one request
    and nothing waits for a batch to fill. `done` is called on the event loop with each batch
    and its decisions, after the batch's transaction has committed. `lock`, if given, is held
    around each batch (several processes on one SQLite database take turns with it)."""

    def __init__(self, services: CoreServices, loop: asyncio.AbstractEventLoop,
                 done: Callable[[list[Pending], list[radius_auth.Decision]], None],
                 max_batch: int = MAX_BATCH,
                 lock: contextlib.AbstractContextManager | None = None) -> None:
        self.services, self.loop, self.done, self.max_batch = services, loop, done, max_batch
        self.lock = lock
        self.queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="radius-batch", daemon=True)
        self.thread.start()

    def submit(self, item: Pending) -> None:
        self.queue.put(item)

    def close(self, timeout: float = 10.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._decide(batch)
            if stop:
                return

    def _decide(self, batch: list[Pending]) -> None:
        try:
            with self.lock or contextlib.nullcontext():
                decisions = radius_auth.decide_many(self.services, [p.request for p in batch])
        except Exception:  # noqa: BLE001 - decide_many answers its own errors; never die
            log.exception("error deciding %d Access-Requests", len(batch))
            default = self.services.settings.default_language
            decisions = [radius_auth.error_decision(p.request, default) for p in batch]
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone
            self.loop.call_soon_threadsafe(self.done, batch, decisions)
