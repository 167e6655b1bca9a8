"""The multi-node tests' settings and users (tests/ops: multi-node, its rate limits and the live
upgrade); the nodes themselves are started by tests/peers/nodes.py."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from tests.conftest import add_totp_device, make_user
from tests.peers.live_radius import LiveRadius
from tests.peers.push_device import totp

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
LOCKOUT_THRESHOLD = 4
HIGH_LIMIT = "1000 per minute"
# The RADIUS nodes' safety-net poll for push answers is slowed to a minute, so a push wait that
# ends within seconds was woken by the fan-out over Redis (app/core/push_events.py).
FANOUT_POLL_SECONDS = 60
SETTINGS = {
    "redis_url": REDIS_URL,
    "lockout_threshold": str(LOCKOUT_THRESHOLD),
    "push_fanout_poll_seconds": str(FANOUT_POLL_SECONDS),
    **{f"ratelimit_{name}": HIGH_LIMIT for name in (
        "signin_address", "signin_user", "passcode_address", "passcode_user",
        "recovery_address", "recovery_user", "activate_address")},
}


@dataclass
class Cluster:
    app: object  # an app in the test's process on the same database, for set-up only
    web: list[str]  # base URLs of web nodes A and B
    radius: list[LiveRadius]  # RADIUS nodes 1 and 2


def user_with_totp(cluster: Cluster, username: str) -> str:
    make_user(cluster.app, username)
    return add_totp_device(cluster.app, username)[1]


def current_code(secret: str) -> str:
    """A code well inside its 30-second step, so every node sees the same one."""
    if time.time() % 30 > 25:
        time.sleep(30 - time.time() % 30 + 0.5)
    return totp(secret, time.time())


def wrong_code(secret: str) -> str:
    now = time.time()
    valid = {totp(secret, now + 30 * step) for step in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555", "666666")
                if c not in valid)
