"""HTTP-level protections: campus gate, CSRF, cookies, CSP, rate limits, error pages."""

from __future__ import annotations

import re

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import PASSWORD, add_totp_device, make_user, post, sign_in, totp_code

OFF_CAMPUS = {"REMOTE_ADDR": "203.0.113.5"}


def text(response) -> str:
    return response.get_data(as_text=True)


def test_off_campus_gets_the_settings_route_instead_of_a_form(app, client):
    response = client.get("/", environ_base=OFF_CAMPUS)
    page = text(response)
    assert response.status_code == 403
    assert "off campus" in page and "Settings" in page and "myUM" in page
    assert 'name="password"' not in page
    make_user(app)
    # posting to the sign-in form from off campus does not sign anyone in either
    response = post(client, "/sign-in", {"username": "alice", "password": PASSWORD},
                    environ_base=OFF_CAMPUS)
    assert response.status_code == 403
    with client.session_transaction() as session:
        assert "uid" not in session
    for url in ("/settings", "/devices/add", "/prompt"):
        assert client.get(url, environ_base=OFF_CAMPUS).status_code == 403


def test_forwarded_for_from_an_untrusted_peer_does_not_make_you_on_campus(client):
    response = client.get("/", environ_base=OFF_CAMPUS,
                          headers={"X-Forwarded-For": "10.1.2.3"})
    assert response.status_code == 403


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": "198.51.100.7/32",
                                                 "campus_networks": "10.0.0.0/8"}])
def test_forwarded_for_counts_behind_a_trusted_proxy(app, client):
    proxy = {"REMOTE_ADDR": "198.51.100.7"}
    assert client.get("/", environ_base=proxy,
                      headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    assert client.get("/", environ_base=proxy,
                      headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 403
    # the proxy itself is not on campus
    assert client.get("/", environ_base=proxy).status_code == 403


def test_forms_without_a_csrf_token_are_refused(app, client):
    make_user(app)
    response = client.post("/sign-in", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400 and "try again" in text(response)
    with client.session_transaction() as session:
        assert "uid" not in session


def test_the_prompts_refuse_a_passcode_without_a_csrf_token(app, client, clock):
    """The passcode form has no CSRF field of its own: CSRFProtect checks these POSTs."""
    make_user(app)
    device_id, secret = add_totp_device(app)
    sign_in(client)
    for url in ("/prompt", "/sso/prompt"):
        response = client.post(url, data={"device": str(device_id),
                                          "passcode": totp_code(secret, clock.now)})
        assert response.status_code == 400 and "try again" in text(response), url
    assert client.get("/settings").status_code != 200  # no second factor was taken


def test_htmx_posts_need_the_csrf_header(app, client, clock):
    make_user(app)
    device_id, _ = add_totp_device(app)
    sign_in(client)
    with client.session_transaction() as session:
        import time

        session["mfa_at"] = int(time.time())
    response = client.post(f"/settings/devices/{device_id}/remove",
                           headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "Phone" in text(client.get("/settings"))


def test_session_cookie_flags(app, client):
    make_user(app)
    response = sign_in(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = app.test_client()
    token_page = https.get("/", base_url="https://localhost")
    assert "Secure" in token_page.headers["Set-Cookie"]


def test_pages_carry_a_csp_without_inline_script(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"


def test_templates_have_no_inline_script_or_handlers():
    for path in (PROJECT_ROOT / "templates").rglob("*.html"):
        source = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", source):
            assert "src=" in tag, f"inline script in {path.name}"
        # in an HTML tag, not a gettext call's keyword ({{ _('... %(once)s', once=once) }})
        markup = re.sub(r"\{\{.*?\}\}", "", source, flags=re.S)
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", markup), (
            f"event handler attribute in {path.name}")
        assert not re.search(r"\sstyle=", source), f"inline style in {path.name}"


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_signin_user": "3 per minute"}])
def test_sign_in_is_rate_limited_per_user(app, client):
    make_user(app)
    for _ in range(3):
        assert sign_in(client, "alice", "wrong-password").status_code == 401
    limited = sign_in(client, "alice", PASSWORD)
    assert limited.status_code == 429 and "Too many attempts" in text(limited)
    # another account from the same address is not limited by alice's counter
    make_user(app, "bob")
    assert sign_in(client, "bob", PASSWORD).status_code == 302


def _from(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def _sign_in_from(app, address: str, password: str):
    client = app.test_client()
    return post(client, "/sign-in", {"username": "alice", "password": password},
                **_from(address))


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_signin_user": "3 per minute",
                                                 "ratelimit_signin_user_ceiling":
                                                     "6 per minute"}])
def test_an_attackers_bad_sign_ins_from_one_address_do_not_block_the_user_at_another(app):
    make_user(app)
    for _ in range(3):
        assert _sign_in_from(app, "10.1.1.1", "wrong-password").status_code == 401
    assert _sign_in_from(app, "10.1.1.1", PASSWORD).status_code == 429
    assert _sign_in_from(app, "10.2.2.2", PASSWORD).status_code == 302


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_signin_user": "3 per minute",
                                                 "ratelimit_signin_user_ceiling":
                                                     "6 per minute"}])
def test_a_per_user_ceiling_still_stops_a_distributed_sign_in_attack(app):
    make_user(app)
    for n in range(6):
        assert _sign_in_from(app, f"10.3.0.{n + 1}", "wrong-password").status_code == 401
    limited = _sign_in_from(app, "10.4.4.4", PASSWORD)
    assert limited.status_code == 429 and "Too many attempts" in text(limited)


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_passcode_user": "2 per minute",
                                                 "ratelimit_passcode_user_ceiling":
                                                     "4 per minute"}])
def test_passcode_guesses_from_one_address_do_not_block_the_user_at_another(app):
    make_user(app)
    add_totp_device(app)
    browsers = {}
    for address in ("10.5.0.1", "10.5.0.2", "10.5.0.3"):
        browsers[address] = app.test_client()
        assert _sign_in_from_client(browsers[address], address).status_code == 302

    def guess(address: str):
        return post(browsers[address], "/prompt", {"passcode": "000000"}, token_from="/prompt",
                    **_from(address))

    assert [guess("10.5.0.1").status_code for _ in range(3)] == [401, 401, 429]
    assert guess("10.5.0.2").status_code == 401  # another address: its own budget
    assert guess("10.5.0.3").status_code == 401
    assert guess("10.5.0.3").status_code == 429  # the per-user ceiling (4) is reached


def _sign_in_from_client(client, address: str):
    return post(client, "/sign-in", {"username": "alice", "password": PASSWORD},
                **_from(address))


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_signin_address": "4 per minute"}])
def test_sign_in_is_rate_limited_per_address(app, client):
    for name in ("u1", "u2", "u3", "u4"):
        assert sign_in(client, name, "x" * 10).status_code == 401
    assert sign_in(client, "u5", "x" * 10).status_code == 429
    other = app.test_client()
    response = post(other, "/sign-in", {"username": "u6", "password": "x" * 10})
    # the test client always comes from 127.0.0.1: same address, same limit
    assert response.status_code == 429
    elsewhere = other.post("/sign-in", data={}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 400  # a different address is not limited (CSRF answers)


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_passcode_user": "2 per minute"}])
def test_passcode_form_is_rate_limited_per_user(app, client):
    make_user(app)
    add_totp_device(app)
    sign_in(client)
    for _ in range(2):
        assert post(client, "/prompt", {"passcode": "000000"},
                    token_from="/prompt").status_code == 401
    assert post(client, "/prompt", {"passcode": "000000"}, token_from="/prompt").status_code \
        == 429


def test_unknown_pages_and_methods_get_friendly_errors(client):
    response = client.get("/nope")
    assert response.status_code == 404 and "Not Found" in text(response)
    assert "Traceback" not in text(response)
    assert client.put("/").status_code == 405


def test_a_database_outage_is_a_clear_503(app, client):
    from app.extensions import core

    make_user(app)
    sign_in(client)
    core.database(app).engine.dispose()
    core.services(app).db = type(core.database(app))("sqlite:////nonexistent-dir/x.sqlite3")
    response = client.get("/")
    assert response.status_code == 503 and "temporarily unavailable" in text(response)
    assert "Traceback" not in text(response) and "sqlite" not in text(response)
