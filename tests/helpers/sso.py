"""The SSO door with Flask's client as browser and a python3-saml SP (the SSO, push and
fault tests)."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.core import service_providers as sps
from saml.sp_metadata import parse_sp_metadata
from tests.conftest import (
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    committed,
    make_user,
    post,
    totp_code,
)
from tests.helpers.portal import text
from tests.peers.saml_sp import SAML_RESPONSE_RE, TestSP

IDP = "http://localhost"


def idp_metadata(client) -> str:
    return client.get("/saml/metadata").get_data(as_text=True)


def register(app, sp: TestSP, *, replace: bool = False) -> None:
    meta = parse_sp_metadata(sp.metadata())
    with committed(app) as c:
        sps.register(c, TEST_ORIGIN, meta.registration(), replace=replace)


def make_sp(client, app, **kwargs) -> TestSP:
    sp = TestSP(idp_metadata=idp_metadata(client), **kwargs)
    register(app, sp)
    return sp


def go(client, url: str):
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == IDP, url
    return client.get(parts.path + ("?" + parts.query if parts.query else ""))


def saml_response(page: str) -> str:
    match = SAML_RESPONSE_RE.search(page)
    assert match, page[:2000]
    return match.group(1)


def sign_in_through_prompt(client, app, sp, clock, secret, device_id=None, *, offset=0,
                           force_authn=False):
    """alice, from the SP's login, through the password step and the prompt (a TOTP code) to
    the page that posts the Response: (the SAMLResponse, the AuthnRequest's ID)."""
    url, request_id = sp.login(force_authn=force_authn)
    assert go(client, url).headers["Location"] == "/sso/continue"
    assert client.get("/sso/continue").headers["Location"] == "/sso/sign-in"
    page = text(client.get("/sso/sign-in"))
    assert f"Sign in to {sp.name}" in page and "UMPASS ID" in page
    response = post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
                    token_from="/sso/sign-in")
    assert response.headers["Location"] == "/sso/continue"
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"
    prompt = text(client.get("/sso/prompt"))
    assert "Enter a Passcode" in prompt and "Settings" in prompt
    response = post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now, offset),
                                            "device": str(device_id or "")},
                    token_from="/sso/prompt")
    assert response.headers["Location"] == "/sso/continue", text(response)
    page = text(client.get("/sso/continue"))
    assert f'action="{sp.acs}"' in page
    return saml_response(page), request_id


def through_the_prompt(client, sp, clock, secret, device_id, username: str = "alice"):
    """From the SP's login, the password step and a passcode at the prompt, without checking
    the pages on the way: the answer of /sso/continue (the post page, or an error page) and the
    AuthnRequest's ID."""
    url, request_id = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": username, "password": PASSWORD},
         token_from="/sso/sign-in")
    post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now),
                                 "device": str(device_id)}, token_from="/sso/prompt")
    return client.get("/sso/continue"), request_id


def signed_in(client) -> bool:
    with client.session_transaction() as s:
        return bool(s.get("uid"))


def signed_in_at_sp(app, client, clock):
    """alice (a new user with a TOTP device) signed in at a new SP: (the SP, its auth)."""
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app)
    r, rid = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    auth = sp.acs_post(r, rid)
    assert signed_in(client)
    return sp, auth
