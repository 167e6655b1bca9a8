"""The push event stream: a login page waiting for its push hears the moment the push is
answered, from a small asyncio server that holds thousands of waiting pages at no thread cost.

    GET /push/events?token=<watch token>     text/event-stream
    GET /healthz                             "ok", with the number of open streams

The page (templates/prompt/_push_status.html, htmx's SSE extension) connects with the token that
the status route gave it (`app.core.push.watch_token`: the push's id and row, until it expires,
signed). The stream says one thing, once: `event: answered` when the push stops waiting
(answered, or its time is up), then it ends. The page then asks its status route at once, which
tells the outcome and completes the login with the browser's session, as its polls always did.
A bad or expired token gets 403, a full server 503; either way the page keeps polling.

How the answer is heard: one `PushWaiter` per process (app/push_wait/waiter.py, the RADIUS
door's). The Redis fan-out (one subscription per process, app/push_wait/fanout.py) ends a wait
the moment a web node announces its push's answer (announced after the commit: no lookup is
needed to say "look now"); otherwise the waiter asks the database every 0.25 s, in one query
for every wait at once (`push.answered_since`), and every UM2FA_PUSH_FANOUT_POLL_SECONDS as a
safety net while subscribed. Under `um2fa serve` the app in the same process also tells it
directly (`LocalAnnouncer`).

No cookies are read (the token is the only authority), so the stream may live on another origin
than the page: `Access-Control-Allow-Origin: *`. The token travels in the query string, which
no log line here (nor the nginx of deploy/nginx.conf) writes down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from app.core import push
from app.core.push_events import PushEvents, channel_for
from app.core.services import CoreServices
from app.push_wait import STREAM_PATH
from app.push_wait.waiter import PushWaiter

log = logging.getLogger("um2fa.push.events")

HEARTBEAT_SECONDS = 15.0  # a comment line: proxies and browsers keep an idle stream open
RETRY_MS = 3000  # how soon a browser reconnects by itself after a dropped stream
DB_POLL_SECONDS = 0.25  # without Redis (or while it is down): one look for every wait
GRACE_SECONDS = 1.0  # past the push's expiry, so that the page's look finds it expired
MAX_LIFETIME = 660.0  # no stream outlives the longest push (UM2FA_PUSH_TIMEOUT <= 600 s)
DEFAULT_MAX_STREAMS = 10_000
CORS = {"Access-Control-Allow-Origin": "*"}
ANSWERED = b"event: answered\ndata: look\n\n"


class _AccessLog(AbstractAccessLogger):
    """One line per stream or request: the path without its query (the token stays out)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %d %.3fs", request.method, request.path, response.status, time)


class PushEventServer:
    def __init__(self, services: CoreServices, *, max_streams: int = DEFAULT_MAX_STREAMS,
                 heartbeat: float = HEARTBEAT_SECONDS, poll: float = DB_POLL_SECONDS) -> None:
        self.services = services
        self.clock = services.clock  # token expiry and stream lifetimes
        self.max_streams = max_streams
        self.heartbeat = heartbeat
        self.poll = poll
        self.streams = 0  # open now
        self.counts: Counter[str] = Counter()  # opened, answered, expired, refused, full
        self.waiter: PushWaiter | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-events-db")
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Task | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: a free port); returns the port."""
        settings = self.services.settings
        self.loop = asyncio.get_running_loop()
        # The stream tells no status, so an announcement ends a wait without a lookup.
        self.waiter = PushWaiter(self._answered_since, interval=self.poll,
                                 fallback_interval=settings.push_fanout_poll_seconds,
                                 trust_announcements=True)
        if settings.redis_url:  # push fan-out (needs the redis package, as the limits do)
            from app.push_wait import fanout

            self._listener = self.loop.create_task(fanout.listen(
                settings.redis_url, self.waiter, channel_for(settings.ratelimit_key_prefix)))
        app = web.Application()
        app.router.add_get(STREAM_PATH, self.stream)
        app.router.add_get("/healthz", self.health)
        # handler_cancellation: a page that goes away frees its stream at once.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=2.0,
                                     access_log_class=_AccessLog, access_log=log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        bound = self._runner.addresses[0][1]
        log.info("push event stream on http://%s:%d%s (answers heard %s)", host, bound,
                 STREAM_PATH, "from Redis" if settings.redis_url else
                 f"by asking the database every {self.poll:g} s")
        return bound

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.waiter is not None:
            await self.waiter.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def hear(self, public_id: str) -> None:
        """An answer announced by this process's own app (any thread): its pages' waits end."""
        loop, waiter = self.loop, self.waiter
        if loop is not None and waiter is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(waiter.announced, public_id)

    # --- requests -------------------------------------------------------------------------

    async def health(self, _request: web.Request) -> web.Response:
        subscribed = self.waiter is not None and self.waiter.subscribed
        return web.Response(text=f"ok streams={self.streams} subscribed={int(subscribed)}\n",
                            headers={"Cache-Control": "no-store"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        watch = push.read_watch_token(self.services.keys, request.query.get("token", ""),
                                      self.clock())
        if watch is None:
            self.counts["refused"] += 1
            return web.Response(status=403, text="not a valid push token, or it expired\n",
                                headers={**CORS, "Cache-Control": "no-store"})
        if self.streams >= self.max_streams:
            self.counts["full"] += 1
            return web.Response(status=503, text="too many waiting pages here; poll instead\n",
                                headers={**CORS, "Cache-Control": "no-store",
                                         "Retry-After": "5"})
        response = web.StreamResponse(headers={
            **CORS, "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})  # nginx: pass each event on at once
        self.streams += 1
        self.counts["opened"] += 1
        try:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n: waiting\n\n".encode())
            status = await self._wait(response, watch)
            if status is not None:
                self.counts["expired" if status == "pending" else "answered"] += 1
                await response.write(ANSWERED)
        except ConnectionError:
            pass  # the page went away (when it is noticed first here)
        finally:
            self.streams -= 1
        return response

    async def _wait(self, response: web.StreamResponse, watch: push.Watch) -> str | None:
        """The push's status once it stops waiting ("pending" when its time is up), or None
        when the page went away first."""
        assert self.waiter is not None
        left = min(watch.expires_at + GRACE_SECONDS - self.clock(), MAX_LIFETIME)
        waiting = asyncio.ensure_future(self.waiter.wait(watch.public_id, watch.row,
                                                         max(left, 0.0), look=True))
        beating = asyncio.ensure_future(self._beat(response))
        try:
            await asyncio.wait({waiting, beating}, return_when=asyncio.FIRST_COMPLETED)
            return waiting.result() if waiting.done() else None
        finally:
            for task in (waiting, beating):
                task.cancel()
            await asyncio.gather(waiting, beating, return_exceptions=True)

    async def _beat(self, response: web.StreamResponse) -> None:
        """A comment every `heartbeat` seconds; returns when one cannot be written."""
        try:
            while True:
                await asyncio.sleep(self.heartbeat)
                await response.write(b": keep-alive\n\n")
        except (ConnectionError, RuntimeError):
            return

    async def _answered_since(self, since_row: int) -> dict[str, str]:
        assert self.loop is not None
        return await self.loop.run_in_executor(self._pool, self._lookup, since_row)

    def _lookup(self, since_row: int) -> dict[str, str]:
        with self.services.context() as ctx:
            return push.answered_since(ctx, since_row)


class LocalAnnouncer:
    """The app's push fan-out plus this process's own event server: an answer taken by this
    process (`um2fa serve`) reaches its waiting pages at once, with or without Redis."""

    def __init__(self, inner: PushEvents, server: PushEventServer) -> None:
        self.inner = inner
        self.server = server

    def answered(self, public_id: str) -> None:
        self.inner.answered(public_id)
        self.server.hear(public_id)


def allow_many_files(wanted: int) -> None:
    """Raise the soft limit on open files toward `wanted` (each stream is a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve_forever(server: PushEventServer, host: str, port: int,
                        stop: asyncio.Event) -> None:
    """`um2fa push-events`: serve until `stop` is set (SIGTERM, SIGINT)."""
    await server.start(host, port)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await server.stop()


class InThread:
    """The event server on a thread of its own with its own event loop, beside a WSGI server
    in the same process (`um2fa serve`)."""

    def __init__(self, server: PushEventServer) -> None:
        self.server = server
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        self._thread = threading.Thread(target=self._run, args=(host, port),
                                        name="push-events", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        if not self._ready.is_set():
            raise RuntimeError("the push event stream did not start in 30 s")
        return self.port

    def _run(self, host: str, port: int) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                self.port = await self.server.start(host, port)
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.server.stop()

        asyncio.run(main())

    def stop(self) -> None:
        loop, stop = self.server.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
