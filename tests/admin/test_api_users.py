"""The admin API for people (issue 15): finding them, their state and timeline, and the help
desk's actions, each audited with the token as the actor and the reason, the person told."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from app.core import api_tokens, notices, remembered, support, users
from app.models import Device, Notice
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    issue_recovery,
    make_user,
    sign_in,
)
from tests.helpers.console import api_token
from tests.helpers.helpdesk import lock_out

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
REASON = {"reason": "ticket 4711, called from her office"}


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8", "remember_days": 30}


@pytest.fixture
def desk(app):
    """A helpdesk token's Authorization header."""
    return {"Authorization": f"Bearer {api_token(app, 'idm', 'helpdesk')}"}


@pytest.fixture
def boss(app):
    """An admin token's Authorization header."""
    return {"Authorization": f"Bearer {api_token(app, 'ops', 'admin')}"}


def told(app, username: str = "alice") -> list[str]:
    with committed(app) as c:
        user = users.get(c, username)
        return list(c.db.scalars(select(Notice.event).where(Notice.user_id == user.id)
                                 .order_by(Notice.id)))


def last_audit(app, action: str):
    return audit_rows(app, action)[-1]


def state_of(app, username: str = "alice") -> str:
    with committed(app) as c:
        return support.user_view(c, username).state


# --- finding people ---------------------------------------------------------------------------

def test_find_users_by_id_name_or_email(app, client, desk):
    make_user(app, "alice", name="Alice Chan", email="achan@example.edu")
    make_user(app, "chan", name="Tai Man Chan", email="tm@example.edu")
    make_user(app, "bob", name="Bob Wong")
    lock_out(app, "alice")
    answer = client.get("/api/v1/users?q=chan", headers=desk)
    assert answer.status_code == 200
    body = answer.get_json()
    assert [u["username"] for u in body["users"]] == ["chan", "alice"]
    alice = body["users"][1]
    assert alice["name"] == "Alice Chan" and alice["email"] == "achan@example.edu"
    assert alice["state"] == "locked" and ISO_UTC.fullmatch(alice["locked_until"])
    assert body["users"][0]["state"] == "active" and body["users"][0]["locked_until"] is None
    assert body["page"] == 1 and body["has_more"] is False and body["next_page"] is None


def test_find_users_pages(app, client, desk):
    for n in range(support.PAGE_SIZE + 3):
        make_user(app, f"user{n:02d}")
    first = client.get("/api/v1/users?q=user", headers=desk).get_json()
    assert len(first["users"]) == support.PAGE_SIZE
    assert first["has_more"] is True and first["next_page"] == 2
    second = client.get("/api/v1/users?q=user&page=2", headers=desk).get_json()
    assert len(second["users"]) == 3 and second["page"] == 2
    assert second["has_more"] is False and second["next_page"] is None


@pytest.mark.parametrize("query", ["", "?q=", "?q=%20%20", "?q=a&page=0", "?q=a&page=x",
                                   "?q=a&page=-1", "?q=a&page=" + "9" * 30, "?q=a&page=1.5"])
def test_find_users_needs_text_and_a_sane_page(app, client, desk, query):
    answer = client.get(f"/api/v1/users{query}", headers=desk)
    assert answer.status_code == 400 and answer.get_json()["error"]


# --- a person ---------------------------------------------------------------------------------

def test_a_person_in_full_never_with_a_passcode(app, client, desk, clock):
    make_user(app)
    device_id, _ = add_totp_device(app)
    first = issue_recovery(app)
    second = issue_recovery(app)
    lock_out(app)
    with committed(app) as c:
        remembered.remember(c, TEST_ORIGIN, users.get(c, "alice"), "Firefox on Linux")
    answer = client.get("/api/v1/users/alice", headers=desk)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["username"] == "alice" and body["state"] == "locked"
    assert ISO_UTC.fullmatch(body["locked_until"])
    [device] = body["devices"]
    assert device["id"] == device_id and device["name"] == "Phone"
    assert {"kind", "type", "platform", "added", "last_used", "enrolled_via",
            "default", "active"} <= set(device)
    assert ISO_UTC.fullmatch(device["added"])
    assert [p["status"] for p in body["recovery_passcodes"]] == ["unused", "revoked"]
    assert all(ISO_UTC.fullmatch(p["issued"]) and ISO_UTC.fullmatch(p["expires"])
               for p in body["recovery_passcodes"])
    [browser] = body["remembered_browsers"]
    assert browser["label"] == "Firefox on Linux" and ISO_UTC.fullmatch(browser["expires"])
    assert body["sessions"] == 0
    text = answer.get_data(as_text=True)
    assert first not in text and second not in text


def test_no_such_person_is_a_json_404(app, client, desk):
    for path in ("/api/v1/users/nobody", "/api/v1/users/nobody/timeline"):
        answer = client.get(path, headers=desk)
        assert answer.status_code == 404 and answer.get_json() == {
            "error": "no such user: nobody"}


# --- the timeline -----------------------------------------------------------------------------

def test_the_timeline_filters_and_pages(app, client, desk):
    make_user(app)
    lock_out(app)
    locked = client.get("/api/v1/users/alice/timeline?result=locked", headers=desk).get_json()
    [record] = locked["records"]
    assert record["action"] == "lockout" and record["result"] == "locked"
    assert set(record) == {"id", "at", "door", "action", "result", "device", "address",
                           "actor", "detail"}
    assert ISO_UTC.fullmatch(record["at"]) and locked["next"] is None
    page = client.get("/api/v1/users/alice/timeline?limit=4", headers=desk).get_json()
    assert len(page["records"]) == 4 and page["next"] is not None
    rest = client.get(f"/api/v1/users/alice/timeline?before={page['next']}&limit=200",
                      headers=desk).get_json()
    ids = [r["id"] for r in page["records"] + rest["records"]]
    assert rest["next"] is None
    assert ids == [r.id for r in reversed(audit_rows(app)) if r.username == "alice"]
    doors = client.get("/api/v1/users/alice/timeline?door=scheduler", headers=desk).get_json()
    assert doors == {"records": [], "next": None}


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "before=0",
                                   "before=x", "before=" + "9" * 30, "before=1-9999999999",
                                   "door=nowhere", "result=maybe"])
def test_the_timeline_refuses_bad_parameters(app, client, desk, query):
    make_user(app)
    answer = client.get(f"/api/v1/users/alice/timeline?{query}", headers=desk)
    assert answer.status_code == 400 and answer.get_json()["error"]


# --- the help desk's actions ------------------------------------------------------------------

def test_unlock(app, client, desk):
    make_user(app)
    lock_out(app)
    answer = client.post("/api/v1/users/alice/unlock", json=REASON, headers=desk)
    assert answer.status_code == 200
    assert answer.get_json()["username"] == "alice" and answer.get_json()["state"] == "active"
    assert state_of(app) == "active"
    row = last_audit(app, "user.unlock")
    assert row.actor == "api:idm" and row.door == "api"
    assert "reason: ticket 4711, called from her office" in row.detail
    assert told(app)[-1] == notices.ACCOUNT_UNLOCKED


def test_remove_a_device(app, client, desk):
    make_user(app)
    device_id, _ = add_totp_device(app)
    answer = client.post(f"/api/v1/users/alice/devices/{device_id}/remove", json=REASON,
                         headers=desk)
    assert answer.status_code == 200 and answer.get_json()["username"] == "alice"
    with committed(app) as c:
        assert c.db.get(Device, device_id) is None
    row = last_audit(app, "device.remove")
    assert row.actor == "api:idm" and "reason: ticket 4711" in row.detail
    assert told(app)[-1] == notices.DEVICE_REMOVED
    again = client.post(f"/api/v1/users/alice/devices/{device_id}/remove", json=REASON,
                        headers=desk)
    assert again.status_code == 404 and again.get_json()["error"]


def test_another_persons_device_cannot_be_removed_through_someone_else(app, client, desk):
    make_user(app)
    make_user(app, "bob")
    bobs, _ = add_totp_device(app, "bob")
    answer = client.post(f"/api/v1/users/alice/devices/{bobs}/remove", json=REASON,
                         headers=desk)
    assert answer.status_code == 404 and answer.get_json()["error"]
    with committed(app) as c:
        assert c.db.get(Device, bobs) is not None


@pytest.mark.parametrize("device", ["99999", "9" * 30, "x", "-1"])
def test_removing_a_device_that_is_not_there_is_a_json_404(app, client, desk, device):
    make_user(app)
    answer = client.post(f"/api/v1/users/alice/devices/{device}/remove", json=REASON,
                         headers=desk)
    assert answer.status_code == 404 and answer.get_json()["error"]


def test_end_sessions(app, client, desk):
    make_user(app)
    browser = app.test_client()
    sign_in(browser)
    with committed(app) as c:
        remembered.remember(c, TEST_ORIGIN, users.get(c, "alice"), "Firefox")
    before = client.get("/api/v1/users/alice", headers=desk).get_json()
    assert before["sessions"] == 1 and len(before["remembered_browsers"]) == 1
    answer = client.post("/api/v1/users/alice/sessions/end", json=REASON, headers=desk)
    assert answer.status_code == 200
    after = client.get("/api/v1/users/alice", headers=desk).get_json()
    assert after["sessions"] == 0 and after["remembered_browsers"] == []
    row = last_audit(app, "sessions.end")
    assert row.actor == "api:idm" and "reason: ticket 4711" in row.detail
    assert told(app)[-1] == notices.SESSIONS_ENDED


def test_a_recovery_passcode_is_shown_once_and_never_recorded(app, client, desk, caplog):
    caplog.set_level(logging.DEBUG)
    make_user(app)
    answer = client.post("/api/v1/users/alice/recovery-passcodes",
                         json={**REASON, "identity_checked": True}, headers=desk)
    assert answer.status_code == 201
    body = answer.get_json()
    assert re.fullmatch(r"\d{9}", body["passcode"]) and ISO_UTC.fullmatch(body["expires"])
    row = last_audit(app, "recovery.issue")
    assert row.actor == "api:idm" and "identity checked" in row.detail
    assert "reason: ticket 4711" in row.detail
    assert all(body["passcode"] not in f"{r.detail} {r.device} {r.actor}"
               for r in audit_rows(app))
    assert body["passcode"] not in caplog.text
    assert told(app)[-1] == notices.RECOVERY_ISSUED
    view = client.get("/api/v1/users/alice", headers=desk)
    assert view.get_json()["recovery_passcodes"][0]["status"] == "unused"
    assert view.get_json()["recovery_passcodes"][0]["expires"] == body["expires"]
    assert body["passcode"] not in view.get_data(as_text=True)


@pytest.mark.parametrize("checked", [None, False, "true", 1])
def test_a_recovery_passcode_needs_the_identity_check(app, client, desk, checked):
    make_user(app)
    sent = {**REASON} if checked is None else {**REASON, "identity_checked": checked}
    answer = client.post("/api/v1/users/alice/recovery-passcodes", json=sent, headers=desk)
    assert answer.status_code == 400 and "identity" in answer.get_json()["error"]
    assert audit_rows(app, "recovery.issue") == []


def test_disable_and_enable(app, client, boss):
    make_user(app)
    browser = app.test_client()
    sign_in(browser)
    answer = client.post("/api/v1/users/alice/disable", json=REASON, headers=boss)
    assert answer.status_code == 200 and answer.get_json()["state"] == "disabled"
    assert state_of(app) == "disabled"
    assert client.get("/api/v1/users/alice", headers=boss).get_json()["sessions"] == 0
    row = last_audit(app, "user.lock")
    assert row.actor == "api:ops" and "reason: ticket 4711" in row.detail
    assert told(app)[-1] == notices.ACCOUNT_DISABLED
    answer = client.post("/api/v1/users/alice/enable", json={"reason": "back"}, headers=boss)
    assert answer.status_code == 200 and answer.get_json()["state"] == "active"
    assert last_audit(app, "user.enable").actor == "api:ops"
    assert told(app)[-1] == notices.ACCOUNT_ENABLED


@pytest.mark.parametrize("action", ["disable", "enable"])
def test_a_helpdesk_token_may_not_disable_or_enable(app, client, desk, action):
    make_user(app)
    answer = client.post(f"/api/v1/users/alice/{action}", json=REASON, headers=desk)
    assert answer.status_code == 403 and "helpdesk" in answer.get_json()["error"]
    assert state_of(app) == "active"
    assert audit_rows(app, "user.lock") == [] and audit_rows(app, "user.enable") == []


# --- every endpoint: 401, 400, 404 --------------------------------------------------------------

ACTIONS = ["/api/v1/users/alice/unlock", "/api/v1/users/alice/devices/DEVICE/remove",
           "/api/v1/users/alice/sessions/end", "/api/v1/users/alice/recovery-passcodes",
           "/api/v1/users/alice/disable", "/api/v1/users/alice/enable"]
READS = ["/api/v1/users?q=alice", "/api/v1/users/alice", "/api/v1/users/alice/timeline"]


def _with_device(app, path: str) -> str:
    device_id, _ = add_totp_device(app)
    return path.replace("DEVICE", str(device_id))


@pytest.mark.parametrize("path", READS + ACTIONS)
def test_every_endpoint_needs_a_valid_token(app, client, path):
    make_user(app)
    path = _with_device(app, path)
    method = client.get if path in READS else client.post
    token = api_token(app, "gone", "admin")
    with committed(app) as c:
        api_tokens.remove(c, TEST_ORIGIN, "gone")
    body = {**REASON, "identity_checked": True}
    for headers in ({}, {"Authorization": f"Bearer {token}"},
                    {"Authorization": "Bearer um2fa_made-up"}, {"Authorization": token}):
        answer = method(path, json=body, headers=headers)
        assert answer.status_code == 401 and answer.get_json()["error"], headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert state_of(app) == "active" and audit_rows(app, "recovery.issue") == []


@pytest.mark.parametrize("path", ACTIONS)
@pytest.mark.parametrize("sent", [
    {"json": {}}, {"json": {"reason": "   "}}, {"json": {"reason": 42}},
    {"json": {"reason": "x" * 201}}, {"json": ["reason"]}, {"json": "reason"},
    {"data": "reason=lost"}, {"data": "{not json", "content_type": "application/json"},
    {"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"},
    {"data": '{"reason": "' + "x" * 20000 + '"}', "content_type": "application/json"},
    {}])
def test_every_action_refuses_a_bad_body(app, client, boss, path, sent):
    make_user(app)
    path = _with_device(app, path)
    if "identity_checked" not in str(sent) and isinstance(sent.get("json"), dict):
        sent = {"json": {**sent["json"], "identity_checked": True}}
    answer = client.post(path, headers=boss, **sent)
    assert answer.status_code == 400 and answer.get_json()["error"], answer.get_data()
    assert state_of(app) == "active"
    with committed(app) as c:
        assert len(support.user_view(c, "alice").devices) == 1


@pytest.mark.parametrize("path", ACTIONS)
def test_every_action_on_nobody_is_a_404(app, client, boss, path):
    answer = client.post(path.replace("alice", "nobody").replace("DEVICE", "1"),
                         json={**REASON, "identity_checked": True}, headers=boss)
    assert answer.status_code == 404 and answer.get_json()["error"]


# --- the API's own errors -------------------------------------------------------------------

def test_unknown_urls_and_wrong_methods_answer_json(app, client, desk):
    missing = client.get("/api/v1/nothing-here", headers=desk)
    assert missing.status_code == 404 and missing.is_json and missing.get_json()["error"]
    assert client.get("/api/nothing").get_json()["error"]
    wrong = client.delete("/api/v1/users/alice", headers=desk)
    assert wrong.status_code == 405 and wrong.get_json()["error"]
    assert "GET" in wrong.headers["Allow"]
    also_wrong = client.get("/api/v1/users/alice/unlock", headers=desk)
    assert also_wrong.status_code == 405 and also_wrong.is_json
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "text/html" in page.content_type


def test_the_openapi_document_says_a_recovery_passcode_is_made(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    issue = document["paths"]["/users/{username}/recovery-passcodes"]["post"]
    assert {"201", "400", "401", "403", "404"} <= set(issue["responses"])
    assert issue["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "reason", "identity_checked"]


def test_a_nul_character_is_refused_before_it_reaches_the_database(app, client, desk):
    """PostgreSQL refuses a NUL in a string parameter: app/web/input_guard.py answers 400 for
    one anywhere in the request, before any view."""
    make_user(app)
    for path in ("/api/v1/users/al%00ice", "/api/v1/users/al%00ice/timeline",
                 "/api/v1/users?q=al%00", "/api/v1/users/alice/timeline?door=a%00",
                 "/api/v1/users/alice/timeline?result=a%00"):
        answer = client.get(path, headers=desk)
        assert answer.status_code == 400 and "NUL" in answer.get_json()["error"], path
    for body in ({"reason": "a\u0000b"}, {"reason": "ok", "x\u0000": 1}):
        answer = client.post("/api/v1/users/alice/unlock", json=body, headers=desk)
        assert answer.status_code == 400 and "NUL" in answer.get_json()["error"], body
    answer = client.post("/api/v1/users/al%00ice/unlock", json=REASON, headers=desk)
    assert answer.status_code == 400 and "NUL" in answer.get_json()["error"]
