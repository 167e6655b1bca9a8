"""Push fan-out (issue 7): an answered push is announced on Redis after its commit, and the
RADIUS door's push waits hear it and look in the database at once instead of at their next
poll. Real Redis: the machine's (UM2FA_TEST_REDIS_URL) and private redis-server processes that
a test stops and starts again."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from app.core import push
from app.core.push_events import NoPushEvents, RedisPushEvents, make_push_events
from app.push_wait.fanout import listen
from app.push_wait.waiter import PushWaiter
from tests.conftest import TEST_ORIGIN
from tests.helpers.push import answer, new_phone
from tests.peers.live import free_port
from tests.peers.redis_server import RedisServer

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs UM2FA_TEST_REDIS_URL")
SLOW = 60.0  # poll intervals no test waits for: an answer seen in time came by announcement


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


class Answers:
    """The database's side as the waiter sees it: push id -> final status, and look-ups."""

    def __init__(self) -> None:
        self.final: dict[str, str] = {}
        self.lookups = 0

    async def lookup(self, _since_row: int) -> dict[str, str]:
        self.lookups += 1
        return dict(self.final)


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


def run(coro) -> object:
    """asyncio.run in a thread of its own (a browser test may hold this thread's loop)."""
    box: list = []

    def target() -> None:
        box.append(asyncio.run(coro))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return box[0]


async def answered_while_waiting(url: str, channel: str, announce: bool) -> tuple[str, int]:
    answers = Answers()
    waiter = PushWaiter(answers.lookup, interval=SLOW, fallback_interval=SLOW)
    listener = asyncio.create_task(listen(url, waiter, channel))
    try:
        await until(lambda: waiter.subscribed)
        waiting = asyncio.create_task(waiter.wait("p1", row=1, timeout=3))
        await until(lambda: answers.lookups == 1)  # the first look finds nothing
        answers.final["p1"] = "approved"
        if announce:
            await asyncio.to_thread(RedisPushEvents(url, channel).answered, "p1")
        return await waiting, answers.lookups
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await waiter.close()


@needs_redis
def test_an_announced_answer_ends_the_wait_at_once():
    channel = f"test:{uuid.uuid4().hex}"
    assert run(answered_while_waiting(REDIS_URL, channel, announce=True)) == ("approved", 2)
    # without the announcement the wait runs out (the next poll is a minute away)
    assert run(answered_while_waiting(REDIS_URL, channel, announce=False)) == ("pending", 1)


@needs_redis
def test_announcements_of_other_pushes_cost_no_lookup():
    async def scenario() -> tuple[list[str], int, str]:
        channel = f"test:{uuid.uuid4().hex}"
        answers = Answers()
        waiter = PushWaiter(answers.lookup, interval=SLOW, fallback_interval=SLOW)
        heard: list[str] = []
        announced = waiter.announced
        waiter.announced = lambda push_id: (heard.append(push_id), announced(push_id))
        listener = asyncio.create_task(listen(REDIS_URL, waiter, channel))
        events = RedisPushEvents(REDIS_URL, channel)
        try:
            await until(lambda: waiter.subscribed)
            waiting = asyncio.create_task(waiter.wait("mine", row=1, timeout=10))
            await until(lambda: answers.lookups == 1)
            for other in ("someone-else", "another"):
                await asyncio.to_thread(events.answered, other)
            await until(lambda: len(heard) == 2)  # heard, and...
            await asyncio.sleep(0.3)
            lookups = answers.lookups  # ...no look for them
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            return heard, lookups, events.channel
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await waiter.close()

    heard, lookups, _channel = run(scenario())
    assert heard == ["someone-else", "another"] and lookups == 1


def test_without_redis_the_wait_polls_at_the_short_interval():
    async def scenario() -> tuple[str, bool]:
        answers = Answers()
        waiter = PushWaiter(answers.lookup, interval=0.05, fallback_interval=SLOW)
        closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        listener = asyncio.create_task(listen(closed, waiter))
        try:
            waiting = asyncio.create_task(waiter.wait("p1", row=1, timeout=10))
            await until(lambda: answers.lookups >= 1)
            answers.final["p1"] = "denied"
            RedisPushEvents(closed).answered("p1")  # fails quietly; logins do not notice
            return await waiting, waiter.subscribed
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await waiter.close()

    assert run(scenario()) == ("denied", False)


def test_the_listener_reconnects_and_catches_up_after_redis_comes_back(private_redis):
    async def scenario() -> list[str]:
        answers = Answers()
        waiter = PushWaiter(answers.lookup, interval=SLOW, fallback_interval=SLOW)
        listener = asyncio.create_task(listen(private_redis.url, waiter))
        try:
            await until(lambda: waiter.subscribed)
            waiting = asyncio.create_task(waiter.wait("p1", row=1, timeout=30))
            await until(lambda: answers.lookups == 1)
            await asyncio.to_thread(private_redis.stop)
            await until(lambda: not waiter.subscribed)
            answers.final["p1"] = "approved"  # answered while Redis is down: nobody hears it
            await asyncio.to_thread(private_redis.start)
            # the listener comes back by itself and looks once, for what it missed
            return [await asyncio.wait_for(waiting, 20)]
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await waiter.close()

    assert run(scenario()) == ["approved"]


class Recorder:
    def __init__(self) -> None:
        self.announced: list[str] = []

    def answered(self, public_id: str) -> None:
        self.announced.append(public_id)


def test_an_answer_is_announced_after_its_commit_only(ctx, alice):  # noqa: F811
    recorder = Recorder()
    ctx.push_events = recorder
    phone, device_id = new_phone(ctx)

    first = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    ctx.db.commit()
    assert answer(ctx, phone, device_id, first.public_id, "approve", first.number) == "approved"
    assert recorder.announced == []  # not yet committed: a node that looked would not see it
    ctx.db.commit()
    assert recorder.announced == [first.public_id]

    second = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    ctx.db.commit()
    answer(ctx, phone, device_id, second.public_id, "deny")
    ctx.db.rollback()  # the answer is undone: nothing to announce, then or at a later commit
    ctx.db.commit()
    assert recorder.announced == [first.public_id]


@needs_redis
def test_an_answer_reaches_subscribers_on_redis(app, ctx, alice):  # noqa: F811
    client = redis.Redis.from_url(REDIS_URL)
    channel = f"test:{uuid.uuid4().hex}"
    ctx.push_events = RedisPushEvents(REDIS_URL, channel)
    with client.pubsub(ignore_subscribe_messages=True) as pubsub:
        pubsub.subscribe(channel)
        phone, device_id = new_phone(ctx)
        request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
        ctx.db.commit()
        answer(ctx, phone, device_id, request.public_id, "approve", request.number)
        ctx.db.commit()
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:  # skips the subscribe reply
            message = pubsub.get_message(timeout=1)
        assert message is not None and message["data"] == request.public_id.encode()


def test_the_app_announces_on_redis_only_when_it_has_one():
    assert isinstance(make_push_events(""), NoPushEvents)
    assert isinstance(make_push_events("redis://127.0.0.1:6379/0"), RedisPushEvents)
    # channels are server-wide in Redis: services sharing one keep apart by their prefix
    assert make_push_events("redis://127.0.0.1:6379/0", "staging").channel == (  # type: ignore[union-attr]
        "staging:um2fa:push-answered")


def test_a_fraud_report_announces_every_push_it_denies(ctx, alice):  # noqa: F811
    recorder = Recorder()
    ctx.push_events = recorder
    phone, device_id = new_phone(ctx)
    reported, other = (push.start(ctx, TEST_ORIGIN, alice, None, service=s) for s in ("a", "b"))
    ctx.db.commit()
    assert answer(ctx, phone, device_id, reported.public_id, "fraud") == "fraud"
    ctx.db.commit()
    # the other pending push is denied with it: a RADIUS wait on it must hear that too
    assert sorted(recorder.announced) == sorted([reported.public_id, other.public_id])
