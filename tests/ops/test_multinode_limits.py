"""Rate limits shared across web nodes (issue 7, item 1): the counters are in Redis, so attempts
spread over two gunicorn nodes are counted together, and the one past the limit is refused with
429 although no single node saw that many.

The nodes trust 127.0.0.1 as their proxy, so each test picks its client addresses with
X-Forwarded-For. The counters' keys carry a prefix of this run's own (UM2FA_RATELIMIT_KEY_PREFIX),
and only those keys are deleted at the end: other tests share the Redis.

The RADIUS door's limits on guessing (app/core/attempts.py: Redis, else the database) are shown
shared by two nodes in tests/radius/test_radius_guessing.py; its lockout counter in PostgreSQL
in tests/ops/test_multinode.py.

Needs UM2FA_TEST_DATABASE_URL and UM2FA_TEST_REDIS_URL (.ci/run sets both).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PG_URL = os.environ.get("UM2FA_TEST_DATABASE_URL", "")
if not (PG_URL and os.environ.get("UM2FA_TEST_REDIS_URL")):
    pytest.skip("multi-node tests need UM2FA_TEST_DATABASE_URL and UM2FA_TEST_REDIS_URL",
                allow_module_level=True)

import redis  # noqa: E402
import requests  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import core  # noqa: E402
from tests.helpers.multinode import (  # noqa: E402
    REDIS_URL,
    SETTINGS,
    current_code,
    user_with_totp,
    wrong_code,
)
from tests.peers.live_radius import make_env  # noqa: E402
from tests.peers.nodes import (  # noqa: E402
    Browser,
    copy_keys,
    drop_schema,
    fresh_schema,
    make_keys,
    node_env,
    run_cli,
    start_web,
)

SIGNIN_ADDRESS_LIMIT = 4
SIGNIN_USER_LIMIT = 3
PASSCODE_USER_LIMIT = 3
PREFIX = f"test-limits-{uuid.uuid4().hex[:12]}"
LIMIT_SETTINGS = {
    **SETTINGS,
    "lockout_threshold": "10",  # above the passcode limit: the limit answers first
    "trusted_proxies": "127.0.0.1/32",
    "ratelimit_signin_address": f"{SIGNIN_ADDRESS_LIMIT} per hour",
    # The per-user limits count per user and address; these tests come from a new address each
    # time, so what they meet is the per-user ceiling (from every address), set to the same.
    "ratelimit_signin_user": f"{SIGNIN_USER_LIMIT} per hour",
    "ratelimit_signin_user_ceiling": f"{SIGNIN_USER_LIMIT} per hour",
    "ratelimit_passcode_user": f"{PASSCODE_USER_LIMIT} per hour",
    "ratelimit_passcode_user_ceiling": f"{PASSCODE_USER_LIMIT} per hour",
}
NODE_SETTINGS = {**LIMIT_SETTINGS, "ratelimit_key_prefix": PREFIX}  # only in the nodes


@dataclass
class Nodes:
    app: object  # in the test's process, for set-up only (users, devices)
    web: list[str]  # base URLs of web nodes A and B


def our_keys() -> list[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=f"*{PREFIX}*", count=1000))
    finally:
        client.close()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[Nodes]:
    base = tmp_path_factory.mktemp("limits")
    instance = base / "first" / "instance"
    instance.mkdir(parents=True)
    schema, url = fresh_schema(PG_URL)
    env = make_env(instance, url, **NODE_SETTINGS)
    second = node_env(env, base / "second" / "instance")  # node B's machine
    started: list = []
    app = None
    try:
        make_keys(env)  # node A's; node B gets a copy (docs/deploy.md, "3. Shared keys")
        copy_keys(instance, base / "second" / "instance")
        run_cli(env, "db", "upgrade")
        app = create_app({"instance_dir": instance, "database_url": url, **LIMIT_SETTINGS})
        web = []
        for name, machine in (("a", env), ("b", second)):
            server, web_url = start_web(machine, name, base)
            started.append(server)
            web.append(web_url)
        yield Nodes(app=app, web=web)
    finally:
        for process in reversed(started):
            process.stop()
        if app is not None:
            core.database(app).dispose()
        drop_schema(PG_URL, schema)
        keys = our_keys()
        if keys:
            client = redis.Redis.from_url(REDIS_URL)
            client.delete(*keys)
            client.close()


def from_address(browser: Browser, node: str, address: str) -> Browser:
    """The same browser (same cookie jar) on `node`, seen by it as coming from `address`."""
    browser.session.headers["X-Forwarded-For"] = address
    return Browser(node, browser.session)


def refused(response: requests.Response) -> bool:
    return response.status_code == 429 and "Too many attempts" in response.text


def test_the_signin_limit_per_address_counts_both_nodes(nodes):
    address = "10.61.0.1"
    seen = {node: 0 for node in nodes.web}
    for attempt in range(SIGNIN_ADDRESS_LIMIT):  # A, B, A, B: two on each node
        node = nodes.web[attempt % 2]
        answer = from_address(Browser(node), node, address).try_sign_in(f"nobody{attempt}")
        assert answer.status_code == 401, answer.text[:300]
        seen[node] += 1
    assert max(seen.values()) < SIGNIN_ADDRESS_LIMIT
    for node in nodes.web:  # the next attempt is refused on either node
        answer = from_address(Browser(node), node, address).try_sign_in("nobody-more")
        assert refused(answer), answer.text[:300]
    # per address: another address still gets to try
    other = from_address(Browser(nodes.web[0]), nodes.web[0], "10.61.0.2")
    assert other.try_sign_in("nobody-else").status_code == 401
    assert our_keys(), "no rate-limit counter under this run's prefix in Redis"


def test_the_signin_limit_per_user_counts_both_nodes(nodes):
    user_with_totp(nodes, "frank")
    for attempt in range(SIGNIN_USER_LIMIT):  # A, B, A: from a new address each time
        node = nodes.web[attempt % 2]
        answer = from_address(Browser(node), node, f"10.62.0.{attempt + 1}").try_sign_in("frank")
        assert answer.status_code == 302, answer.text[:300]
    node = nodes.web[SIGNIN_USER_LIMIT % 2]
    answer = from_address(Browser(node), node, "10.62.0.99").try_sign_in("frank")
    assert refused(answer), answer.text[:300]


def test_the_passcode_limit_per_user_counts_both_nodes(nodes):
    secret = user_with_totp(nodes, "grace")
    node_a, node_b = nodes.web
    browser = from_address(Browser(node_a), node_a, "10.63.0.1")
    browser.sign_in("grace")
    bad = wrong_code(secret)
    for attempt in range(PASSCODE_USER_LIMIT):  # A, B, A, one signed-in session throughout
        node = nodes.web[attempt % 2]
        answer = from_address(browser, node, f"10.63.1.{attempt + 1}").passcode(bad)
        assert answer.status_code == 401, answer.text[:300]
    # past the limit even the right code is refused, before it is checked
    last = from_address(browser, node_b, "10.63.1.99")
    assert refused(last.passcode(current_code(secret)))
    assert not last.signed_in_fully()
