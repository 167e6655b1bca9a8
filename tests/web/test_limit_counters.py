"""The counters behind the web door's limits on guessing (app/core/hit_counters.py,
app/web/limits.py): a request's limits counted in one Redis round trip, the narrowest first, a
refused request not counted against the wider limits, the node's memory when Redis is away,
and no typed username (which may be a password typed in the wrong field) kept in Redis.

The Redis tests need UM2FA_TEST_REDIS_URL (.ci/run sets it)."""

from __future__ import annotations

import os
import uuid

import pytest
import redis as redis_lib

from app.core import hit_counters
from app.core.hit_counters import MemoryHits, RedisHits
from tests.conftest import PASSWORD, add_totp_device, csrf_token, make_user, post

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs UM2FA_TEST_REDIS_URL")


def test_memory_counts_in_a_window_that_starts_at_the_first_hit(monotonic):
    hits = MemoryHits()
    assert [hits.hit(["a"], [60], [2]) for _ in range(3)] == [True, True, False]
    monotonic.now += 59
    assert not hits.hit(["a"], [60], [2])  # the same window: still past it
    monotonic.now += 1
    assert hits.hit(["a"], [60], [2])  # a new window


def test_a_hit_refused_by_the_narrow_limit_is_not_counted_on_the_wider_one(monotonic):
    hits = MemoryHits()
    narrow, wide = ("user@address", "user"), ([60, 60], [1, 3])
    assert hits.hit(narrow, *wide)
    assert not hits.hit(narrow, *wide)  # refused by the narrow limit: "user" stays at 1
    assert not hits.hit(narrow, *wide)
    assert hits.hit(["other@address", "user"], *wide)  # "user" at 2
    assert hits.hit(["third@address", "user"], *wide)  # "user" at 3
    assert not hits.hit(["fourth@address", "user"], *wide)


def test_memory_forgets_counters_past_their_window(monotonic, monkeypatch):
    monkeypatch.setattr(hit_counters, "PURGE_EVERY", 10)
    hits = MemoryHits()
    for n in range(9):
        hits.hit([f"k{n}"], [60], [5])
    monotonic.now += 61
    hits.hit(["fresh"], [60], [5])  # the tenth hit sweeps
    assert set(hits._counts) == {"fresh"}


@pytest.fixture
def redis_hits() -> RedisHits:
    prefix = f"test-hits-{uuid.uuid4().hex[:10]}"
    counters = RedisHits(REDIS_URL, prefix)
    yield counters
    client = redis_lib.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


class RoundTrips:
    """Commands sent to Redis (each `send_packed_command` is one round trip's request)."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        original = redis_lib.connection.AbstractConnection.send_packed_command

        def counting(connection, command, check_health=True):
            self.count += 1
            return original(connection, command, check_health)

        monkeypatch.setattr(redis_lib.connection.AbstractConnection, "send_packed_command",
                            counting)


@needs_redis
def test_redis_counts_the_limits_in_one_round_trip(redis_hits, monkeypatch):
    assert redis_hits.hit(["a"], [60], [5])  # loads the script
    trips = RoundTrips(monkeypatch)
    assert redis_hits.hit(["x@1", "x", "1"], [60, 60, 60], [2, 4, 9])
    assert trips.count == 1


@needs_redis
def test_redis_windows_expire_and_refusals_stop_counting(redis_hits):
    client = redis_lib.Redis.from_url(REDIS_URL)
    keys = ["u@a", "u"]
    assert [redis_hits.hit(keys, [60, 300], [1, 5]) for _ in range(3)] == [True, False, False]
    counts = {key.decode().rsplit(":", 1)[-1]: int(client.get(key))
              for key in client.scan_iter(f"{redis_hits._prefix}*")}
    assert counts == {"u@a": 3, "u": 1}  # the refused hits stopped at the narrow limit
    ttls = sorted(client.ttl(key) for key in client.scan_iter(f"{redis_hits._prefix}*"))
    assert 55 <= ttls[0] <= 60 and 295 <= ttls[1] <= 300


def test_redis_away_counts_in_memory_and_looks_again_after_a_back_off(monotonic, caplog):
    hits = RedisHits("redis://127.0.0.1:9/0")  # nothing listens on port 9
    assert [hits.hit(["a"], [60], [2]) for _ in range(3)] == [True, True, False]
    assert "falling back to in-memory storage" in caplog.text
    assert hits.outage.backoff == 1.0  # asked once; the next hits went to memory meanwhile
    monotonic.now += 1.5
    hits.hit(["a"], [60], [2])
    assert hits.outage.backoff == 2.0  # asked again after the back-off, and it doubles


@needs_redis
@pytest.mark.parametrize("settings_overrides", [{
    "redis_url": REDIS_URL, "ratelimit_key_prefix": f"test-web-hits-{uuid.uuid4().hex[:8]}",
    "ratelimit_passcode_user": "2 per minute"}])
def test_a_passcode_post_costs_one_redis_round_trip_and_keeps_no_username(
        app, client, settings_overrides, monkeypatch):
    make_user(app)
    add_totp_device(app)
    post(client, "/sign-in", {"username": "alice", "password": PASSWORD})
    assert post(client, "/prompt", {"passcode": "000000"}, token_from="/prompt"
                ).status_code == 401  # loads the script
    token = csrf_token(client, "/prompt")
    trips = RoundTrips(monkeypatch)
    guess = client.post("/prompt", data={"csrf_token": token, "passcode": "000000"})
    assert guess.status_code == 401
    assert trips.count == 1  # the three limits (address, user and address, user) together
    assert post(client, "/prompt", {"passcode": "000000"}).status_code == 429

    typo = post(app.test_client(), "/sign-in", {"username": "alice",
                                                "password": "hunter2-typed-here"})
    assert typo.status_code == 401
    prefix = settings_overrides["ratelimit_key_prefix"]
    redis = redis_lib.Redis.from_url(REDIS_URL)
    keys = [key.decode() for key in redis.scan_iter(f"{prefix}:*")]
    assert len(keys) == 6  # per address, user and address, user: at the prompt and sign-in
    assert not [key for key in keys if "alice" in key or "hunter2" in key]
    for key in keys:
        redis.delete(key)
