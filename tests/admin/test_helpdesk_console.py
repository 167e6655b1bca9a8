"""The help desk's pages in the console (issue 15): find a person, their page and timeline, and
each action with its reason, the actor in the audit and the person told."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.core import admins, passcodes, support, users
from app.models import Notice
from app.web.admin import users as console_users
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    csrf_token,
    make_user,
)
from tests.helpers.console import signed_in_console


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


@pytest.fixture
def desk(app, clock):
    """A signed-in help-desk person's browser."""
    return signed_in_console(app, clock, admins.HELPDESK)


def lock_out(app, username: str = "alice") -> None:
    with committed(app) as c:
        for _ in range(c.settings.lockout_threshold):
            passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, username), "000000")


def told(app, username: str = "alice") -> list[str]:
    with committed(app) as c:
        user_id = users.get(c, username).id
        return list(c.db.scalars(select(Notice.event).where(Notice.user_id == user_id)
                                 .order_by(Notice.id)))


def act(client, url: str, data: dict):
    token = csrf_token(client, "/admin/users/alice")
    return client.post(url, data={"csrf_token": token, **data})


# --- finding a person ---------------------------------------------------------------------


def test_the_search_answers_htmx_with_the_results_and_a_browser_with_the_page(app, desk):
    make_user(app, "alice", name="Alice Chan", email="achan@example.edu")
    make_user(app, "bob", name="Bob Wong")
    partial = desk.get("/admin/users?q=chan", headers={"HX-Request": "true"})
    text = partial.get_data(as_text=True)
    assert partial.status_code == 200 and "<html" not in text
    assert 'href="/admin/users/alice"' in text and "bob" not in text
    page = desk.get("/admin/users?q=chan").get_data(as_text=True)
    assert "<html" in page and 'href="/admin/users/alice"' in page
    assert 'hx-get="/admin/users"' in page and "delay:" in page
    # the console's home has the search too
    assert 'hx-get="/admin/users"' in desk.get("/admin/").get_data(as_text=True)


def test_the_search_pages(app, desk):
    for n in range(support.PAGE_SIZE + 2):
        make_user(app, f"user{n:02d}")
    first = desk.get("/admin/users?q=user").get_data(as_text=True)
    assert "user00" in first and "user21" not in first
    assert 'href="/admin/users?q=user&amp;page=2"' in first
    second = desk.get("/admin/users?q=user&page=2").get_data(as_text=True)
    assert "user21" in second and "user00" not in second and "Previous" in second
    assert desk.get("/admin/users?q=user&page=x").status_code == 200


def test_the_persons_page_shows_their_state_devices_and_timeline(app, desk):
    make_user(app, "alice", name="Alice Chan")
    add_totp_device(app, "alice", name="Lost phone")
    lock_out(app)
    page = desk.get("/admin/users/alice")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Locked out until" in text and "Macao time (GMT+08:00)" in text
    assert "Lost phone" in text and "lockout" in text
    assert 'href="/admin/users/alice/timeline"' in text
    # a help-desk person sees the actions of their role only
    assert "Unlock" in text and "Issue a recovery passcode" in text and "Disable" not in text
    assert desk.get("/admin/users/nobody").status_code == 404


def test_the_timeline_filters_and_pages(app, desk, monkeypatch):
    make_user(app)
    lock_out(app)
    locked = desk.get("/admin/users/alice/timeline?result=locked").get_data(as_text=True)
    assert "<td>lockout</td>" in locked and "<td>factor</td>" not in locked
    monkeypatch.setattr(console_users, "TIMELINE_PAGE", 4)
    first = desk.get("/admin/users/alice/timeline").get_data(as_text=True)
    cursor = re.search(r'before=([0-9-]+)"', first)
    assert cursor and "Older" in first
    older = desk.get(f"/admin/users/alice/timeline?before={cursor.group(1)}")
    assert older.status_code == 200
    assert desk.get("/admin/users/nobody/timeline").status_code == 404


@pytest.mark.parametrize("query, message", [
    ("door=nowhere", "not a door"), ("result=maybe", "not an outcome"),
    ("door=a%00", "NUL"), ("before=1-9999999999", "cursor is not valid"),
])
def test_a_bad_timeline_filter_is_a_400_page_with_a_message(app, desk, query, message):
    make_user(app)
    page = desk.get(f"/admin/users/alice/timeline?{query}")
    assert page.status_code == 400 and message in page.get_data(as_text=True)


def test_the_timeline_offers_every_door_and_outcome_the_audit_records(app, desk):
    """The filters come from app/core/audit.py, where the doors and outcomes are listed."""
    from app.core import audit

    make_user(app)
    text = desk.get("/admin/users/alice/timeline").get_data(as_text=True)
    for value in (*audit.DOORS, *audit.RESULTS):
        assert f'<option value="{value}"' in text, value
    for door in ("scheduler", "cli", "notice", "device-api"):
        assert desk.get(f"/admin/users/alice/timeline?door={door}").status_code == 200


# --- the actions --------------------------------------------------------------------------


def test_unlock_with_a_reason_is_audited_with_the_actor_and_told(app, desk):
    make_user(app)
    lock_out(app)
    response = act(desk, "/admin/users/alice/unlock", {"reason": "called, ID seen"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users/alice"
    assert "alice is unlocked" in desk.get("/admin/users/alice").get_data(as_text=True)
    row = audit_rows(app, "user.unlock")[-1]
    assert row.actor == "hd" and row.door == "admin" and "reason: called, ID seen" in row.detail
    assert told(app)[-1] == "account_unlocked"


def test_an_action_without_a_reason_is_refused_and_keeps_what_was_typed(app, desk):
    make_user(app)
    lock_out(app)
    response = act(desk, "/admin/users/alice/unlock", {"reason": "  "})
    assert response.status_code == 400 and "Give a reason" in response.get_data(as_text=True)
    assert audit_rows(app, "user.unlock") == []
    long = "x" * 201
    response = act(desk, "/admin/users/alice/unlock", {"reason": long})
    assert response.status_code == 400 and f'value="{long}"' in response.get_data(as_text=True)


def test_removing_a_device_needs_the_confirmation_and_a_reason(app, desk):
    make_user(app)
    device_id, _ = add_totp_device(app, name="Lost phone")
    url = f"/admin/users/alice/devices/{device_id}/remove"
    response = act(desk, url, {"reason": "lost it"})
    assert response.status_code == 400
    assert 'value="lost it"' in response.get_data(as_text=True)
    assert act(desk, url, {"reason": "lost it", "confirm": "yes"}).status_code == 302
    row = audit_rows(app, "device.remove")[-1]
    assert row.actor == "hd" and "reason: lost it" in row.detail and row.device == "Lost phone"
    assert told(app)[-1] == "device_removed"
    assert act(desk, url, {"reason": "again", "confirm": "yes"}).status_code == 404


def test_ending_all_sessions(app, desk):
    make_user(app)
    response = act(desk, "/admin/users/alice/sessions/end", {"reason": "shared PC"})
    assert response.status_code == 302
    assert audit_rows(app, "sessions.end")[-1].actor == "hd"
    assert told(app)[-1] == "sessions_ended"


def test_a_recovery_passcode_needs_the_id_check_and_is_shown_once(app, desk):
    make_user(app)
    refused = act(desk, "/admin/users/alice/recovery", {"reason": "lost phone"})
    assert refused.status_code == 400 and "identity document" in refused.get_data(as_text=True)
    assert 'value="lost phone"' in refused.get_data(as_text=True)
    shown = act(desk, "/admin/users/alice/recovery",
                {"reason": "lost phone", "id_checked": "yes"})
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    code = re.search(r'id="recovery-passcode">(\d{9})<', shown.get_data(as_text=True)).group(1)
    assert code not in desk.get("/admin/users/alice").get_data(as_text=True)
    row = audit_rows(app, "recovery.issue")[-1]
    assert row.actor == "hd" and "identity checked" in row.detail
    assert all(code not in r.detail for r in audit_rows(app))
    assert told(app)[-1] == "recovery_issued"
    assert act(desk, "/admin/users/nobody/recovery",
               {"reason": "x", "id_checked": "yes"}).status_code == 404


def test_only_an_administrator_disables_and_enables(app, clock, desk):
    make_user(app)
    assert act(desk, "/admin/users/alice/disable", {"reason": "left"}).status_code == 403
    boss = signed_in_console(app, clock, admins.ADMIN)
    assert "Disable" in boss.get("/admin/users/alice").get_data(as_text=True)
    assert act(boss, "/admin/users/alice/disable", {"reason": "left"}).status_code == 302
    page = boss.get("/admin/users/alice").get_data(as_text=True)
    assert "Disabled (by an administrator" in page and "Enable" in page
    assert act(boss, "/admin/users/alice/enable", {"reason": "back"}).status_code == 302
    assert [r.actor for r in audit_rows(app) if r.action in ("user.lock", "user.enable")] == [
        "boss", "boss"]
    assert told(app)[-2:] == ["account_disabled", "account_enabled"]
