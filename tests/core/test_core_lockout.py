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
