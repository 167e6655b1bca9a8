"""One rule for a Redis that cannot be reached (app/core/redis_outage.py), kept by each of its
users: the web door's limits (tests/web/test_limit_counters.py), the VPN door's failure
counters and the push fan-out (here). Nothing listens on 127.0.0.1:9: every call to Redis
fails at once, as when it is down."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from app.core import redis_outage
from app.core.attempts import Count, RedisAttempts
from app.core.push_events import RedisPushEvents

DOWN = "redis://127.0.0.1:9/0"


class Boom(SimpleNamespace):
    """A Redis client whose every call fails as a refused connection does, counting the calls."""

    def __init__(self) -> None:
        import redis

        super().__init__(calls=0)
        self._error = redis.ConnectionError

    def _fail(self, *args, **kwargs):
        self.calls += 1
        raise self._error("Connection refused")

    publish = delete = _fail

    def pipeline(self, transaction: bool = True) -> SimpleNamespace:
        return SimpleNamespace(hmget=lambda *a: None, hincrby=lambda *a: None,
                               hset=lambda *a: None, expire=lambda *a: None, execute=self._fail)


class MemoryAttempts:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def get(self, ctx, keys):
        return [Count(self.counts.get(key, 0), 0.0) for key in keys]

    def add(self, ctx, keys, window):
        for key in keys:
            self.counts[key] = self.counts.get(key, 0) + 1
        return self.get(ctx, keys)

    def clear(self, ctx, key):
        self.counts.pop(key, None)


def test_the_back_off_doubles_up_to_its_cap_and_an_answer_ends_it(monotonic, caplog):
    outage = redis_outage.Outage(logging.getLogger("test"), "things", "doing it here")
    assert outage.asking()
    seen = []
    for _ in range(7):
        outage.failed(ConnectionError())
        assert not outage.asking()
        seen.append(outage.backoff)
        monotonic.now += outage.backoff
        assert outage.asking()
    assert seen == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert "things: Redis unavailable (ConnectionError); doing it here for 30 s" in caplog.text
    outage.answered()
    outage.answered()
    assert outage.backoff == 0.0 and caplog.text.count("things: Redis answers again") == 1
    outage.failed(ConnectionError())
    assert outage.backoff == 1.0  # a new outage starts again at a second


def test_failure_counters_go_to_the_database_while_redis_is_away_and_ask_again_later(
        monotonic, caplog):
    fallback = MemoryAttempts()
    attempts = RedisAttempts(DOWN, fallback=fallback)
    attempts._client = boom = Boom()
    attempts._name = lambda ctx, key: key
    ctx = SimpleNamespace(clock=lambda: 0.0)
    assert attempts.add(ctx, ["alice"], 900) == [Count(1, 0.0)]
    assert boom.calls == 1 and "failure counters: Redis unavailable" in caplog.text
    for _ in range(5):  # within the back-off: the database alone, Redis is not asked
        attempts.add(ctx, ["alice"], 900)
    assert attempts.get(ctx, ["alice"]) == [Count(6, 0.0)] and boom.calls == 1
    monotonic.now += 1.0
    attempts.clear(ctx, "alice")  # asked again; fails again; the database's counter is cleared
    assert boom.calls == 2 and attempts.outage.backoff == 2.0 and fallback.counts == {}


def test_the_push_fan_out_skips_redis_while_it_is_away(monotonic, caplog):
    events = RedisPushEvents(DOWN)
    events._client = boom = Boom()
    events.answered("p1")
    assert boom.calls == 1 and "waiting nodes fall back to polling for 1 s" in caplog.text
    events.answered("p2")
    assert boom.calls == 1  # a push answered meanwhile does not wait on Redis
    monotonic.now += 1.0
    events.answered("p3")
    assert boom.calls == 2 and events.outage.backoff == 2.0


def test_the_real_client_fails_within_its_timeout_and_the_fallback_answers(monotonic):
    attempts = RedisAttempts(DOWN, fallback=MemoryAttempts())
    attempts._name = lambda ctx, key: key
    assert attempts.get(SimpleNamespace(), ["bob"]) == [Count(0, 0.0)]
    assert attempts.outage.backoff == 1.0
