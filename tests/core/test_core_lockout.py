from __future__ import annotations

import pytest

from app.core import passcodes, users
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    make_user,
    totp_code,
)


def _verify(app, code):
    with committed(app) as c:
        return passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, "alice"), code)


def test_ten_consecutive_failures_lock_the_user(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    for _ in range(9):
        assert not _verify(app, "000000").locked
    tenth = _verify(app, "000000")
    assert tenth.locked and "locked" in tenth.message
    # even the right code is refused now
    assert not _verify(app, totp_code(secret, clock.now)).ok
    locks = audit_rows(app, "lockout")
    assert len(locks) == 1 and locks[0].username == "alice" and locks[0].result == "locked"


def test_success_resets_the_count(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    for _ in range(9):
        _verify(app, "000000")
    assert _verify(app, totp_code(secret, clock.now)).ok
    for _ in range(9):
        assert not _verify(app, "000000").locked
    assert _verify(app, "000000").locked


def test_unlock_lifts_the_lockout(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    for _ in range(10):
        _verify(app, "000000")
    with committed(app) as c:
        users.unlock(c, TEST_ORIGIN, "alice")
    assert _verify(app, totp_code(secret, clock.now)).ok
    assert [r.result for r in audit_rows(app, "user.unlock")] == ["ok"]


@pytest.mark.parametrize("settings_overrides", [{"lockout_threshold": 3}])
def test_threshold_is_configurable(app):
    make_user(app)
    add_totp_device(app)
    assert not _verify(app, "000000").locked
    assert not _verify(app, "000000").locked
    assert _verify(app, "000000").locked


def test_recovery_passcode_failures_count_too(app):
    make_user(app)
    for _ in range(10):
        _verify(app, "123456789")
    assert _verify(app, "123456789").locked


def _lock(app) -> None:
    for _ in range(10):
        _verify(app, "000000")


def test_after_the_lock_period_the_user_can_sign_in_again(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    _lock(app)
    clock.advance(15 * 60 - 1)
    still = _verify(app, totp_code(secret, clock.now))
    assert not still.ok and still.locked
    clock.advance(2)
    assert _verify(app, totp_code(secret, clock.now)).ok


def test_a_second_lock_lasts_longer(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    _lock(app)
    clock.advance(15 * 60 + 1)
    # the lock lifted: a new count of ten, then a lock twice as long
    for _ in range(9):
        assert not _verify(app, "000000").locked
    assert _verify(app, "000000").locked
    clock.advance(30 * 60 - 1)
    assert _verify(app, totp_code(secret, clock.now)).locked
    clock.advance(2)
    assert _verify(app, totp_code(secret, clock.now)).ok
    details = [r.detail for r in audit_rows(app, "lockout")]
    assert "locked for 900 s" in details[0] and "locked for 1800 s" in details[1]


def test_a_good_code_forgets_the_backoff(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    _lock(app)
    clock.advance(15 * 60 + 1)
    assert _verify(app, totp_code(secret, clock.now)).ok
    _lock(app)
    clock.advance(15 * 60 + 1)
    assert _verify(app, totp_code(secret, clock.now)).ok


def test_an_administrators_lock_does_not_expire(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    with committed(app) as c:
        users.lock(c, TEST_ORIGIN, "alice")
    clock.advance(365 * 86400)
    refused = _verify(app, totp_code(secret, clock.now))
    assert not refused.ok and refused.locked
    with committed(app) as c:
        users.unlock(c, TEST_ORIGIN, "alice")
    assert _verify(app, totp_code(secret, clock.now)).ok


@pytest.mark.parametrize("settings_overrides", [{"lockout_threshold": 2, "lockout_seconds": 60,
                                                 "lockout_backoff_factor": 3,
                                                 "lockout_max_seconds": 300}])
def test_lock_length_backoff_and_cap_are_configurable(app, clock):
    make_user(app)
    add_totp_device(app)
    for expected in (60, 180, 300, 300):
        _verify(app, "000000")
        assert _verify(app, "000000").locked
        clock.advance(expected - 1)
        assert _verify(app, "000000").locked  # still locked (not counted)
        clock.advance(2)
    assert [r.detail.split("; ")[1] for r in audit_rows(app, "lockout")] == [
        f"locked for {s} s (lock {n} in a row)" for n, s in enumerate((60, 180, 300, 300), 1)]


def test_the_eighth_bad_code_warns_two_attempts_left(app):
    make_user(app)
    add_totp_device(app)
    for _ in range(7):
        assert _verify(app, "000000").message == "Incorrect passcode. Please try again."
    eighth, ninth = _verify(app, "000000"), _verify(app, "000000")
    assert "2 attempts left" in eighth.message and not eighth.locked
    assert "1 attempt left" in ninth.message
    tenth = _verify(app, "000000")
    assert tenth.locked and "attempt" not in tenth.message.split("locked")[0]
