"""The web side of push (issue 6) through Flask's test client: adding the companion app in
"Add a new device" and "Send me a Push" in the portal and SSO prompts. The phone is the Python
device of tests/peers/push_device.py (a real P-256 key, the device API), on its own client."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
import segno

from app.core import push
from app.extensions import core
from app.web.push_prompt import NO_PUSH
from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    committed,
    issue_recovery,
    make_user,
    post,
    sign_in,
)
from tests.peers.push_device import PushDevice, enrol

HX = {"HX-Request": "true"}
BASE = "https://2fa.test"
NUMBER_RE = re.compile(r'Enter this number in the app:\s*<strong class="passcode-big">(\d{3})<')


@pytest.fixture
def settings_overrides():
    return {"base_url": BASE}


def text(response) -> str:
    return response.get_data(as_text=True)


def phone_for(app, clock) -> PushDevice:
    """A phone on its own client (the device API keeps no cookies, but the browser does)."""
    return PushDevice.with_client(app.test_client(), clock=clock)


def user_with_phone(app, clock, username: str = "alice") -> PushDevice:
    make_user(app, username)
    phone = phone_for(app, clock)
    reply = phone.activate(enrol(app, username))
    assert reply.status == 201, reply.text
    return phone


def send(client, next_step: str = "done", device: str = ""):
    data = {"next": next_step}
    if device:
        data["device"] = device
    return post(client, "/prompt/push", data, token_from=f"/prompt?next={next_step}")


def started(client, next_step: str = "done") -> tuple[str, str]:
    """ "Send me a Push" in the portal prompt: (the status page, the Verified Push number)."""
    response = send(client, next_step)
    assert response.status_code == 303, text(response)
    assert response.headers["Location"] == f"/prompt/push?next={next_step}"
    page = text(client.get(response.headers["Location"]))
    match = NUMBER_RE.search(page)
    assert match, page
    return page, match.group(1)


def poll(client, url: str = "/prompt/push?next=done"):
    return client.get(url, headers=HX)


def factor_audits(app) -> list:
    return [r for r in audit_rows(app, "factor") if r.result == "ok" and r.detail == "push"]


# --- "Add a new device": the companion app ---------------------------------------------------

def to_app_step(client, app) -> None:
    code = issue_recovery(app)
    assert sign_in(client).status_code == 302
    assert post(client, "/prompt", {"next": "add", "passcode": code},
                token_from="/prompt?next=add").headers["Location"] == "/devices/add/type"
    post(client, "/devices/add/type", {"device_type": "mobile"}, token_from="/devices/add/type")
    post(client, "/devices/add/platform", {"platform": "android"},
         token_from="/devices/add/platform")


def activation_link(page: str) -> str:
    return re.search(r'<code id="activation-link" class="secret">([^<]+)</code>', page).group(1)


def test_add_the_companion_app_end_to_end(app, client, clock):
    make_user(app)
    to_app_step(client, app)
    page = text(client.get("/devices/add/app"))
    assert "I have Duo Mobile installed" in page and "UM 2FA app - Send me a Push" in page
    response = post(client, "/devices/add/app", {"app": "push"}, token_from="/devices/add/app")
    assert response.headers["Location"] == "/devices/add/activate"

    page = text(client.get("/devices/add/activate"))
    link = activation_link(page).replace("&amp;", "&")
    assert re.fullmatch(re.escape(BASE) + r"/app/#activate=[A-Za-z0-9_-]{32}", link)
    qr_src = re.search(r'<img class="qr" src="([^"]+)"', page).group(1)
    assert qr_src.replace("&amp;", "&") == segno.make(link, error="m").svg_data_uri(
        scale=5, border=2)
    assert "open this link on your phone" in page.lower()
    assert 'hx-get="/devices/add/activate/status"' in page and 'hx-trigger="every 1s"' in page
    assert 'aria-live="polite"' in page and "<script>" not in page

    # nothing yet: the poll changes nothing, and "Continue" says so
    waiting = client.get("/devices/add/activate/status", headers=HX)
    assert waiting.status_code == 204 and "HX-Redirect" not in waiting.headers
    early = post(client, "/devices/add/activate", token_from="/devices/add/activate")
    assert early.status_code == 409 and "not activated yet" in text(early)

    phone = phone_for(app, clock)
    reply = phone.activate(link)
    assert reply.status == 201, reply.text
    done = client.get("/devices/add/activate/status", headers=HX)
    assert done.status_code == 204 and done.headers["HX-Redirect"] == "/devices/add/name"
    assert "Give your device a name" in text(client.get("/devices/add/name"))
    post(client, "/devices/add/name", {"name": "Pixel"}, token_from="/devices/add/name")
    finished = text(client.get("/devices/add/done"))
    assert "Continue to Login" in finished
    url = re.search(r'href="(/prompt\?[^"]+)">Continue to Login', finished).group(1)
    login = text(client.get(url.replace("&amp;", "&")))
    assert "Pixel" in login and "Send me a Push" in login and "Enter a Passcode" in login

    assert ("device.activate", "ok") in [(r.action, r.result) for r in audit_rows(app)]


def test_the_companion_apps_passcode_works_in_the_prompt(app, client, clock):
    """The companion app shows TOTP passcodes too ("Enter a Passcode" without a network)."""
    phone = user_with_phone(app, clock)
    sign_in(client)
    page = text(client.get("/prompt?next=done"))
    device_id = re.search(r'name="device" value="(\d+)" checked', page).group(1)
    response = post(client, "/prompt", {"next": "done", "device": device_id,
                                        "passcode": phone.passcode()}, token_from="/prompt")
    assert response.headers.get("Location") == "/prompt/done", text(response)


def test_the_authenticator_path_is_unchanged(app, client):
    make_user(app)
    to_app_step(client, app)
    post(client, "/devices/add/app", token_from="/devices/add/app")
    page = text(client.get("/devices/add/activate"))
    # the key is shown, not the URI as text; the URI only as "Open in authenticator app"
    assert re.search(r'<a class="button secondary" href="otpauth://totp/[^"]+">'
                     r"Open in authenticator app</a>", page)
    assert page.count("otpauth") == 1
    assert '<code id="secret" class="secret">' in page and "activation-link" not in page


def test_activation_link_can_be_renewed_and_expires(app, client, clock):
    make_user(app)
    to_app_step(client, app)
    post(client, "/devices/add/app", {"app": "push"}, token_from="/devices/add/app")
    first = activation_link(text(client.get("/devices/add/activate")))
    response = post(client, "/devices/add/activate/new-link", token_from="/devices/add/activate")
    assert response.headers["Location"] == "/devices/add/activate"
    second = activation_link(text(client.get("/devices/add/activate")))
    assert second != first
    assert phone_for(app, clock).activate(first).status != 201  # the old link stopped working

    clock.advance(601)
    expired = client.get("/devices/add/activate/status", headers=HX)
    assert expired.status_code == 286 and "This link has expired" in text(expired)  # stops htmx
    page = text(client.get("/devices/add/activate"))
    assert "This link has expired" in page and 'class="qr"' not in page
    assert phone_for(app, clock).activate(second).status != 201
    post(client, "/devices/add/activate/new-link", token_from="/devices/add/activate")
    third = activation_link(text(client.get("/devices/add/activate")))
    assert phone_for(app, clock).activate(third).status == 201
    assert client.get("/devices/add/activate/status", headers=HX
                      ).headers["HX-Redirect"] == "/devices/add/name"


# --- "Send me a Push" in the portal prompt ----------------------------------------------------

def test_push_approved_completes_the_login_once(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    prompt_page = text(client.get("/prompt?next=done"))
    assert "Send me a Push" in prompt_page and "Enter a Passcode" in prompt_page

    page, number = started(client)
    assert "Push sent to" in page and "Mobile phone" in page
    assert "This push expires in 60 seconds" in page
    assert 'hx-get="/prompt/push?next=done"' in page
    assert 'hx-trigger="every 1s, sse:answered"' in page
    # the sentence's forms, for the countdown the page keeps while its stream is open
    assert 'data-one="This push expires in {n} second."' in page
    assert 'data-other="This push expires in {n} seconds."' in page
    # the push event stream, with the push's watch token (its public id, signed)
    stream = re.search(r'hx-ext="sse" sse-connect="/push/events\?token=([^"]+)"', page)
    assert stream and 'sse-close="answered"' in page
    watched = push.read_watch_token(core.services(app).keys, unquote(stream.group(1)), clock())
    assert 'id="push-status"' in page and 'aria-live="polite"' in page
    assert "<script>" not in page

    clock.advance(20)
    pending = poll(client)
    assert pending.status_code == 200 and "HX-Redirect" not in pending.headers
    assert "expires in 40 seconds" in text(pending) and "<html" not in text(pending)
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"

    request = phone.wait_for_request(timeout=2)
    assert request["service"] == "2FA portal" and request["door"] == "portal"
    assert watched is not None and watched.public_id == request["id"]
    assert phone.approve(request["id"], number).data["status"] == "approved"
    cookie = app.config["SESSION_COOKIE_NAME"]
    before = client.get_cookie(cookie).value

    done = poll(client)
    assert done.status_code == 204 and done.headers["HX-Redirect"] == "/prompt/done"
    assert "You are all set!" in text(client.get("/prompt/done"))
    again = poll(client)
    assert "HX-Redirect" not in again.headers and NO_PUSH in text(again)
    assert again.headers["HX-Retarget"] == "#push-status"
    assert len(factor_audits(app)) == 1

    # the session cookie from before the approval, sent again: the approval gave the session a
    # new id, so the old one is signed in to nothing (the push was used already anyway)
    assert client.get_cookie(cookie).value != before
    other = app.test_client()
    other.set_cookie(cookie, before)
    replay = other.get("/prompt/push?next=done", headers=HX)
    assert replay.headers.get("HX-Redirect") == "/" or replay.headers.get("Location") == "/"
    assert push.MESSAGES["used"] not in text(replay)
    assert other.get("/prompt/done").headers["Location"] == "/"
    assert len(factor_audits(app)) == 1


@pytest.mark.parametrize(("setting", "serve_port", "stream", "connect"), [
    ("", None, "/push/events?token=", ""),  # gunicorn: the proxy sends it on
    ("", 8123, "http://localhost:8123/push/events?token=", "http://localhost:8123"),
    ("https://events.2fa.test/push/events", None, "https://events.2fa.test/push/events?token=",
     "https://events.2fa.test"),
    ("off", 8123, "", ""),  # only polling
])
def test_where_the_waiting_page_listens(app, client, clock, setting, serve_port, stream,
                                        connect):
    """UM2FA_PUSH_EVENTS_URL, or `um2fa serve`'s own stream on the host the browser used; the
    CSP lets the page reach it when it is on another origin."""
    from dataclasses import replace

    from app.web.push_stream import SERVE_PORT

    app.config["UM2FA"] = replace(app.config["UM2FA"], push_events_url=setting)
    if serve_port:
        app.config[SERVE_PORT] = serve_port
    user_with_phone(app, clock)
    sign_in(client)
    send(client)
    response = client.get("/prompt/push?next=done", base_url="http://localhost")
    page = text(response)
    assert 'hx-trigger="every 1s, sse:answered"' in page  # polling stays the fallback
    if stream:
        assert f'sse-connect="{stream}' in page
    else:
        assert "sse-connect" not in page
    csp = response.headers["Content-Security-Policy"]
    assert f"connect-src 'self' {connect};" in csp if connect else "connect-src 'self';" in csp


def test_a_host_header_that_names_no_host_gets_no_stream(app):
    """`um2fa serve`'s stream is linked on the host the browser used: a Host header that is no
    host name goes neither into the page nor into its CSP (the page polls)."""
    from app.web import push_stream

    app.config[push_stream.SERVE_PORT] = 8123
    for host, expected in [("127.0.0.1:8000", "http://127.0.0.1:8123/push/events"),
                           ("[::1]:8000", "http://[::1]:8123/push/events"),
                           ("evil;script-src *", ""), ('a"b:80', "")]:
        with app.test_request_context("/", headers={"Host": host}):
            assert push_stream.base_url() == expected
            assert push_stream.connect_source() == expected.removesuffix("/push/events")


def test_push_without_htmx_checks_on_a_page_and_redirects(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    _, number = started(client, "settings")
    request = phone.wait_for_request(timeout=2)
    phone.approve(request["id"], number)
    response = client.get("/prompt/push?next=settings")
    assert response.status_code == 302 and response.headers["Location"] == "/settings"
    assert "My Settings" in text(client.get("/settings"))


def test_push_for_add_a_new_device(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    assert client.get("/devices/add").headers["Location"] == "/prompt?next=add"
    _, number = started(client, "add")
    phone.approve(phone.wait_for_request(timeout=2)["id"], number)
    assert poll(client, "/prompt/push?next=add").headers["HX-Redirect"] == "/devices/add/type"
    assert "What type of device" in text(client.get("/devices/add/type"))


@pytest.mark.parametrize(("decision", "status"), [("deny", "denied"), ("fraud", "fraud"),
                                                  ("wrong-number", "mismatch")])
def test_push_refused_shows_why_and_offers_both_methods(app, client, clock, decision, status):
    phone = user_with_phone(app, clock)
    sign_in(client)
    _, number = started(client)
    request_id = phone.wait_for_request(timeout=2)["id"]
    if decision == "wrong-number":
        wrong = f"{(int(number) + 1) % 1000:03d}"
        assert phone.approve(request_id, wrong).data["status"] == "mismatch"
    else:
        assert phone.answer(request_id, decision).data["status"] == status
    response = poll(client)
    body = text(response)
    assert response.status_code == 200 and "HX-Redirect" not in response.headers
    assert response.headers["HX-Retarget"] == "#push-status"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert push.MESSAGES[status] in body.replace("&#39;", "'")
    # Only the message: "Send me a Push" and "Enter a Passcode" stay in the methods bar above
    # it (issue 17: they were shown twice after a wrong number).
    assert "Send me a Push" not in body and "Enter a Passcode" not in body
    assert 'hx-trigger="every 1s' not in body  # the polling ends
    assert "sse-connect" not in body  # and the stream with it
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"
    assert factor_audits(app) == []
    again = send(client)
    if status == "fraud":
        assert again.status_code == 403 and push.BLOCKED in text(again)
        assert "Traceback" not in text(again) and 'name="passcode"' in text(again)
    else:
        assert again.status_code == 303


def test_push_expires_with_a_message(app, client, clock):
    phone = user_with_phone(app, clock)
    sign_in(client)
    started(client)
    request_id = phone.wait_for_request(timeout=2)["id"]
    clock.advance(61)
    response = poll(client)
    assert push.MESSAGES["expired"] in text(response)
    assert "Send me a Push" not in text(response)  # the methods bar's, not repeated
    assert phone.approve(request_id, "000").status >= 400  # too late for the phone as well
    page = text(client.get("/prompt/push?next=done"))  # without htmx: the prompt, no push
    assert NO_PUSH in page and "Enter a Passcode" in page


def test_blocked_user_is_told_in_the_prompt(app, client, clock):
    from datetime import timedelta

    from app.core import users

    user_with_phone(app, clock)
    with committed(app) as c:
        user = users.get(c, "alice")
        user.push_blocked_until = c.now() + timedelta(minutes=20)
    sign_in(client)
    response = send(client)
    assert response.status_code == 403 and push.BLOCKED in text(response).replace("&#39;", "'")
    assert "<html" in text(response) and 'role="alert"' in text(response)
    assert [r.result for r in audit_rows(app, "push.start")] == ["blocked"]


def test_at_most_three_pending_pushes(app, client, clock):
    user_with_phone(app, clock)
    sign_in(client)
    for _ in range(3):
        assert send(client).status_code == 303
    response = send(client)
    assert response.status_code == 429 and push.TOO_MANY in text(response)
    clock.advance(61)  # they expire; a new one may go
    assert send(client).status_code == 303


def test_push_is_offered_only_for_a_device_that_can_push(app, client, clock):
    user_with_phone(app, clock)
    totp_id, _ = add_totp_device(app, name="Old phone")
    sign_in(client)
    page = text(client.get("/prompt?next=done"))
    push_id = re.search(r'name="device" value="(\d+)" checked', page).group(1)
    assert int(push_id) != totp_id  # the companion app came first: it is the default
    methods = text(client.get(f"/prompt/methods?next=done&device={push_id}", headers=HX))
    assert "Send me a Push" in methods and f'value="{push_id}" form="push-form"' in methods
    methods = text(client.get(f"/prompt/methods?next=done&device={totp_id}", headers=HX))
    assert "Send me a Push" not in methods and "Enter a Passcode" in methods
    page = text(client.get(f"/prompt?next=done&device={totp_id}"))
    assert "Send me a Push" not in page
    response = send(client, device=str(totp_id))
    assert response.status_code == 400 and push.NOT_PUSH in text(response)


def test_another_users_device_cannot_be_pushed(app, client, clock):
    user_with_phone(app, clock)
    make_user(app, "bob", password=PASSWORD)
    with committed(app) as c:
        from app.core import users

        alice_device = push.push_devices(users.get(c, "alice"))[0].id
    sign_in(client, "bob")
    response = send(client, device=str(alice_device))
    assert response.status_code == 400 and push.NOT_PUSH in text(response)
    for bad in ("x", "9" * 30, "-1"):
        assert send(client, device=bad).status_code == 400
    assert audit_rows(app, "push.start") == []


def test_a_fraud_report_stops_the_other_logins_waiting_on_a_push(app, client, clock):
    """Two sign-ins wait on pushes (the second is an attacker's): reporting one as fraud stops
    the other too, even when it was approved a moment before and not yet used."""
    phone = user_with_phone(app, clock)
    sign_in(client)
    _, number = started(client)
    mine = phone.wait_for_request(timeout=2)["id"]
    assert phone.approve(mine, number).data["status"] == "approved"
    intruder = app.test_client()
    sign_in(intruder)
    assert send(intruder).status_code == 303
    theirs = next(r["id"] for r in phone.pending() if r["id"] != mine)
    assert phone.report_fraud(theirs).data["status"] == "fraud"
    response = poll(client)
    assert "HX-Redirect" not in response.headers
    assert push.BLOCKED in text(response).replace("&#39;", "'")
    assert client.get("/prompt/done").headers["Location"] == "/prompt?next=done"
    assert factor_audits(app) == []


@pytest.mark.parametrize("odd", ["\u00b2", "\u0661", "9" * 30])
def test_odd_device_values_are_refused_cleanly(app, client, clock, odd):
    """Unicode digits (a superscript two is a digit to str.isdigit, but not to int)."""
    user_with_phone(app, clock)
    sign_in(client)
    assert send(client, device=odd).status_code == 400
    assert client.get("/prompt/methods", query_string={"device": odd, "next": "done"},
                      headers=HX).status_code == 200
    assert client.get("/prompt", query_string={"device": odd, "next": "done"}).status_code \
        == 200
    reply = post(client, "/prompt", {"next": "done", "device": odd, "passcode": "123456"},
                 token_from="/prompt?next=done")
    assert reply.status_code in (400, 401) and "Traceback" not in text(reply)


# --- the SSO prompt ---------------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [{"base_url": "http://localhost"}])
def test_sso_prompt_push_completes_the_saml_response(app, client, clock):
    from tests.helpers.sso import go, make_sp, saml_response
    from tests.peers.saml_sp import MFA

    phone = user_with_phone(app, clock)
    sp = make_sp(client, app)
    url, request_id = sp.login()
    go(client, url)
    client.get("/sso/continue")
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"
    prompt = text(client.get("/sso/prompt"))
    assert "Send me a Push" in prompt and "Enter a Passcode" in prompt

    response = post(client, "/sso/prompt/push", {}, token_from="/sso/prompt")
    assert response.status_code == 303 and response.headers["Location"] == "/sso/prompt/push"
    page = text(client.get("/sso/prompt/push"))
    assert "Push sent to" in page and "Signing in to Test SP" in page
    assert 'sse-connect="/push/events?token=' in page  # the SSO prompt hears it at once too
    number = NUMBER_RE.search(page).group(1)
    pending = client.get("/sso/prompt/push", headers=HX)
    assert "HX-Redirect" not in pending.headers and "expires in" in text(pending)

    request = phone.wait_for_request(timeout=2)
    assert request["service"] == "Test SP" and request["door"] == "sso"
    phone.approve(request["id"], number)
    done = client.get("/sso/prompt/push", headers=HX)
    assert done.headers["HX-Redirect"] == "/sso/continue"
    page = text(client.get("/sso/continue"))
    auth = sp.acs_post(saml_response(page), request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]
    assert len(factor_audits(app)) == 1


@pytest.mark.parametrize("settings_overrides", [{"base_url": "http://localhost"}])
def test_sso_prompt_push_denied_and_blocked(app, client, clock):
    from tests.helpers.sso import go, make_sp

    phone = user_with_phone(app, clock)
    sp = make_sp(client, app)
    go(client, sp.login()[0])
    client.get("/sso/continue")
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    assert post(client, "/sso/prompt/push", {}, token_from="/sso/prompt").status_code == 303
    phone.report_fraud(phone.wait_for_request(timeout=2)["id"])
    response = client.get("/sso/prompt/push", headers=HX)
    assert push.MESSAGES["fraud"] in text(response) and "HX-Redirect" not in response.headers
    again = post(client, "/sso/prompt/push", {}, token_from="/sso/prompt")
    assert again.status_code == 403 and push.BLOCKED in text(again).replace("&#39;", "'")
    assert "Signing in to Test SP" in text(again)


@pytest.mark.parametrize("settings_overrides", [{"base_url": "http://localhost",
                                                 "remember_days": 30}])
def test_sso_prompt_push_remembers_when_asked(app, client, clock):
    from tests.helpers.sso import go, make_sp

    phone = user_with_phone(app, clock)
    sp = make_sp(client, app)
    go(client, sp.login()[0])
    client.get("/sso/continue")
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    post(client, "/sso/prompt/push", {}, token_from="/sso/prompt")
    page = text(client.get("/sso/prompt/push"))
    assert "hx-include=\"#prompt-form [name='remember']\"" in page
    phone.approve(phone.wait_for_request(timeout=2)["id"], NUMBER_RE.search(page).group(1))
    done = client.get("/sso/prompt/push?remember=yes", headers=HX)
    assert done.headers["HX-Redirect"] == "/sso/continue"
    assert any(c.startswith("um2fa_remember=") for c in done.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("settings_overrides", [{"base_url": "http://localhost"}])
def test_sso_prompt_refuses_odd_device_values_cleanly(app, client, clock):
    from tests.helpers.sso import go, make_sp

    user_with_phone(app, clock)
    sp = make_sp(client, app)
    go(client, sp.login()[0])
    client.get("/sso/continue")
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    reply = post(client, "/sso/prompt", {"device": "\u00b2", "passcode": "123456"},
                 token_from="/sso/prompt")
    assert reply.status_code in (400, 401) and "Traceback" not in text(reply)
    assert post(client, "/sso/prompt/push", {"device": "\u00b2"},
                token_from="/sso/prompt").status_code == 400
    assert client.get("/sso/prompt/methods?device=%C2%B2", headers=HX).status_code == 200
