"""After too many failed verifications an account's recovery is locked, on every node."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app
from app.core import audit, recovery_lock
from app.extensions import core
from app.models import RecoveryGuard
from tests.conftest import audit_rows, committed, make_user
from tests.helpers import recovery_steps as steps

P = steps.PREFIX
WRONG = {"dob": "1999-09-09"}


def fail(app, n: int, **answers) -> list:
    return [steps.walk(app.test_client(), **{**WRONG, **answers})[2] for _ in range(n)]


def test_five_failures_lock_recovery_for_the_hour(app, clock):
    make_user(app)
    answers = fail(app, 5)
    assert [r.status_code for r in answers] == [401, 401, 401, 401, 429]
    assert "Too many attempts" in answers[-1].get_data(as_text=True)
    [lock] = audit_rows(app, "recovery.lock")
    assert (lock.username, lock.result, lock.door) == ("alice", "locked", "recovery")
    # Now even the right answers are refused, at the first step that can tell.
    client = app.test_client()
    refused = steps.identify(client)
    assert refused.status_code == 429 and "locked for up to 60 minutes" in refused.get_data(
        as_text=True)
    assert client.get(f"{P}/options").headers["Location"] == f"{P}/"
    clock.advance(3599)
    assert steps.identify(app.test_client()).status_code == 429
    clock.advance(2)
    issued = steps.walk(app.test_client())[2]
    assert issued.status_code == 200 and steps.passcode_of(issued)
    assert len(audit_rows(app, "recovery.lock")) == 1


def test_a_lock_stops_a_flow_already_past_the_identity_step(app):
    make_user(app)
    client = app.test_client()
    steps.identify(client)
    steps.choose(client)
    fail(app, 5)
    response = steps.password(client)
    assert response.status_code == 429 and "recovery-passcode" not in response.get_data(
        as_text=True)


def test_unknown_ids_lock_exactly_like_real_ones(app):
    make_user(app)
    real = [(r.status_code, steps.masked(r)) for r in fail(app, 6)]
    unknown = [(r.status_code, steps.masked(r)) for r in fail(app, 6, username="nobody")]
    assert real == unknown
    # an unknown ID is audited as its keyed hash, never as typed (security issue point 16)
    keys = core.services(app).keys
    assert [r.username for r in audit_rows(app, "recovery.lock")] == [
        "alice", audit.unknown_username(keys, "nobody")]


def test_failures_inside_the_window_count_and_older_ones_do_not(app, clock):
    make_user(app)
    fail(app, 4)
    clock.advance(3601)
    assert [r.status_code for r in fail(app, 4)] == [401] * 4  # a new window began
    assert steps.walk(app.test_client())[2].status_code == 200
    assert audit_rows(app, "recovery.lock") == []


@pytest.mark.parametrize("settings_overrides", [{"recovery_max_failures": 2,
                                                 "recovery_lock_seconds": 120}])
def test_limit_and_duration_are_configurable(app, clock):
    make_user(app)
    assert [r.status_code for r in fail(app, 2)] == [401, 429]
    assert "up to 2 minutes" in steps.identify(app.test_client()).get_data(as_text=True)
    clock.advance(121)
    assert steps.walk(app.test_client())[2].status_code == 200


def test_the_counter_lives_in_the_database_shared_by_nodes(app, clock, tmp_path,
                                                           database_url):
    make_user(app)
    other = create_app({"instance_dir": tmp_path / "instance", "database_url": database_url,
                        "testing": True})
    other.config["UM2FA_CLOCK"] = clock
    try:
        nodes = [app, other]
        answers = [steps.walk(nodes[i % 2].test_client(), **WRONG)[2] for i in range(5)]
        assert [r.status_code for r in answers] == [401, 401, 401, 401, 429]
        for node in nodes:
            assert steps.identify(node.test_client()).status_code == 429
        with committed(app) as c:
            guard = c.db.scalar(select(RecoveryGuard))
            assert guard.locked_until is not None and b"alice" not in guard.subject
            assert recovery_lock.is_locked(c, "Alice")
    finally:
        core.database(other).dispose()
