"""Rate limits on the recovery portal, per client address and per UMPASS ID (flask-limiter),
in memory and, where UM2FA_TEST_REDIS_URL is set, in Redis as several nodes would share them."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import audit_rows, make_user
from tests.helpers import recovery_steps as steps

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
STORAGES = ["memory"] + (["redis"] if REDIS_URL else [])


@pytest.fixture(params=STORAGES)
def settings_overrides(request) -> dict:
    # Behind a trusted proxy, so each test run can come from addresses of its own (Redis
    # counters outlive a test run).
    return {"redis_url": REDIS_URL if request.param == "redis" else "",
            "trusted_proxies": "127.0.0.1/32",
            "ratelimit_recovery_address": "4 per minute",
            "ratelimit_recovery_user": "2 per hour",
            "ratelimit_recovery_user_ceiling": "4 per hour"}


def address() -> dict:
    return {"headers": {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}."
                                           f"{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}}


def test_limit_per_client_address(app, client):
    make_user(app)
    here, elsewhere = address(), address()
    answers = [steps.identify(client, username=f"u{uuid.uuid4().hex[:8]}", **here)
               for _ in range(4)]
    assert [r.status_code for r in answers] == [303] * 4
    # The password step shares the address's budget: the 5th POST is refused.
    steps.choose(client, **here)
    limited = steps.password(client, **here)
    assert limited.status_code == 429 and "Too many attempts" in limited.get_data(as_text=True)
    assert steps.identify(client, username=f"u{uuid.uuid4().hex[:8]}",
                          **here).status_code == 429
    # Another address is not affected.
    assert steps.identify(app.test_client(), username=f"u{uuid.uuid4().hex[:8]}",
                          **elsewhere).status_code == 303


def test_limit_per_umpass_id_and_address(app):
    name = f"carol-{uuid.uuid4().hex[:8]}"  # existing or not, the same limit applies
    here = address()
    answers = [steps.identify(app.test_client(), username=name, **here) for _ in range(3)]
    assert [r.status_code for r in answers] == [303, 303, 429]
    # The same ID in other letter case is the same account.
    assert steps.identify(app.test_client(), username=name.upper(), **here).status_code == 429
    other = steps.identify(app.test_client(), username=f"dave-{uuid.uuid4().hex[:8]}",
                           **address())
    assert other.status_code == 303
    # The same ID from another address is not limited by this address's attempts ...
    assert steps.identify(app.test_client(), username=name, **address()).status_code == 303
    # ... up to the per-ID ceiling (4 per hour), from any address.
    assert steps.identify(app.test_client(), username=name, **address()).status_code == 303
    assert steps.identify(app.test_client(), username=name, **address()).status_code == 429
    # A rate-limited request never reached core.
    assert len(audit_rows(app, "recovery.identify")) == 5


def test_the_audit_records_the_forwarded_client_address(app, client):
    name = f"erin-{uuid.uuid4().hex[:8]}"
    make_user(app, name)
    here = address()
    assert steps.walk(client, http=here, username=name)[2].status_code == 200
    [issue] = audit_rows(app, "recovery.issue")
    assert issue.client_addr == here["headers"]["X-Forwarded-For"]
