"""The recovery portal, steps 1-5, through the Flask test client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.models import RecoveryPasscode
from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    committed,
    make_user,
)
from tests.helpers import recovery_steps as steps

P = steps.PREFIX


def issued_count(app, user_id: int | None = None) -> int:
    with committed(app) as c:
        query = select(func.count()).select_from(RecoveryPasscode)
        if user_id is not None:
            query = query.where(RecoveryPasscode.user_id == user_id)
        return c.db.scalar(query)


def test_role_page_lists_the_configured_roles(client):
    page = client.get(f"{P}/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Recovery portal" in body
    assert f'href="{P}/identify/student"' in body and ">Student<" in body
    assert f'href="{P}/identify/staff"' in body and ">Staff<" in body
    form = client.get(f"{P}/identify/staff").get_data(as_text=True)
    for label in ("UMPASS ID", "Date of birth", "Last 4 characters of ID/Passport Number",
                  "Verify"):
        assert label in form


@pytest.mark.parametrize("settings_overrides", [{"recovery_roles": "staff, alumni"}])
def test_roles_come_from_configuration(client):
    body = client.get(f"{P}/").get_data(as_text=True)
    assert ">Staff<" in body and ">Alumni<" in body and "Student" not in body
    assert client.get(f"{P}/identify/student").status_code == 404
    assert client.get(f"{P}/identify/alumni").status_code == 200


def test_steps_one_to_five_issue_a_passcode(app, client, clock):
    user_id = make_user(app)
    step2, step3, step4 = steps.walk(client)
    assert (step2.status_code, step2.headers["Location"]) == (303, f"{P}/options")
    assert (step3.status_code, step3.headers["Location"]) == (303, f"{P}/password")
    assert step4.status_code == 200
    code = steps.passcode_of(step4)
    body = step4.get_data(as_text=True)
    assert len(code) == 9 and code.isdigit()
    assert f">{code[:3]} {code[3:6]} {code[6:]}<" in body  # grouped for reading
    assert 'data-copy="recovery-passcode"' in body and ">Copy<" in body
    expires = datetime.fromtimestamp(clock.now, UTC) + timedelta(seconds=3600)
    here = expires.astimezone(ZoneInfo("Asia/Macau"))  # local time, the zone named once
    assert f'<time datetime="{here.isoformat(timespec="seconds")}">' in body
    assert "Macao time (GMT+08:00), in 60 minutes" in body and " UTC" not in body
    assert "works <strong>once</strong>" in body
    assert "Add a new device" in body and "Enter a Passcode" in body and "Settings" in body
    assert 'href="/">Go to the 2FA portal' in body
    assert "<script>" not in body and "style=" not in body
    assert issued_count(app, user_id) == 1
    [issue] = audit_rows(app, "recovery.issue")
    assert (issue.username, issue.door, issue.client_addr) == ("alice", "recovery", "127.0.0.1")
    assert code not in " ".join(f"{r.action} {r.detail}" for r in audit_rows(app))
    [verify] = audit_rows(app, "recovery.verify")
    assert verify.result == "ok"


def test_the_passcode_adds_a_device_once(app, clock):
    make_user(app)
    code = steps.passcode_of(steps.walk(app.test_client())[2])
    first = steps.use_in_portal(app.test_client(), code)
    assert (first.status_code, first.headers["Location"]) == (302, "/devices/add/type")
    again = steps.use_in_portal(app.test_client(), code)
    assert again.status_code == 401 and "already been used" in again.get_data(as_text=True)


def test_a_person_with_devices_can_recover_too(app, client):
    make_user(app)
    add_totp_device(app)
    code = steps.passcode_of(steps.walk(client)[2])
    response = steps.use_in_portal(app.test_client(), code)
    assert response.headers["Location"] == "/devices/add/type"


def test_answers_are_normalised(app, client):
    make_user(app)
    response = steps.walk(client, username="  Alice ", id_last4=" 123a ", dob=" 2001-02-03")[2]
    assert response.status_code == 200 and steps.passcode_of(response)


def test_a_new_passcode_revokes_the_previous_one(app):
    make_user(app)
    old = steps.passcode_of(steps.walk(app.test_client())[2])
    new = steps.passcode_of(steps.walk(app.test_client())[2])
    refused = steps.use_in_portal(app.test_client(), old)
    assert refused.status_code == 401
    assert steps.use_in_portal(app.test_client(), new).status_code == 302
    assert len(audit_rows(app, "recovery.issue")) == 2


@pytest.mark.parametrize("settings_overrides", [{"recovery_ttl_seconds": 600}])
def test_the_expiry_comes_from_settings(app, client, clock):
    make_user(app)
    response = steps.walk(client)[2]
    assert "in 10 minutes" in response.get_data(as_text=True)
    code = steps.passcode_of(response)
    clock.advance(601)
    late = steps.use_in_portal(app.test_client(), code)
    assert late.status_code == 401 and "expired" in late.get_data(as_text=True)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("dob", "03/02/2001", "YYYY-MM-DD"),
    ("dob", "2001-02-30", "not a date"),
    ("id_last4", "12", "last 4 characters"),
    ("id_last4", "12-A", "last 4 characters"),
    ("username", "", "Enter your UMPASS ID"),
])
def test_malformed_answers_get_a_clear_error_and_keep_the_input(app, client, field, value,
                                                                message):
    make_user(app)
    answers = {**steps.ALICE, field: value}
    response = steps.identify(client, **answers)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and message in body
    if field != "username":
        assert 'value="alice"' in body
    assert client.get(f"{P}/options").headers["Location"] == f"{P}/"
    assert audit_rows(app, "recovery.identify") == []


def test_steps_cannot_be_skipped_by_url(app, client):
    make_user(app)
    for url in (f"{P}/options", f"{P}/password"):
        response = client.get(url)
        assert (response.status_code, response.headers["Location"]) == (303, f"{P}/")
    assert steps.password(client).headers["Location"] == f"{P}/"
    assert steps.choose(client).headers["Location"] == f"{P}/"
    # After step 2, step 4 still waits for step 3.
    steps.identify(client)
    assert client.get(f"{P}/password").headers["Location"] == f"{P}/options"
    assert steps.password(client).headers["Location"] == f"{P}/options"
    assert issued_count(app) == 0 and audit_rows(app, "recovery.verify") == []
    # ... and the flow is still usable in order.
    steps.choose(client)
    assert steps.passcode_of(steps.password(client))


def test_steps_cannot_be_replayed(app, client):
    make_user(app)
    steps.walk(client)
    replay = steps.password(client)
    assert (replay.status_code, replay.headers["Location"]) == (303, f"{P}/")
    assert steps.choose(client).headers["Location"] == f"{P}/"
    assert issued_count(app) == 1


def test_a_copied_cookie_cannot_replay_the_password_step(app, client):
    make_user(app)
    steps.identify(client)
    steps.choose(client)
    cookie = client.get_cookie("um2fa_session")
    assert steps.passcode_of(steps.password(client))
    thief = app.test_client()
    thief.set_cookie("um2fa_session", cookie.value, domain=cookie.domain)
    replay = steps.password(thief)
    assert replay.status_code == 303 and issued_count(app) == 1


def test_the_flow_is_bound_to_the_browser(app, client):
    make_user(app)
    steps.identify(client)
    steps.choose(client)
    other = app.test_client()
    assert steps.password(other).headers["Location"] == f"{P}/"
    assert issued_count(app) == 0
    assert steps.passcode_of(steps.password(client))


def test_the_umpass_id_cannot_change_between_steps(app, client):
    make_user(app)
    mallory_id = make_user(app, "mallory", password="mallory-password",
                           dob="1990-01-01", id_last4="999M")
    # Mallory proves who she is, then types Alice's ID and password at the password step.
    steps.identify(client, username="mallory", dob="1990-01-01", id_last4="999M")
    steps.choose(client)
    response = steps.password(client, extra={"username": "alice"})
    assert response.status_code == 401
    # With her own password the passcode is hers, whatever ID the form claims.
    steps.identify(client, username="mallory", dob="1990-01-01", id_last4="999M")
    steps.choose(client)
    response = steps.password(client, password="mallory-password",
                              extra={"username": "alice"})
    assert steps.passcode_of(response)
    assert issued_count(app, mallory_id) == 1 and issued_count(app) == 1


def test_a_new_identity_step_replaces_the_flow(app, client):
    make_user(app)
    steps.identify(client, username="alice", dob="1999-09-09")  # wrong
    steps.identify(client)  # right, same browser
    steps.choose(client)
    assert steps.passcode_of(steps.password(client))


def test_the_flow_expires(app, client, clock):
    make_user(app)
    steps.identify(client)
    steps.choose(client)
    clock.advance(601)
    response = client.get(f"{P}/password")
    assert response.headers["Location"] == f"{P}/"
    assert "Please start again" in client.get(f"{P}/").get_data(as_text=True)
    assert steps.password(client).headers["Location"] == f"{P}/"
    assert issued_count(app) == 0


def test_the_option_must_be_selected(app, client):
    make_user(app)
    steps.identify(client)
    response = steps.choose(client, option="")
    assert response.status_code == 400 and "Get 2FA Passcode" in response.get_data(as_text=True)
    assert client.get(f"{P}/password").headers["Location"] == f"{P}/options"


def test_an_empty_password_does_not_spend_the_flow(app, client):
    make_user(app)
    steps.identify(client)
    steps.choose(client)
    empty = steps.password(client, password="")
    assert empty.status_code == 400 and "Enter your UMPASS password" in empty.get_data(
        as_text=True)
    assert steps.passcode_of(steps.password(client))


def test_forms_need_the_csrf_token(app, client):
    make_user(app)
    response = client.post(f"{P}/identify/student", data={**steps.ALICE})
    assert response.status_code == 400 and audit_rows(app, "recovery.identify") == []


@pytest.mark.parametrize("settings_overrides", [{"campus_networks": "10.0.0.0/8"}])
def test_reachable_from_off_campus(app, client):
    make_user(app)
    assert client.get("/").status_code == 403  # the 2FA portal is campus-only ...
    response = steps.walk(client)[2]  # ... the recovery portal is not
    assert response.status_code == 200 and steps.passcode_of(response)


def test_passwords_and_answers_stay_out_of_the_audit(app, client):
    make_user(app)
    steps.walk(client)
    steps.walk(app.test_client(), dob="1999-12-31", password_="guess-" + PASSWORD)
    text = " ".join(f"{r.action} {r.username} {r.device} {r.detail}" for r in audit_rows(app))
    for secret in (PASSWORD, "2001-02-03", "1999-12-31", "123A"):
        assert secret not in text
