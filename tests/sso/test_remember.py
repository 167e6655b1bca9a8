""" "Remember me" backed by a server record (security issue, point 8): it ends at sign-out,
"Forget" in "My Settings & Devices" ends it, ForceAuthn ignores it, and AuthnInstant tells the
SP when the person really authenticated."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import PASSWORD, post, totp_code
from tests.helpers.sso import IDP, go, saml_response
from tests.peers.saml_sp import MFA
from tests.sso.test_sso import signed_in_at_the_prompt, text

COOKIE = "um2fa_remember"
FIREFOX = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) "
                         "Gecko/20100101 Firefox/133.0"}


@pytest.fixture
def settings_overrides():
    return {"base_url": IDP, "remember_days": 7}


def remembered_at_the_prompt(app, client, clock):
    """alice passes the prompt with "Remember me": (the SP, the cookie's token)."""
    sp, device_id, secret = signed_in_at_the_prompt(app, client)
    response = post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now),
                                            "device": str(device_id), "remember": "yes"},
                    token_from="/sso/prompt", headers=FIREFOX)
    assert response.headers["Location"] == "/sso/continue"
    token = client.get_cookie(COOKIE).value
    return sp, token, (device_id, secret)


def password_step_in_a_new_browser(app, sp, token: str, *, force_authn: bool = False):
    """Another browser window (no session) that carries the remember-me token: where does the
    password step lead?"""
    browser = app.test_client()
    browser.set_cookie(COOKIE, token)
    url, request_id = sp.login(force_authn=force_authn)
    go(browser, url)
    post(browser, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    return browser, browser.get("/sso/continue"), request_id


def skips_the_prompt(app, sp, token: str, **kwargs) -> bool:
    _, answer, _ = password_step_in_a_new_browser(app, sp, token, **kwargs)
    return answer.headers.get("Location") != "/sso/prompt"


def test_a_remembered_browser_skips_the_prompt(app, client, clock):
    sp, token, _ = remembered_at_the_prompt(app, client, clock)
    browser, answer, request_id = password_step_in_a_new_browser(app, sp, token)
    auth = sp.acs_post(saml_response(text(answer)), request_id)
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]


def test_remember_me_does_not_survive_sign_out(app, client, clock):
    sp, token, _ = remembered_at_the_prompt(app, client, clock)
    signed_out = post(client, "/saml/slo", token_from="/saml/slo")
    assert "You are signed out" in text(signed_out)
    assert any(c.startswith(f"{COOKIE}=;") for c in signed_out.headers.getlist("Set-Cookie"))
    # a copy of the cookie taken before the sign-out no longer skips anything
    assert not skips_the_prompt(app, sp, token)


def test_forget_in_my_settings_and_devices(app, client, clock):
    sp, token, (device_id, secret) = remembered_at_the_prompt(app, client, clock)
    settings = app.test_client()
    post(settings, "/sign-in", {"username": "alice", "password": PASSWORD})
    clock.advance(30)
    post(settings, "/prompt", {"next": "settings", "device": str(device_id),
                               "passcode": totp_code(secret, clock.now)},
         token_from="/prompt?next=settings")
    page = text(settings.get("/settings"))
    assert "Remembered browsers" in page and "Firefox on Windows" in page
    browser_id = re.search(r'/settings/remembered/(\d+)/forget', page).group(1)
    response = post(settings, f"/settings/remembered/{browser_id}/forget",
                    token_from="/settings")
    assert response.headers["Location"] == "/settings"
    page = text(settings.get("/settings"))
    assert "forgotten" in page and "Firefox on Windows" not in page
    assert not skips_the_prompt(app, sp, token)


def test_another_users_remembered_browser_cannot_be_forgotten(app, client, clock):
    from tests.conftest import add_totp_device, make_user

    remembered_at_the_prompt(app, client, clock)
    make_user(app, "bob")
    device_id, secret = add_totp_device(app, "bob")
    bob = app.test_client()
    post(bob, "/sign-in", {"username": "bob", "password": PASSWORD})
    post(bob, "/prompt", {"next": "settings", "device": str(device_id),
                          "passcode": totp_code(secret, clock.now)},
         token_from="/prompt?next=settings")
    response = post(bob, "/settings/remembered/1/forget", token_from="/settings")
    assert response.status_code == 404 and "not found" in text(response)


def test_force_authn_is_not_satisfied_by_a_remembered_browser(app, client, clock):
    sp, token, _ = remembered_at_the_prompt(app, client, clock)
    assert skips_the_prompt(app, sp, token)
    assert not skips_the_prompt(app, sp, token, force_authn=True)


def authn_instant(response_b64: str) -> datetime:
    xml = base64.b64decode(response_b64).decode()
    stamp = re.search(r'AuthnInstant="([^"]+)"', xml).group(1)
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP}])
def test_authn_instant_is_the_time_of_the_factor_not_of_the_answer(app, client, clock):
    from tests.helpers.sso import make_sp

    sp, device_id, secret = signed_in_at_the_prompt(app, client)
    post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now),
                                 "device": str(device_id)}, token_from="/sso/prompt")
    client.get("/sso/continue")
    # five minutes later (the session's times, as if the factor was done then), another SP
    with client.session_transaction() as held:
        held["auth_at"] -= 300
        held["mfa_at"] -= 300
        factor_time = held["mfa_at"]
    other = make_sp(client, app, base="http://other.test", name="Other")
    url, _ = other.login()
    go(client, url)
    answer = saml_response(text(client.get("/sso/continue")))
    assert authn_instant(answer) == datetime.fromtimestamp(factor_time, UTC).replace(
        microsecond=0)
    assert abs(time.time() - 300 - authn_instant(answer).timestamp()) < 5
