"""The push event stream (issue 17, point 6): a login page waiting for its push hears the moment
the push stops waiting, from `GET /push/events?token=...` (app/push_wait/events.py).

The watch token first (core: forged, altered, expired and malformed ones are refused), then the
event server live on 127.0.0.1 with a real aiohttp client: the answer heard through Redis
(UM2FA_TEST_REDIS_URL; the server's database polling set a minute away, so only the
announcement can end the wait), through the database alone, and from the app in the same
process (`um2fa serve`); a push whose time runs out; the cap on streams, bad tokens, and a page
that goes away."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest

from app.core import push
from app.core.push_events import NoPushEvents
from app.extensions import core
from app.push_wait import STREAM_PATH
from app.push_wait.events import InThread, LocalAnnouncer, PushEventServer
from tests.conftest import TEST_ORIGIN
from tests.helpers.push import answer, new_phone

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
SLOW = 60.0  # a database poll no test waits for
EVENT = "event: answered\ndata: look\n\n"


def bounded(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


# --- the watch token ----------------------------------------------------------------------------

def _with_mac(token: str, mac: bytes) -> str:
    return token.rsplit(".", 1)[0] + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_the_watch_token_names_its_push_until_it_expires_and_cannot_be_forged(ctx, alice,
                                                                              clock):
    from app.core.keys import Keys

    new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    ctx.db.commit()
    token = push.watch_token(ctx.keys, request)
    watched = push.read_watch_token(ctx.keys, token, clock())
    assert watched == push.Watch(request.public_id, request.id,
                                 int(request.expires_at.timestamp()))
    assert len(token) <= 160 and token.isascii() and "/" not in token and "+" not in token
    # expired: refused at its expiry
    assert push.read_watch_token(ctx.keys, token, watched.expires_at) is None
    assert push.read_watch_token(ctx.keys, token, watched.expires_at - 1) == watched

    # forged, altered and malformed tokens
    mine = request
    theirs = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    ctx.db.commit()
    public_id, row, expires, mac = token.split(".")
    now = clock()
    forged = [
        f"{theirs.public_id}.{row}.{expires}.{mac}",           # another push, my signature
        f"{public_id}.{theirs.id}.{expires}.{mac}",             # another row
        f"{public_id}.{row}.{int(expires) + 3600}.{mac}",      # a longer life
        _with_mac(token, b"\x00" * 32),                        # a made-up signature
        _with_mac(token, ctx.keys.keyed_hash("other purpose", token.rsplit(".", 1)[0])),
        push.watch_token(Keys("another instance's key, 32+ chars long!!"), mine),
    ]
    malformed = ["", "x", token + ".1", token[:-1], token.replace(".", "-"),
                 f"{public_id}.-{row}.{expires}.{mac}", f"{public_id}.{row}.1e9.{mac}",
                 f"{public_id}.{row}.{expires}.{mac}!", token + "A" * 200,
                 f"bad id!.{row}.{expires}.{mac}", "é" * 20, "\x00" * 10]
    for bad in forged + malformed:
        assert push.read_watch_token(ctx.keys, bad, now) is None, bad
    assert push.read_watch_token(ctx.keys, token, now) is not None


# --- the event server, live ---------------------------------------------------------------------

@contextmanager
def event_server(app, clock, **options) -> Iterator[tuple[PushEventServer, str]]:
    server = PushEventServer(core.services(app), **options)
    server.clock = clock  # the tests' settable clock (pushes expire by it)
    runner = InThread(server)
    port = runner.start("127.0.0.1", 0)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        runner.stop()


class Page:
    """A waiting page's EventSource, as plain HTTP: an aiohttp client on a thread of its own,
    reading the stream until the server ends it."""

    def __init__(self, base: str, token: str, *, timeout: float = 15.0) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = ""
        self.opened = threading.Event()
        self.ended_at = 0.0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run,
                                        args=(self._read(base, token, timeout),), daemon=True)
        self._thread.start()

    async def _read(self, base: str, token: str, timeout: float) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        limit = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=limit) as s, \
                s.get(base + STREAM_PATH, params={"token": token}) as response:
            self.status, self.headers = response.status, dict(response.headers)
            if response.status != 200:
                self.body = await response.text()
                self.opened.set()
                return
            self.body = (await response.content.readuntil(b"\n\n")).decode()
            self.opened.set()
            reading = asyncio.ensure_future(response.content.read())
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if reading.done():
                self.body += reading.result().decode()
                self.ended_at = time.monotonic()
            else:
                reading.cancel()  # the page goes away

    def leave(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.join()

    def join(self, timeout: float = 20.0) -> Page:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream never ended"
        return self


def pending_push(ctx, alice):
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    ctx.db.commit()
    return request


def approve_and_time(ctx, page: Page, phone, device_id, request) -> float:
    started = time.monotonic()
    assert answer(ctx, phone, device_id, request.public_id, "approve",
                  request.number) == "approved"
    ctx.db.commit()  # announced after the commit (Redis, or this process's own server)
    page.join()
    return page.ended_at - started


def assert_event_stream(page: Page) -> None:
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/event-stream"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Accel-Buffering"] == "no"
    assert page.headers["Access-Control-Allow-Origin"] == "*"
    assert page.body.startswith("retry: 3000\n")


@pytest.fixture
def redis_prefix(settings_overrides):
    if not REDIS_URL:
        pytest.skip("needs UM2FA_TEST_REDIS_URL")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings_overrides.update({"redis_url": REDIS_URL, "ratelimit_key_prefix": prefix})
    return prefix


def test_an_answer_announced_on_redis_ends_the_stream_at_once(redis_prefix, app, ctx, alice,
                                                             clock):
    phone, device_id = new_phone(ctx)
    request = pending_push(ctx, alice)
    with event_server(app, clock, poll=SLOW) as (server, base):
        bounded(lambda: server.waiter is not None and server.waiter.subscribed)
        page = Page(base, push.watch_token(ctx.keys, request))
        assert page.opened.wait(10)
        assert_event_stream(page)
        bounded(lambda: server.waiter.lookups == 1)  # the look at connect found nothing
        elapsed = approve_and_time(ctx, page, phone, device_id, request)
        assert page.body.endswith(EVENT) and page.body.count("event:") == 1
        assert elapsed < 1.0  # the next database look was a minute away
        assert server.waiter.lookups == 1  # none for the announcement: it said enough
        assert server.counts["answered"] == 1
        assert server.streams == 0


def test_without_redis_the_database_or_the_app_itself_ends_the_wait(app, ctx, alice, clock):
    phone, device_id = new_phone(ctx)
    # the event server asks the database for every wait at once (`push.answered_since`)
    request = pending_push(ctx, alice)
    with event_server(app, clock, poll=0.05) as (server, base):
        page = Page(base, push.watch_token(ctx.keys, request))
        assert page.opened.wait(10)
        assert_event_stream(page)
        elapsed = approve_and_time(ctx, page, phone, device_id, request)
        assert page.body.endswith(EVENT) and elapsed < 2.0
        assert server.counts["answered"] == 1

    with event_server(app, clock, poll=SLOW) as (server, base):
        # `um2fa serve`: the app tells its own event server of the answers it takes
        request = pending_push(ctx, alice)
        ctx.push_events = LocalAnnouncer(NoPushEvents(), server)
        page = Page(base, push.watch_token(ctx.keys, request))
        assert page.opened.wait(10)
        bounded(lambda: server.waiter.lookups == 1)  # the look at connect found nothing
        elapsed = approve_and_time(ctx, page, phone, device_id, request)
        assert page.body.endswith(EVENT) and elapsed < 1.0

        # a push answered before its page connects: told at once, though another page's wait
        # keeps the poller (a minute between looks) running
        answered = pending_push(ctx, alice)
        answer(ctx, phone, device_id, answered.public_id, "deny")
        ctx.db.commit()
        waiting = Page(base, push.watch_token(ctx.keys, pending_push(ctx, alice)))
        assert waiting.opened.wait(10)
        late = Page(base, push.watch_token(ctx.keys, answered), timeout=5).join()
        assert late.body.endswith(EVENT) and server.counts["answered"] == 2
        waiting.leave()


def test_the_stream_ends_when_the_push_runs_out_of_time(app, ctx, alice, clock):
    new_phone(ctx)
    request = pending_push(ctx, alice)
    clock.advance(59.0)  # one second or two left
    with event_server(app, clock, poll=SLOW, heartbeat=0.2) as (server, base):
        started = time.monotonic()
        page = Page(base, push.watch_token(ctx.keys, request)).join()
        assert page.body.endswith(EVENT) and ": keep-alive\n\n" in page.body
        assert 0.5 < page.ended_at - started < 4.0
        assert server.counts["expired"] == 1
        # the page then asks its status route, which says expired; the stream only said "look"
        clock.advance(2.0)
        assert push.status(ctx, alice, request.public_id) == "expired"


def test_bad_tokens_are_refused_and_the_streams_are_capped(app, ctx, alice, clock):
    new_phone(ctx)
    request = pending_push(ctx, alice)
    token = push.watch_token(ctx.keys, request)
    with event_server(app, clock, poll=SLOW, max_streams=2) as (server, base):
        for bad in ("", token[:-2] + "AA", "x" * 500):
            refused = Page(base, bad).join()
            assert refused.status == 403 and "not a valid push token" in refused.body
            assert refused.headers["Access-Control-Allow-Origin"] == "*"
        first, second = Page(base, token), Page(base, token)  # a page that reconnects: two
        assert first.opened.wait(10) and second.opened.wait(10)
        assert first.status == second.status == 200 and server.streams == 2
        full = Page(base, token).join()
        assert full.status == 503 and full.headers["Retry-After"] == "5"
        assert server.counts["full"] == 1
        first.leave()  # the page goes away: its stream is freed at once
        bounded(lambda: server.streams == 1)
        again = Page(base, token)
        assert again.opened.wait(10) and again.status == 200
        assert fetch(base + "/healthz") == "ok streams=2 subscribed=0\n"
        second.leave()
        again.leave()
        bounded(lambda: server.streams == 0)
        # the waits of a token that went away are gone too: no poller left behind
        bounded(lambda: len(server.waiter) == 0)


def fetch(url: str) -> str:
    async def get() -> str:
        async with aiohttp.ClientSession() as s, s.get(url) as response:
            return await response.text()

    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(get())))
    thread.start()
    thread.join(10)
    return box[0]


def test_um2fa_push_events_runs_on_its_own(tmp_path):
    """The production command, as an operator starts it (deploy/um2fa-push-events.service)."""
    from tests.peers.live import UM2FA, Subprocess, free_port, make_live_server

    server = make_live_server(tmp_path)  # its environment and instance directory
    server.cli("db", "upgrade")
    port = free_port()
    events = Subprocess()
    log = tmp_path / "push-events.log"
    events.spawn([UM2FA, "push-events", "--port", str(port)], env=server.env, log_path=log,
                 ready_url=f"http://127.0.0.1:{port}/healthz")
    try:
        assert fetch(f"http://127.0.0.1:{port}/healthz") == "ok streams=0 subscribed=0\n"
        refused = Page(f"http://127.0.0.1:{port}", "not-a-token").join()
        assert refused.status == 403
    finally:
        events.stop()  # SIGTERM: a clean stop
    assert events.process is not None and events.process.returncode == 0
    text = log.read_text()
    assert f"push event stream on http://127.0.0.1:{port}/push/events" in text
    assert "not-a-token" not in text  # the token (in the query) is never logged
    assert f"GET {STREAM_PATH} 403" in text
