"""The on-campus portal through Flask's test client: the guide's steps, one request at a time."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest
import segno

from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    csrf_token,
    issue_recovery,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.helpers.portal import enrol, step_up, text

HX = {"HX-Request": "true"}



def first_login_with_the_new_device(client, clock, continue_url, device_id, secret):
    """ "Continue to Login" after adding a device: its next code finishes the login (the
    activation used this time step)."""
    clock.advance(30)
    response = post(client, "/prompt", {"next": "done", "device": device_id,
                                        "passcode": totp_code(secret, clock.now)},
                    token_from=continue_url)
    assert response.headers["Location"] == "/prompt/done"
    assert "You are all set!" in text(client.get("/prompt/done"))

def test_guide_on_campus_add_a_device_with_a_recovery_passcode(app, client, clock):
    make_user(app)
    code = issue_recovery(app)
    assert sign_in(client).status_code == 302
    home = text(client.get("/"))
    assert "Add a new device" in home

    assert client.get("/devices/add").headers["Location"] == "/prompt?next=add"
    prompt_page = text(client.get("/prompt?next=add"))
    # No device yet: "Enter a Passcode" is the only way, so its field is there at once.
    assert 'name="passcode"' in prompt_page and ">Enter a Passcode</a>" not in prompt_page
    fragment = text(client.get("/prompt/passcode-form?next=add", headers=HX))
    assert 'name="passcode"' in fragment and "<html" not in fragment

    assert step_up(client, code).headers["Location"] == "/devices/add/type"
    type_page = text(client.get("/devices/add/type"))
    assert "Mobile phone" in type_page and "Tablet" in type_page
    platform_page = post(client, "/devices/add/type", {"device_type": "tablet"},
                         token_from="/devices/add/type")
    assert platform_page.status_code == 302
    page = text(client.get("/devices/add/platform"))
    assert "iOS" in page and "Android" in page and "Continue" in page
    post(client, "/devices/add/platform", {"platform": "ios"}, token_from="/devices/add/platform")
    assert "I have Duo Mobile installed" in text(client.get("/devices/add/app"))
    post(client, "/devices/add/app", token_from="/devices/add/app")

    page = text(client.get("/devices/add/activate"))
    secret = re.search(r'<code id="secret" class="secret">([A-Z2-7 ]+)</code>', page).group(1)
    secret = secret.replace(" ", "")
    qr_src = re.search(r'<img class="qr" src="([^"]+)"', page).group(1)
    expected_uri = (f"otpauth://totp/UM%202FA:alice?secret={secret}&issuer=UM%202FA"
                    "&algorithm=SHA1&digits=6&period=30")
    assert qr_src.replace("&amp;", "&") == segno.make(expected_uri, error="m").svg_data_uri(
        scale=5, border=2)
    parsed = urlparse(expected_uri)
    params = parse_qs(parsed.query)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert unquote(parsed.path) == "/UM 2FA:alice"
    assert params["algorithm"] == ["SHA1"] and params["digits"] == ["6"]
    assert params["period"] == ["30"] and params["issuer"] == ["UM 2FA"]
    assert pyotp.parse_uri(expected_uri).now() == pyotp.TOTP(secret).now()

    wrong = post(client, "/devices/add/activate", {"passcode": "000000"},
                 token_from="/devices/add/activate")
    assert wrong.status_code == 400 and "does not match" in text(wrong)
    post(client, "/devices/add/activate", {"passcode": totp_code(secret, clock.now)},
         token_from="/devices/add/activate")
    assert "Give your device a name" in text(client.get("/devices/add/name"))
    post(client, "/devices/add/name", {"name": "My iPad"}, token_from="/devices/add/name")
    done = text(client.get("/devices/add/done"))
    assert "Continue to Login" in done
    continue_url = re.search(r'href="(/prompt\?[^"]+)">Continue to Login', done).group(1)
    continue_url = continue_url.replace("&amp;", "&")
    login = text(client.get(continue_url))
    assert "My iPad" in login and "Enter a Passcode" in login and "checked" in login
    device_id = re.search(r'name="device" value="(\d+)" checked', login).group(1)

    # the activation used this time step; the next one is the person's next code
    first_login_with_the_new_device(client, clock, continue_url, device_id, secret)

    actions = [(r.action, r.result) for r in audit_rows(app)]
    for expected in [("sign_in", "ok"), ("factor", "ok"), ("device.enrol_start", "ok"),
                     ("device.activate", "fail"), ("device.activate", "ok"),
                     ("device.rename", "ok")]:
        assert expected in actions
    assert all(r.client_addr == "127.0.0.1" for r in audit_rows(app) if r.door == "portal")


def test_a_user_with_a_device_adds_another_with_that_devices_passcode(app, client, clock):
    make_user(app)
    _, secret = add_totp_device(app, name="Old phone")
    sign_in(client)
    assert step_up(client, totp_code(secret, clock.now)).headers["Location"] == \
        "/devices/add/type"
    done, _ = enrol(client, clock, "mobile", "android", "New phone")
    assert "New phone" in text(done)
    devices = text(client.get("/settings"))
    assert "Old phone" in devices and "New phone" in devices


def test_a_device_added_in_the_portal_marks_the_user_as_enrolled(app, client, clock):
    """Enrolled once, never new again (UM2FA_NEW_USER=allow: tests/sso/test_sso.py)."""
    from app.core import users
    from tests.conftest import committed

    make_user(app)
    with committed(app) as c:
        assert users.get(c, "alice").enrolled_at is None
    sign_in(client)
    step_up(client, issue_recovery(app))
    enrol(client, clock, "mobile", "android", "Phone")
    with committed(app) as c:
        assert users.get(c, "alice").enrolled_at is not None


def test_without_a_device_a_six_digit_code_cannot_start_adding(app, client):
    make_user(app)
    sign_in(client)
    response = step_up(client, "123456")
    assert response.status_code == 401 and "Incorrect passcode" in text(response)
    assert client.get("/devices/add/type").headers["Location"].startswith("/prompt")


def test_enrolment_steps_cannot_be_skipped(app, client, clock):
    make_user(app)
    sign_in(client)
    # no second factor yet: every step sends the user to the prompt
    for url in ("/devices/add/type", "/devices/add/activate", "/devices/add/name"):
        assert client.get(url).headers["Location"] == "/prompt?next=add"
    step_up(client, issue_recovery(app))
    # second factor done, but the steps come in order
    assert client.get("/devices/add/activate").headers["Location"] == "/devices/add/type"
    assert client.get("/devices/add/name").headers["Location"] == "/devices/add/type"
    bad = post(client, "/devices/add/type", {"device_type": "toaster"},
               token_from="/devices/add/type")
    assert bad.status_code == 400
    assert "Choose a Mobile phone, a Tablet or a Security key or passkey" in text(bad)
    post(client, "/devices/add/type", {"device_type": "mobile"}, token_from="/devices/add/type")
    bad = post(client, "/devices/add/platform", {"platform": "symbian"},
               token_from="/devices/add/platform")
    assert bad.status_code == 400 and "Choose iOS or Android." in text(bad)


def devices_of(app, username: str = "alice") -> dict[str, str]:
    """{device name: enrolled_via} for the user's active devices."""
    from app.core import users
    from tests.conftest import committed

    with committed(app) as c:
        return {d.name: d.enrolled_via for d in users.get(c, username).devices if d.active}


def test_a_recovery_passcode_does_not_open_my_settings_and_devices(app, client):
    """Someone with the password and a recovery passcode cannot reach the victim's devices:
    the passcode opens "Add a new device" only, whatever `next` the prompt was for."""
    make_user(app)
    victim_device, _ = add_totp_device(app, name="Victim's phone")
    code = issue_recovery(app)
    sign_in(client)
    response = step_up(client, code, next_step="settings")
    assert response.headers["Location"] == "/devices/add/type"
    page = text(client.get("/devices/add/type"))
    assert "What type of device are you adding?" in page
    assert "lets you add a new device, nothing else" in page
    assert client.get("/settings").headers["Location"] == "/prompt?next=settings"
    assert client.get(f"/settings/devices/{victim_device}/options").headers["Location"] == \
        "/prompt?next=settings"
    removed = post(client, f"/settings/devices/{victim_device}/remove", {},
                   token_from="/devices/add/type")
    assert removed.headers["Location"] == "/prompt?next=settings"
    assert "Victim's phone" in devices_of(app)
    # nor does it finish a login ("Continue to Login")
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"


def test_a_recovery_passcode_typed_for_continue_to_login_leads_to_add_a_new_device(app,
                                                                                  client):
    make_user(app)
    add_totp_device(app, name="Victim's phone")
    code = issue_recovery(app)
    sign_in(client)
    response = step_up(client, code, next_step="done")
    assert response.headers["Location"] == "/devices/add/type"
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"


def test_after_a_recovery_the_new_device_finishes_the_login_and_opens_settings(app, client,
                                                                             clock):
    """The guide's path: recovery passcode -> "Add a new device" -> "Continue to Login" with
    the NEW device's next code -> "My Settings & Devices" (where the old one can go)."""
    make_user(app)
    add_totp_device(app, name="Old phone")
    code = issue_recovery(app)
    sign_in(client)
    assert step_up(client, code).headers["Location"] == "/devices/add/type"
    done, secret = enrol(client, clock, "tablet", "ios", "My iPad")
    assert devices_of(app) == {"Old phone": "", "My iPad": "recovery"}
    continue_url = re.search(r'href="(/prompt\?[^"]+)">Continue to Login', text(done)).group(1)
    continue_url = continue_url.replace("&amp;", "&")
    device_id = re.search(r"device=(\d+)", continue_url).group(1)
    # the recovery passcode alone still opens neither the login nor the settings
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"
    assert client.get("/settings").headers["Location"] == "/prompt?next=settings"
    first_login_with_the_new_device(client, clock, continue_url, device_id, secret)
    page = text(client.get("/settings"))
    assert "Old phone" in page and "My iPad" in page


def test_the_recovery_passcode_works_once_in_the_portal(app, client):
    make_user(app)
    code = issue_recovery(app)
    sign_in(client)
    assert step_up(client, code).headers["Location"] == "/devices/add/type"
    other = app.test_client()
    sign_in(other)
    again = step_up(other, code)
    assert again.status_code == 401 and "already been used" in text(again)


def test_continue_to_login_rejects_wrong_code_with_message(app, client, clock):
    make_user(app)
    device_id, _ = add_totp_device(app)
    sign_in(client)
    response = post(client, "/prompt", {"next": "done", "device": str(device_id),
                                        "passcode": "000000"}, token_from="/prompt")
    assert response.status_code == 401
    page = text(response)
    assert "Incorrect passcode" in page and 'name="passcode"' in page
    bad = post(client, "/prompt", {"next": "done", "passcode": "12ab"}, token_from="/prompt")
    assert bad.status_code == 400 and "6 digits" in text(bad)
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"


def test_ten_failures_in_the_portal_lock_the_account(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sign_in(client)
    for _ in range(10):
        response = post(client, "/prompt", {"passcode": "000000"}, token_from="/prompt")
    assert "locked" in text(response)
    response = post(client, "/prompt", {"passcode": totp_code(secret, clock.now)},
                    token_from="/")
    assert response.status_code in (302, 401)
    # the session ends with the lock: the user is sent back to sign in
    assert "UMPASS ID" in text(client.get("/", follow_redirects=True))
    assert len(audit_rows(app, "lockout")) == 1


def test_the_portal_warns_two_attempts_before_the_lock(app, client):
    make_user(app)
    add_totp_device(app)
    sign_in(client)
    pages = [text(post(client, "/prompt", {"passcode": "000000"}, token_from="/prompt"))
             for _ in range(8)]
    assert not any("attempts left" in page for page in pages[:7])
    assert "2 attempts left before your account is temporarily locked" in pages[7]
    assert "Incorrect passcode" in pages[7]


def test_after_the_lock_period_the_portal_lets_the_user_in_again(app, client, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    sign_in(client)
    for _ in range(10):
        post(client, "/prompt", {"passcode": "000000"}, token_from="/prompt")
    assert sign_in(app.test_client()).status_code == 401  # locked: as a wrong password
    clock.advance(15 * 60 + 1)
    again = app.test_client()
    assert sign_in(again).status_code == 302
    response = post(again, "/prompt", {"passcode": totp_code(secret, clock.now)},
                    token_from="/prompt")
    assert response.status_code == 302


def _settings_client(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app, name="Phone")
    sign_in(client)
    assert client.get("/settings").headers["Location"] == "/prompt?next=settings"
    response = post(client, "/prompt", {"next": "settings", "device": str(device_id),
                                        "passcode": totp_code(secret, clock.now)},
                    token_from="/prompt?next=settings")
    assert response.headers["Location"] == "/settings"
    return device_id


def _hx_post(client, url, data=None):
    token = csrf_token(client, "/settings")
    return client.post(url, data=data or {}, headers={**HX, "X-CSRFToken": token})


def test_my_settings_and_devices_list_rename_default_remove(app, client, clock):
    device_id = _settings_client(app, client, clock)
    second_id, _ = add_totp_device(app, name="Tablet")
    page = text(client.get("/settings"))
    assert "My Settings &amp; Devices" in page and "Device Options" in page
    assert "Phone" in page and "Mobile phone" in page and "Added " in page
    assert "Last used" in page and "Default" in page

    options = text(client.get(f"/settings/devices/{second_id}/options", headers=HX))
    assert options.startswith('<section id="device-list"') and "Delete Device" in options
    assert "Make default" in options and "Rename" in options

    renamed = _hx_post(client, f"/settings/devices/{second_id}/rename", {"name": "  Work  iPad "})
    assert renamed.status_code == 200 and "Work iPad" in text(renamed)
    assert "<html" not in text(renamed)

    too_long = _hx_post(client, f"/settings/devices/{second_id}/rename", {"name": "x" * 41})
    assert too_long.status_code == 400 and "at most 40" in text(too_long)

    made = text(_hx_post(client, f"/settings/devices/{second_id}/default"))
    assert re.search(r"Work iPad</strong> <span class=\"badge\">Default", made)

    confirm = text(client.get(f"/settings/devices/{device_id}/remove", headers=HX))
    assert "Remove" in confirm and "last device" not in confirm
    removed = text(_hx_post(client, f"/settings/devices/{device_id}/remove"))
    assert "The device was removed" in removed and ">Phone<" not in removed

    confirm = text(client.get(f"/settings/devices/{second_id}/remove", headers=HX))
    assert "This is your last device" in confirm and "recovery passcode" in confirm
    removed = text(_hx_post(client, f"/settings/devices/{second_id}/remove",
                            {"confirm_last": "yes"}))
    assert "You have no devices" in removed
    assert [r.device for r in audit_rows(app, "device.remove")] == ["Phone", "Work iPad"]


def test_settings_work_without_javascript(app, client, clock):
    device_id = _settings_client(app, client, clock)
    page = text(client.get(f"/settings/devices/{device_id}/options"))
    assert "<html" in page and "Delete Device" in page
    response = post(client, f"/settings/devices/{device_id}/rename", {"name": "Renamed"},
                    token_from="/settings")
    assert response.headers["Location"] == "/settings"
    assert "Renamed to “Renamed”" in text(client.get("/settings"))
    response = post(client, f"/settings/devices/{device_id}/remove", {"confirm_last": "yes"},
                    token_from="/settings")
    assert "The device was removed" in text(client.get(response.headers["Location"]))


def test_removing_the_last_device_without_confirming_removes_nothing(app, client, clock):
    device_id = _settings_client(app, client, clock)
    confirm = text(client.get(f"/settings/devices/{device_id}/remove", headers=HX))
    # the dialog says what follows, and asks for an explicit confirmation
    assert "This is your last device" in confirm
    assert "9-digit recovery passcode" in confirm and "add a new device" in confirm
    assert 'name="confirm_last"' in confirm
    for send in (lambda: _hx_post(client, f"/settings/devices/{device_id}/remove"),
                 lambda: post(client, f"/settings/devices/{device_id}/remove",
                              token_from="/settings")):
        refused = send()
        assert refused.status_code == 400
        assert "Tick the box" in text(refused) and "This is your last device" in text(refused)
    assert ">Phone<" in text(client.get("/settings"))
    assert audit_rows(app, "device.remove") == []
    removed = _hx_post(client, f"/settings/devices/{device_id}/remove", {"confirm_last": "yes"})
    assert "You have no devices" in text(removed)
    assert [r.device for r in audit_rows(app, "device.remove")] == ["Phone"]


def test_another_users_device_cannot_be_touched(app, client, clock):
    _settings_client(app, client, clock)
    make_user(app, "bob")
    bob_device, _ = add_totp_device(app, "bob", name="Bob phone")
    for url in (f"/settings/devices/{bob_device}/remove", f"/settings/devices/{bob_device}/rename",
                f"/settings/devices/{bob_device}/default"):
        response = _hx_post(client, url, {"name": "mine now"})
        assert response.status_code in (400, 404)
    assert "was not found" in text(_hx_post(client, f"/settings/devices/{bob_device}/remove"))
    assert audit_rows(app, "device.remove") == []


def test_stale_second_factor_sends_htmx_to_the_prompt(app, client, clock, monkeypatch):
    device_id = _settings_client(app, client, clock)
    with client.session_transaction() as session:
        session["mfa_at"] = 0
    response = client.get(f"/settings/devices/{device_id}/options", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/prompt?next=settings"


def test_sign_in_messages_do_not_tell_which_part_was_wrong(app, client):
    make_user(app, "alice")
    make_user(app, "carol")
    from tests.conftest import committed

    with committed(app) as c:
        from app.core import users

        users.lock(c, __import__("tests.conftest").conftest.TEST_ORIGIN, "carol")
    answers = []
    for username, password in [("alice", "wrong-password"), ("nobody", PASSWORD),
                               ("carol", PASSWORD)]:
        response = sign_in(client, username, password)
        body = re.sub(r'value="[^"]*"', 'value=""', text(response))
        body = re.sub(r'"X-CSRFToken": "[^"]*"', "", body)
        answers.append((response.status_code, body.replace(username, "USER")))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401 and "Incorrect UMPASS ID or password" in answers[0][1]
    with client.session_transaction() as session:
        assert "uid" not in session


@pytest.mark.parametrize("settings_overrides", [{"lockout_threshold": 2}])
def test_a_locked_out_user_gets_the_same_sign_in_message(app, client):
    make_user(app)
    add_totp_device(app)
    sign_in(client)
    for _ in range(2):
        post(client, "/prompt", {"passcode": "000000"}, token_from="/prompt")
    other = app.test_client()
    response = sign_in(other)
    assert response.status_code == 401 and "Incorrect UMPASS ID or password" in text(response)


def test_bad_sign_in_input_is_re_rendered_with_the_username_kept(app, client):
    response = post(client, "/sign-in", {"username": "alice", "password": ""})
    assert response.status_code == 400
    page = text(response)
    assert "Enter your password." in page and 'value="alice"' in page
