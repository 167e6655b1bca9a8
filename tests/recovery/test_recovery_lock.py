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


def test_five_failures_lock_recovery_from_that_address_for_15_minutes(app, clock):
    make_user(app)
    answers = fail(app, 5)
    assert [r.status_code for r in answers] == [401, 401, 401, 401, 429]
    assert "Too many attempts" in answers[-1].get_data(as_text=True)
    [lock] = audit_rows(app, "recovery.lock")
    assert (lock.username, lock.result, lock.door) == ("alice", "locked", "recovery")
    assert "from this address" in lock.detail
    # Now even the right answers are refused, at the first step that can tell.
    client = app.test_client()
    refused = steps.identify(client)
    assert refused.status_code == 429 and "locked for up to 15 minutes" in refused.get_data(
        as_text=True)
    assert client.get(f"{P}/options").headers["Location"] == f"{P}/"
    clock.advance(899)
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
            guards = c.db.scalars(select(RecoveryGuard)).all()
            assert [g.locked_until is not None for g in guards].count(True) == 1
            assert not any(b"alice" in g.subject for g in guards)
            assert recovery_lock.is_locked(c, "Alice", "127.0.0.1")
    finally:
        core.database(other).dispose()


ELSEWHERE = {"environ_base": {"REMOTE_ADDR": "198.51.100.7"}}


def test_failures_from_one_address_do_not_lock_the_real_person_out_from_another(app):
    make_user(app)
    assert fail(app, 5)[-1].status_code == 429  # the attacker, from 127.0.0.1
    assert steps.identify(app.test_client()).status_code == 429
    issued = steps.walk(app.test_client(), http=ELSEWHERE)[2]  # the real person, elsewhere
    assert issued.status_code == 200 and steps.passcode_of(issued)


@pytest.mark.parametrize("settings_overrides", [{"recovery_max_failures_per_id": 8}])
def test_a_per_id_ceiling_stops_an_attack_from_many_addresses(app):
    make_user(app)
    for n in range(8):
        http = {"environ_base": {"REMOTE_ADDR": f"203.0.113.{n + 1}"}}
        answer = steps.walk(app.test_client(), http=http, **WRONG)[2]
        assert answer.status_code == (429 if n == 7 else 401)
    assert steps.identify(app.test_client(), **ELSEWHERE).status_code == 429
    details = [r.detail for r in audit_rows(app, "recovery.lock")]
    assert len(details) == 1 and "8 failed verifications from all addresses" in details[0]


def test_a_second_recovery_lock_lasts_longer(app, clock):
    make_user(app)
    fail(app, 5)
    clock.advance(15 * 60 + 1)
    assert fail(app, 5)[-1].status_code == 429
    assert "up to 30 minutes" in steps.identify(app.test_client()).get_data(as_text=True)
    clock.advance(30 * 60 - 1)
    assert steps.identify(app.test_client()).status_code == 429
    clock.advance(2)
    assert steps.walk(app.test_client())[2].status_code == 200
