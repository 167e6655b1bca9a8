"""Issue 17, point 5: "Automatically send me a push" ("My Settings & Devices"), through Flask's
test client. With the setting on, the portal's and the SSO door's 2FA prompt send the push to the
chosen companion-app device while the page is drawn (so it works without JavaScript), once per
prompt; the phone is the Python device of tests/peers/push_device.py on its own client."""

from __future__ import annotations

import re

import pytest

from app import migrate
from app.core import preferences, push, users
from app.web import settings as settings_web
from tests.conftest import (
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    make_user,
    post,
    sign_in,
)
from tests.helpers.portal import text
from tests.peers.push_device import PushDevice, enrol, send_push

HX = {"HX-Request": "true"}
NUMBER_RE = re.compile(r'Enter this number in the app:\s*<strong class="passcode-big">(\d{3})<')
PENDING = 'id="push-status"'
AUTOMATIC = "Sent automatically, as you chose in “My Settings &amp; Devices”."
CHECKBOX_RE = re.compile(r'<input type="checkbox" name="auto_push" value="yes"[^>]*>')


@pytest.fixture
def settings_overrides():
    return {"base_url": "http://localhost"}


def user_with_phone(app, clock, username: str = "alice") -> PushDevice:
    make_user(app, username)
    phone = PushDevice.with_client(app.test_client(), clock=clock)
    assert phone.activate(enrol(app, username)).status == 201
    return phone


def turn_on(app, username: str = "alice", on: bool = True) -> None:
    with committed(app) as c:
        preferences.set_auto_push(c, TEST_ORIGIN, users.get(c, username), on)


def pushes_started(app) -> list[str]:
    return [r.result for r in audit_rows(app, "push.start")]


def device_id(page: str) -> str:
    return re.search(r'name="device" value="(\d+)" checked', page).group(1)


def to_settings(client, phone: PushDevice) -> str:
    """A fresh second factor (a passcode from the phone), then "My Settings & Devices"."""
    page = text(client.get("/prompt?next=settings"))
    response = post(client, "/prompt", {"next": "settings", "device": device_id(page),
                                        "passcode": phone.passcode()},
                    token_from="/prompt?next=settings")
    assert response.headers["Location"] == "/settings", text(response)
    return text(client.get("/settings"))


# --- the setting -----------------------------------------------------------------------------

def test_the_setting_is_off_saved_with_csrf_and_audited(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    page = to_settings(client, phone)
    box = CHECKBOX_RE.search(page).group(0)
    assert "checked" not in box and "Automatically send me a push" in page
    assert 'hx-post="/settings/auto-push"' in page and 'name="csrf_token"' in page
    assert "to your default device, iOS mobile phone" in page

    # no CSRF token: refused, nothing saved
    assert client.post("/settings/auto-push", data={"auto_push": "yes"}).status_code == 400
    with committed(app) as c:
        assert preferences.auto_push(c, users.get(c, "alice").id) is False

    # without htmx: saved, back to the page with the confirmation
    response = post(client, "/settings/auto-push", {"auto_push": "yes"}, token_from="/settings")
    assert response.status_code == 302 and response.headers["Location"] == "/settings"
    page = text(client.get("/settings"))
    assert "checked" in CHECKBOX_RE.search(page).group(0)
    assert settings_web.AUTO_PUSH_ON in page

    # with htmx: the section alone, saying so; an unticked box turns it off
    response = post(client, "/settings/auto-push", {}, token_from="/settings", headers=HX)
    body = text(response)
    assert response.status_code == 200 and "<html" not in body
    assert body.startswith('<section id="auto-push"') and 'role="status"' in body
    assert settings_web.AUTO_PUSH_OFF in body and "checked" not in CHECKBOX_RE.search(body)[0]
    with committed(app) as c:
        assert preferences.auto_push(c, users.get(c, "alice").id) is False

    rows = audit_rows(app, "settings.auto_push")
    assert [(r.result, r.username, r.door, r.detail.split(";")[0]) for r in rows] == [
        ("ok", "alice", "portal", "on"), ("ok", "alice", "portal", "off")]


def test_the_setting_is_explained_without_a_device_that_can_push(app, client, clock):
    make_user(app)
    _, secret = add_totp_device(app, name="Authenticator")
    sign_in(client)
    post(client, "/prompt", {"next": "settings", "passcode": _code(secret, clock)},
         token_from="/prompt?next=settings")
    page = text(client.get("/settings"))
    assert CHECKBOX_RE.search(page) is None
    assert "once you have added a phone with the UM 2FA app" in page

    # a companion app that is not the default device: the box, and what to change
    phone = PushDevice.with_client(app.test_client(), clock=clock)
    assert phone.activate(enrol(app)).status == 201
    page = text(client.get("/settings"))
    assert CHECKBOX_RE.search(page) is not None
    assert "Your default device, Authenticator, cannot receive pushes" in page
    # htmx device changes redraw the section too (out of band): make the phone the default
    phone_id = re.findall(r'/settings/devices/(\d+)/options', page)[-1]
    answer = text(post(client, f"/settings/devices/{phone_id}/default", token_from="/settings",
                       headers=HX))
    assert '<section id="auto-push" aria-labelledby="auto-push-heading" aria-live="polite" ' \
           'hx-swap-oob="true">' in answer
    assert "to your default device, iOS mobile phone" in answer


def _code(secret: str, clock) -> str:
    from tests.conftest import totp_code

    return totp_code(secret, clock.now)


# --- the portal's prompt ---------------------------------------------------------------------

def test_the_portal_prompt_sends_the_push_as_it_opens_once(app, client, clock):
    phone = user_with_phone(app, clock)
    turn_on(app)
    sign_in(client)
    page = text(client.get("/prompt?next=done"))
    # the page arrives with the push pending: the status region, its poll and "Check now"
    assert PENDING in page and "Push sent to" in page and AUTOMATIC in page
    assert 'hx-get="/prompt/push?next=done"' in page and 'href="/prompt/push?next=done"' in page
    assert "Send me a Push" in page and "Enter a Passcode" in page  # both still offered
    number = NUMBER_RE.search(page).group(1)
    request = phone.wait_for_request(timeout=2)
    assert request["service"] == "2FA portal" and request["door"] == "portal"

    # a reload shows the same push, and sends none
    again = text(client.get("/prompt?next=done"))
    assert PENDING in again and NUMBER_RE.search(again).group(1) == number
    assert [r["id"] for r in phone.pending()] == [request["id"]]
    assert pushes_started(app) == ["ok"]

    phone.approve(request["id"], number)
    done = client.get("/prompt/push?next=done")  # "Check now", without htmx
    assert done.status_code == 302 and done.headers["Location"] == "/prompt/done"
    assert "You are all set!" in text(client.get("/prompt/done"))


def test_a_denied_push_is_not_sent_again_by_itself(app, client, clock):
    phone = user_with_phone(app, clock)
    turn_on(app)
    sign_in(client)
    client.get("/prompt?next=done")
    phone.deny(phone.wait_for_request(timeout=2)["id"])
    response = client.get("/prompt/push?next=done", headers=HX)
    assert push.MESSAGES["denied"] in text(response)
    for _ in range(2):  # reloads: no push, no status region; "Send me a Push" is there
        page = text(client.get("/prompt?next=done"))
        assert PENDING not in page and "Send me a Push" in page
    assert phone.pending() == [] and pushes_started(app) == ["ok"]
    clicked = post(client, "/prompt/push", {"next": "done"}, token_from="/prompt?next=done")
    assert clicked.status_code == 303 and pushes_started(app) == ["ok", "ok"]


def test_no_push_when_off_without_a_push_device_or_for_a_passcode(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    page = text(client.get("/prompt?next=done"))  # off (the default)
    assert PENDING not in page and "Send me a Push" in page
    turn_on(app)
    assert PENDING not in text(client.get("/prompt?next=done&method=passcode"))
    assert PENDING not in text(client.get("/prompt?next=add"))  # people who lost their phone
    totp_id, _ = add_totp_device(app, name="Authenticator")
    assert PENDING not in text(client.get(f"/prompt?next=done&device={totp_id}"))
    assert phone.pending() == [] and pushes_started(app) == []
    # bob has it on but no companion app
    make_user(app, "bob", password=PASSWORD)
    add_totp_device(app, "bob")
    turn_on(app, "bob")
    other = app.test_client()
    sign_in(other, "bob")
    assert PENDING not in text(other.get("/prompt?next=done"))
    assert pushes_started(app) == []


def test_no_push_while_one_clicked_is_pending(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    assert post(client, "/prompt/push", {"next": "done"},
                token_from="/prompt?next=done").status_code == 303
    turn_on(app)
    page = text(client.get("/prompt?next=done"))
    assert PENDING in page and AUTOMATIC not in page  # the clicked one, shown again
    assert len(phone.pending()) == 1 and pushes_started(app) == ["ok"]


def test_core_refusals_are_the_status_message(app, client, clock):
    """Three pushes pending already (TooManyPushes), then a fraud pause: the prompt says so in
    its status region, and offers both methods; no push is sent."""
    from datetime import timedelta

    phone = user_with_phone(app, clock)
    turn_on(app)
    for _ in range(3):
        send_push(app)
    sign_in(client)
    response = client.get("/prompt?next=done")
    page = text(response).replace("&#39;", "'")
    assert response.status_code == 200 and "Traceback" not in page
    assert re.search(r'id="push-status"[^>]*>\s*<p class="error"[^>]*>'
                     + re.escape(push.TOO_MANY),
                     page)
    assert "Send me a Push" in page and "Enter a Passcode" in page
    assert len(phone.pending()) == 3 and pushes_started(app) == ["ok"] * 3 + ["refused"]
    assert PENDING not in text(client.get("/prompt?next=done"))  # a reload: not tried again
    assert pushes_started(app) == ["ok"] * 3 + ["refused"]

    with committed(app) as c:
        users.get(c, "alice").push_blocked_until = c.now() + timedelta(minutes=20)
    blocked = app.test_client()
    sign_in(blocked)
    page = text(blocked.get("/prompt?next=done")).replace("&#39;", "'")
    assert push.BLOCKED in page and "Traceback" not in page
    assert pushes_started(app)[-1] == "blocked"


# --- the SSO prompt --------------------------------------------------------------------------

def test_the_sso_prompt_sends_the_push_as_it_opens(app, client, clock):
    from tests.helpers.sso import go, make_sp, saml_response
    from tests.peers.saml_sp import MFA

    phone = user_with_phone(app, clock)
    turn_on(app)
    sp = make_sp(client, app)
    url, request_id = sp.login()
    go(client, url)
    client.get("/sso/continue")
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"
    page = text(client.get("/sso/prompt"))
    assert PENDING in page and AUTOMATIC in page and "Signing in to Test SP" in page
    assert 'hx-get="/sso/prompt/push"' in page
    assert "Send me a Push" in page and "Enter a Passcode" in page
    number = NUMBER_RE.search(page).group(1)
    assert PENDING in text(client.get("/sso/prompt"))  # a reload: the same push
    request = phone.wait_for_request(timeout=2)
    assert request["service"] == "Test SP" and request["door"] == "sso"
    assert len(phone.pending()) == 1

    phone.approve(request["id"], number)
    done = client.get("/sso/prompt/push", headers=HX)
    assert done.headers["HX-Redirect"] == "/sso/continue"
    auth = sp.acs_post(saml_response(text(client.get("/sso/continue"))), request_id)
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]
    assert pushes_started(app) == ["ok"]


# --- a schema without the column ---------------------------------------------------------------

def test_a_schema_without_the_column_still_signs_in(app, client, clock, database_url):
    """A node newer than its database (0016 not run yet, or undone): the prompt reads the setting
    as off and the login goes on; saving it says it cannot, and nothing is audited."""
    phone = user_with_phone(app, clock)
    turn_on(app)
    from app.extensions import core

    core.database(app).dispose()
    migrate.downgrade(database_url, "0015")
    try:
        sign_in(client)
        page = text(client.get("/prompt?next=settings"))
        assert PENDING not in page and "Send me a Push" in page
        response = post(client, "/prompt", {"next": "settings", "device": device_id(page),
                                            "passcode": phone.passcode()},
                        token_from="/prompt?next=settings")
        assert response.headers["Location"] == "/settings"
        page = text(client.get("/settings"))
        assert "checked" not in CHECKBOX_RE.search(page).group(0)
        response = post(client, "/settings/auto-push", {"auto_push": "yes"},
                        token_from="/settings", headers=HX)
        assert response.status_code == 503
        assert settings_web.AUTO_PUSH_UNAVAILABLE in text(response)
        assert [r.detail.split(";")[0] for r in audit_rows(app, "settings.auto_push")] == ["on"]
    finally:
        core.database(app).dispose()
        migrate.upgrade(database_url)
