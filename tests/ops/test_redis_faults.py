"""Redis stopped under a running web node (issue 7, faults): Redis holds the shared rate-limit
counters and carries push fan-out, but the service must not go down with it. The node keeps
signing people in, still refuses the attempt past a limit (counted in its own memory
meanwhile), reports itself "degraded" rather than unhealthy, and goes back to Redis by itself
once it answers again. A gunicorn node on SQLite and a private redis-server on a free port."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from app import create_app
from app.extensions import core
from tests.conftest import PASSWORD, make_user
from tests.peers.live import Subprocess
from tests.peers.live_radius import make_env
from tests.peers.nodes import Browser, run_cli, start_web
from tests.peers.redis_server import RedisServer

if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed", allow_module_level=True)

LIMIT = 3  # sign-ins per address per hour
PREFIX = "redis-faults"


@dataclass
class Node:
    url: str
    server: Subprocess
    redis: RedisServer
    app: object
    log: Path


@pytest.fixture
def node(tmp_path) -> Iterator[Node]:
    instance = tmp_path / "instance"
    instance.mkdir()
    database = f"sqlite:///{tmp_path / 'um2fa.sqlite3'}"
    private = RedisServer()
    private.start()
    env = make_env(instance, database, redis_url=private.url, trusted_proxies="127.0.0.1/32",
                   ratelimit_signin_address=f"{LIMIT} per hour",
                   ratelimit_signin_user="100 per hour", ratelimit_key_prefix=PREFIX)
    run_cli(env, "db", "upgrade")
    app = create_app({"instance_dir": instance, "database_url": database})
    make_user(app, "alice")
    server, url = start_web(env, "a", tmp_path)
    try:
        yield Node(url, server, private, app, tmp_path / "web-a.log")
    finally:
        server.stop()
        private.stop()
        core.database(app).dispose()


def attempt(node: Node, address: str, password: str | None = None) -> requests.Response:
    browser = Browser(node.url)
    browser.session.headers["X-Forwarded-For"] = address
    if password is None:
        return browser.try_sign_in("alice", "not-her-password")
    return browser.try_sign_in("alice", password)


def counters(node: Node) -> list[bytes]:
    return redis.Redis.from_url(node.redis.url).keys(f"*{PREFIX}*")


def health(node: Node) -> tuple[int, dict]:
    response = requests.get(node.url + "/healthz", timeout=10)
    return response.status_code, response.json()


def test_sign_in_survives_redis_going_away_and_coming_back(node):
    assert health(node) == (200, {"status": "ok", "database": "ok", "redis": "ok"})
    assert attempt(node, "10.70.0.1").status_code == 401
    assert counters(node), "the limit was not counted in Redis"

    node.redis.stop()
    assert health(node) == (200, {"status": "degraded", "database": "ok", "redis": "unavailable"})
    assert attempt(node, "10.70.0.2", PASSWORD).status_code == 302  # still signs in
    for _ in range(LIMIT):
        assert attempt(node, "10.70.0.3").status_code == 401
    refused = attempt(node, "10.70.0.3")  # the limit still holds, counted in memory now
    assert refused.status_code == 429 and "Too many attempts" in refused.text

    node.redis.start()  # empty: the counters made while it was away are the node's own
    assert health(node)[1]["redis"] == "ok"
    deadline = time.monotonic() + 60
    address = 10
    while not counters(node):  # the node looks at Redis again after a back-off (1, 2, 4... s)
        assert time.monotonic() < deadline, "the node never went back to Redis"
        assert attempt(node, f"10.70.1.{address}").status_code == 401
        address += 1
        time.sleep(0.5)
    assert health(node) == (200, {"status": "ok", "database": "ok", "redis": "ok"})
    log = node.log.read_text(errors="replace")
    assert "falling back to in-memory storage" in log and "Traceback" not in log
