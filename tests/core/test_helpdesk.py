"""The help desk's reads (app/core/support.py) and actions (app/core/helpdesk.py), as the
console and the API both call them."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.core import helpdesk, support
from app.models import Notice
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    issue_recovery,
    make_user,
)
from tests.helpers.helpdesk import lock_out

DESK = replace(TEST_ORIGIN, door="admin", actor="dora", actor_role="helpdesk")
BOSS = replace(TEST_ORIGIN, door="admin", actor="carol", actor_role="admin")


def test_find_users_by_id_name_or_email_ids_first(app, ctx):
    make_user(app, "alice", name="Alice Chan", email="achan@example.edu")
    make_user(app, "chan", name="Tai Man Chan", email="tm@example.edu")
    make_user(app, "bob", name="Bob Wong", email="bob@example.edu")
    found, more = support.find_users(ctx, "chan")
    assert [u.username for u in found] == ["chan", "alice"] and not more
    assert [u.username for u in support.find_users(ctx, "WONG")[0]] == ["bob"]
    assert support.find_users(ctx, "%")[0] == [] and support.find_users(ctx, " ")[0] == []


def test_find_users_pages(app, ctx):
    for n in range(support.PAGE_SIZE + 3):
        make_user(app, f"user{n:02d}")
    first, more = support.find_users(ctx, "user")
    second, more_after = support.find_users(ctx, "user", page=2)
    assert len(first) == support.PAGE_SIZE and more and len(second) == 3 and not more_after


def test_the_user_view_shows_the_lockout_passcodes_and_devices(app, ctx, clock):
    make_user(app)
    add_totp_device(app)
    issue_recovery(app)
    issue_recovery(app)  # revokes the first
    lock_out(app)
    view = support.user_view(ctx, "alice")
    assert view.state == "locked" and view.locked_until is not None
    assert [status for _, status in view.passcodes] == ["unused", "revoked"]
    assert [d.name for d in view.devices] == ["Phone"] and view.sessions == 0
    with pytest.raises(support.NotFound):
        support.user_view(ctx, "nobody")


def test_the_timeline_filters_and_pages(app, ctx):
    make_user(app)
    lock_out(app)
    rows, _ = support.timeline(ctx, "alice", result="locked")
    assert [r.action for r in rows] == ["lockout"]
    page, cursor = support.timeline(ctx, "alice", limit=4)
    rest, end = support.timeline(ctx, "alice", before=cursor, limit=100)
    assert len(page) == 4 and cursor is not None and end is None
    assert [r.id for r in page + rest] == sorted((r.id for r in page + rest), reverse=True)


def test_unlock_takes_a_reason_audits_the_actor_and_tells_the_person(app, clock):
    make_user(app)
    lock_out(app)
    with committed(app) as c, pytest.raises(helpdesk.HelpdeskError, match="reason"):
        helpdesk.unlock(c, DESK, "alice", "   ")
    with committed(app) as c:
        helpdesk.unlock(c, DESK, "alice", "called from her office, ID seen")
        assert support.user_view(c, "alice").state == "active"
        told = c.db.scalars(select(Notice.event)).all()
    row = audit_rows(app, "user.unlock")[-1]
    assert row.actor == "dora" and row.door == "admin"
    assert "reason: called from her office, ID seen" in row.detail
    assert "account_unlocked" in told


def test_the_help_desk_removes_a_lost_last_phone(app):
    make_user(app)
    device_id, _ = add_totp_device(app)
    with committed(app) as c:
        helpdesk.remove_device(c, DESK, "alice", device_id, "phone lost")
        assert support.user_view(c, "alice").devices == []
    with committed(app) as c, pytest.raises(support.NotFound):
        helpdesk.remove_device(c, DESK, "alice", device_id, "again")
    assert audit_rows(app, "device.remove")[-1].actor == "dora"


def test_a_recovery_passcode_needs_the_id_check_and_is_never_recorded(app):
    make_user(app)
    with committed(app) as c, pytest.raises(helpdesk.HelpdeskError, match="identity"):
        helpdesk.issue_recovery(c, DESK, "alice", "lost phone", id_checked=False)
    with committed(app) as c:
        code, _ = helpdesk.issue_recovery(c, DESK, "alice", "lost phone", id_checked=True)
    assert re.fullmatch(r"\d{9}", code)
    row = audit_rows(app, "recovery.issue")[-1]
    assert row.actor == "dora" and "identity checked" in row.detail
    assert all(code not in (r.detail + r.device) for r in audit_rows(app))


def test_disable_and_enable(app):
    make_user(app)
    with committed(app) as c:
        helpdesk.set_disabled(c, BOSS, "alice", True, "left the university")
        assert support.user_view(c, "alice").state == "disabled"
        helpdesk.set_disabled(c, BOSS, "alice", False, "came back")
        assert support.user_view(c, "alice").state == "active"
    assert [r.action for r in audit_rows(app)][-2:] == ["user.lock", "user.enable"]


def test_the_help_desk_cannot_enable_a_disabled_account_by_unlocking_it(app):
    make_user(app)
    with committed(app) as c:
        helpdesk.set_disabled(c, BOSS, "alice", True, "left the university")
    with committed(app) as c, pytest.raises(helpdesk.HelpdeskError, match="administrator"):
        helpdesk.unlock(c, DESK, "alice", "she asked")
    with committed(app) as c:
        assert support.user_view(c, "alice").state == "disabled"
        helpdesk.unlock(c, BOSS, "alice", "back from leave")
        assert support.user_view(c, "alice").state == "active"


def test_the_help_desk_does_not_act_on_an_administrators_account(app):
    from app.core import admins

    make_user(app)
    device_id, _ = add_totp_device(app)
    with committed(app) as c:
        admins.add(c, TEST_ORIGIN, "alice", admins.ADMIN)
    for act in (lambda c: helpdesk.issue_recovery(c, DESK, "alice", "r", id_checked=True),
                lambda c: helpdesk.remove_device(c, DESK, "alice", device_id, "r"),
                lambda c: helpdesk.end_sessions(c, DESK, "alice", "r"),
                lambda c: helpdesk.unlock(c, DESK, "alice", "r")):
        with committed(app) as c, pytest.raises(helpdesk.HelpdeskError, match="administrator"):
            act(c)
    with committed(app) as c:  # an administrator may
        assert helpdesk.issue_recovery(c, BOSS, "alice", "r", id_checked=True)
