"""Recovery passcodes in core: nine random digits, single use, expiry, a keyed hash at rest, audited
without the code. (The recovery portal's own core: test_recovery_portal_core.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core import passcodes, recovery, users
from app.core.factors import Verdict
from app.models import RecoveryPasscode
from tests.conftest import TEST_ORIGIN, audit_rows, committed, issue_recovery, make_user


def _verify(app, code, username="alice"):
    with committed(app) as c:
        return passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, username), code)


def test_nine_random_digits(app):
    make_user(app)
    codes = {issue_recovery(app) for _ in range(20)}
    assert all(len(c) == 9 and c.isdigit() for c in codes)
    assert len(codes) == 20


def test_single_use(app):
    make_user(app)
    code = issue_recovery(app)
    assert _verify(app, code).ok
    assert _verify(app, code).verdict is Verdict.REPLAY


def test_grouped_with_spaces_or_dashes_is_accepted(app):
    make_user(app)
    code = issue_recovery(app)
    assert _verify(app, f"{code[:3]} {code[3:6]}-{code[6:]}").ok


def test_expires_after_an_hour_by_default(app, clock):
    make_user(app)
    code = issue_recovery(app)
    clock.advance(3601)
    outcome = _verify(app, code)
    assert outcome.verdict is Verdict.EXPIRED and "expired" in outcome.message


@pytest.mark.parametrize("settings_overrides", [{"recovery_ttl_seconds": 60}])
def test_expiry_is_configurable(app, clock):
    make_user(app)
    code = issue_recovery(app)
    clock.advance(59)
    assert _verify(app, code).ok
    code = issue_recovery(app)
    clock.advance(61)
    assert _verify(app, code).verdict is Verdict.EXPIRED


def test_a_new_one_revokes_the_old(app):
    make_user(app)
    old = issue_recovery(app)
    new = issue_recovery(app)
    assert _verify(app, old).verdict is Verdict.WRONG
    assert _verify(app, new).ok


def test_only_a_keyed_hash_is_stored(app):
    make_user(app)
    code = issue_recovery(app)
    with committed(app) as c:
        rows = c.db.scalars(select(RecoveryPasscode)).all()
        assert len(rows) == 1
        stored = rows[0].code_hash
        assert code.encode() not in stored and len(stored) == 32
        # keyed: the plain SHA-256 of the code is not what is stored
        import hashlib

        assert hashlib.sha256(code.encode()).digest() != stored


def test_another_users_passcode_does_not_work(app):
    make_user(app, "alice")
    make_user(app, "bob")
    code = issue_recovery(app, "bob")
    assert _verify(app, code, "alice").verdict is Verdict.WRONG


def test_issue_and_use_are_audited_without_the_code(app):
    make_user(app)
    code = issue_recovery(app)
    _verify(app, code)
    issued = audit_rows(app, "recovery.issue")
    used = [r for r in audit_rows(app, "factor") if r.detail == "recovery"]
    assert len(issued) == 1 and issued[0].username == "alice"
    assert len(used) == 1 and used[0].result == "ok"
    for row in audit_rows(app):
        assert code not in f"{row.detail} {row.device} {row.username}"


def test_core_issue_returns_expiry(app, clock):
    make_user(app)
    with committed(app) as c:
        _code, row = recovery.issue(c, TEST_ORIGIN, users.get(c, "alice"))
        assert (row.expires_at - row.created_at).total_seconds() == 3600
