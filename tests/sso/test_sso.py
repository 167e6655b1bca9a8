"""The SSO door against a real python3-saml service provider, with Flask's client as browser."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    csrf_token,
    issue_recovery,
    make_user,
    post,
    totp_code,
)
from tests.helpers.sso import (
    IDP,
    go,
    idp_metadata,
    make_sp,
    saml_response,
    sign_in_through_prompt,
    signed_in,
    signed_in_at_sp,
)
from tests.peers.saml_sp import MFA, TestSP


def password_step_for_a_new_sp(app, client):
    """alice (already a user) passes the SSO door's password step for a new SP's login."""
    sp = make_sp(client, app)
    url, _ = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    return sp


def signed_in_at_the_prompt(app, client):
    """alice, with a TOTP device, has passed the SSO door's password step for a new SP's login:
    (the SP, the device id, its secret)."""
    make_user(app)
    device_id, secret = add_totp_device(app)
    return password_step_for_a_new_sp(app, client), device_id, secret


@pytest.fixture
def settings_overrides():
    return {"base_url": IDP}


def text(response) -> str:
    return response.get_data(as_text=True)


def continue_to_login_with_the_new_device(client, clock, sp, rid, done, secret):
    """ "Continue to Login" after adding a device in the SSO prompt: the new device's next code
    finishes the login, and the SP gets an MFA Response."""
    continue_url = re.search(r'href="([^"]+)">Continue to Login', text(done)).group(1)
    assert continue_url.startswith("/sso/prompt?device=")
    clock.advance(30)
    response = post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now),
                                            "device": continue_url.split("=")[1]},
                    token_from=continue_url)
    assert response.headers["Location"] == "/sso/continue"
    auth = sp.acs_post(saml_response(text(client.get("/sso/continue"))), rid)
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]


def test_sign_in_with_a_passcode_gives_a_valid_mfa_response(app, client, clock):
    make_user(app, email="alice@example.edu", role="staff", name="Alice Chan")
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app)
    response_b64, request_id = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    auth = sp.acs_post(response_b64, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    assert auth.get_nameid_format() == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert auth.get_nameid() and "alice" not in auth.get_nameid()
    attrs = auth.get_friendlyname_attributes()
    assert attrs["uid"] == ["alice"] and attrs["mail"] == ["alice@example.edu"]
    assert attrs["displayName"] == ["Alice Chan"]
    assert attrs["eduPersonPrincipalName"] == ["alice@um.edu.mo"]
    assert attrs["eduPersonAffiliation"] == ["staff", "member"]
    assert auth.get_last_authn_contexts() == [MFA]
    xml = base64.b64decode(response_b64).decode()
    assert len(re.findall(r"<ds:Signature[ >]", xml)) == 2  # response and assertion
    assert "rsa-sha256" in xml and f'InResponseTo="{request_id}"' in xml
    assert "<saml:Audience>http://sp.test/metadata</saml:Audience>" in xml
    rows = audit_rows(app, "saml.response")
    assert rows[-1].door == "sso" and "mfa" in rows[-1].detail


def test_persistent_id_is_stable_per_sp_and_differs_between_sps(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp1 = make_sp(client, app)
    sp2 = make_sp(client, app, base="http://other.test", name="Other")
    r1, id1 = sign_in_through_prompt(client, app, sp1, clock, secret, device_id)
    first = sp1.acs_post(r1, id1).get_nameid()
    # a second SP in the same browser session: no password, no second prompt (policy: session)
    url, id2 = sp2.login()
    go(client, url)
    page = text(client.get("/sso/continue"))
    auth2 = sp2.acs_post(saml_response(page), id2)
    assert auth2.is_authenticated() and auth2.get_last_authn_contexts() == [MFA]
    assert auth2.get_nameid() != first
    # and again for the first SP: the same persistent ID
    url, id3 = sp1.login()
    go(client, url)
    assert sp1.acs_post(saml_response(text(client.get("/sso/continue"))), id3).get_nameid() \
        == first


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP, "remember_days": 7,
                                                 "sso_second_factor": "always"}])
def test_policy_always_asks_for_the_second_factor_at_every_sp(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp1 = make_sp(client, app)
    sp2 = make_sp(client, app, base="http://other.test", name="Other")
    sign_in_through_prompt(client, app, sp1, clock, secret, device_id)
    url, _ = sp2.login()
    go(client, url)
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"


def test_signed_authn_requests_are_checked(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app, sign_requests=True)
    url, _ = sp.login()
    assert go(client, url).status_code == 302  # the good signature passes
    tampered = re.sub(r"Signature=[^&]+", "Signature=" + "A" * 40, url)
    response = go(client, tampered)
    assert response.status_code == 400 and "signature is not valid" in text(response)
    unsigned = re.sub(r"&Signature=[^&]+", "", url)
    response = go(client, unsigned)
    assert response.status_code == 400 and "not signed" in text(response)


# --- signed AuthnRequests over HTTP-POST, and signature wrapping (security issue, point 9) ---

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"


def post_authn_request(client, xml: str):
    return client.post("/saml/sso", data={"SAMLRequest": base64.b64encode(xml.encode())})


def test_a_signed_authn_request_over_http_post_is_accepted(app, client):
    sp = make_sp(client, app, sign_requests=True)
    xml, request_id = sp.login_post()
    assert "<ds:Signature" in xml
    response = post_authn_request(client, xml)
    assert response.headers.get("Location") == "/sso/continue", text(response)
    with client.session_transaction() as s:
        assert s["saml_req"]["id"] == request_id


def _wrapped(signed: str, how: str) -> str:
    """The SP's correctly signed AuthnRequest, rearranged by an attacker: another request
    (ID "_evil", asking to skip the second factor's context and to be passive) is put at the
    root while the signature still verifies over the original element."""
    from lxml import etree

    original = etree.fromstring(signed.encode())
    signature = original.find(DS + "Signature")
    evil = etree.fromstring(signed.encode())
    evil.remove(evil.find(DS + "Signature"))
    evil.set("ID", "_evil")
    evil.set("IsPassive", "true")
    extensions = etree.SubElement(evil, SAMLP + "Extensions")
    evil.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer").addnext(extensions)
    if how == "signature moved to the root, its reference to the hidden original":
        original.remove(signature)
        evil.insert(1, signature)
        extensions.append(original)
    elif how == "the signed original hidden inside, signature and all":
        extensions.append(original)
    elif how == "the root takes the signed original's ID":
        original.remove(signature)
        evil.set("ID", original.get("ID"))
        evil.insert(1, signature)
        extensions.append(original)
    elif how == "two signatures":
        evil = original
        copy = etree.fromstring(etree.tostring(signature))
        evil.append(copy)
    elif how == "a second signature deeper down":
        evil = original
        extensions = etree.SubElement(evil, SAMLP + "Extensions")
        extensions.append(etree.fromstring(etree.tostring(signature)))
    elif how == "another element claims the root's ID as xml:id":
        evil = original
        extensions = etree.SubElement(evil, SAMLP + "Extensions")
        extensions.set("{http://www.w3.org/XML/1998/namespace}id", evil.get("ID"))
    elif how == "the reference is not the root's ID":
        # the signed element keeps its signature, the root is another request around it
        evil.insert(1, etree.fromstring(etree.tostring(signature)))
        evil.set("ID", "_evil")
    else:
        raise AssertionError(how)
    return etree.tostring(evil).decode()


@pytest.mark.parametrize("how", [
    "signature moved to the root, its reference to the hidden original",
    "the signed original hidden inside, signature and all",
    "the root takes the signed original's ID",
    "two signatures",
    "a second signature deeper down",
    "another element claims the root's ID as xml:id",
    "the reference is not the root's ID",
])
def test_a_signature_wrapped_authn_request_is_refused(app, client, how):
    sp = make_sp(client, app, sign_requests=True)
    signed, _ = sp.login_post()
    response = post_authn_request(client, _wrapped(signed, how))
    assert response.status_code == 400, text(response)
    page = text(response)
    assert "We could not sign you in" in page and "Traceback" not in page
    assert "Location" not in response.headers
    with client.session_transaction() as s:
        assert "saml_req" not in s
    assert audit_rows(app, "saml.request")[-1].result == "refused"


def test_an_unsigned_or_altered_post_request_from_a_signing_sp_is_refused(app, client):
    sp = make_sp(client, app, sign_requests=True)
    unsigned = TestSP(idp_metadata=idp_metadata(client)).login_post()[0]
    response = post_authn_request(client, unsigned)
    assert response.status_code == 400 and "not signed" in text(response)
    signed, _ = sp.login_post()
    altered = signed.replace('AssertionConsumerServiceURL="http://sp.test/acs"',
                             'AssertionConsumerServiceURL="http://sp.test/acs" '
                             'IsPassive="true"')
    assert altered != signed
    response = post_authn_request(client, altered)
    assert response.status_code == 400 and "signature is not valid" in text(response)


def test_unknown_sp_gets_an_error_page_never_a_response(app, client):
    sp = TestSP(idp_metadata=idp_metadata(client))  # not registered
    url, _ = sp.login()
    response = go(client, url)
    assert response.status_code == 400 and "not registered" in text(response)
    assert "SAMLResponse" not in text(response)
    assert audit_rows(app, "saml.request")[-1].result == "refused"


def test_foreign_acs_url_is_refused(app, client):
    sp = make_sp(client, app)
    other = TestSP(idp_metadata=idp_metadata(client), base="http://evil.test")
    other_url, _ = other.login()
    # the registered SP's entity ID with the other's ACS URL
    xml = _authn_request(sp.entity_id, acs="http://evil.test/acs")
    response = client.post("/saml/sso", data={"SAMLRequest": base64.b64encode(xml.encode())})
    assert response.status_code == 400 and "has not registered" in text(response)
    assert other_url


def _authn_request(issuer: str, acs: str = "", extra: str = "", doctype: str = "") -> str:
    acs_attr = f' AssertionConsumerServiceURL="{acs}"' if acs else ""
    return (f'{doctype}<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_abc" Version="2.0" '
            f'IssueInstant="2026-01-01T00:00:00Z"{acs_attr}><saml:Issuer>{issuer}'
            f"</saml:Issuer>{extra}</samlp:AuthnRequest>")


def test_post_binding_works_for_a_registered_sp(app, client):
    sp = make_sp(client, app)
    xml = _authn_request(sp.entity_id, acs=sp.acs)
    response = client.post("/saml/sso", data={"SAMLRequest": base64.b64encode(xml.encode()),
                                              "RelayState": "/home"})
    assert response.headers["Location"] == "/sso/continue"


@pytest.mark.parametrize("payload", [
    _authn_request("http://sp.test/metadata", doctype=(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
        + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
        + "]>")).replace("<saml:Issuer>", "<saml:Issuer>&lol9;"),
    _authn_request("http://sp.test/metadata", doctype=(
        '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')).replace(
        "<saml:Issuer>", "<saml:Issuer>&xxe;"),
    "<not-xml",
    "",
])
def test_entity_bombs_and_garbage_are_refused(app, client, payload):
    make_sp(client, app)
    response = client.post("/saml/sso", data={"SAMLRequest": base64.b64encode(
        payload.encode()).decode()})
    assert response.status_code == 400
    assert "root:" not in text(response) and "Traceback" not in text(response)


def test_deflate_bomb_is_refused(app, client):
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"<" + b"a" * (50 * 1024 * 1024)) + compressor.flush()
    response = client.get("/saml/sso", query_string={"SAMLRequest": base64.b64encode(bomb)})
    assert response.status_code == 400 and "too large" in text(response)


def test_tampered_response_is_rejected_by_the_sp(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app)
    r, rid = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    xml = base64.b64decode(r).decode().replace(">alice<", ">mallory<")
    auth = sp.acs_post(base64.b64encode(xml.encode()).decode(), rid)
    assert not auth.is_authenticated() and auth.get_errors()


def test_expired_response_is_rejected_by_the_sp(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app)
    clock.advance(-3600)  # the IdP's clock: the response was made an hour ago
    r, rid = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    auth = sp.acs_post(r, rid)
    assert not auth.is_authenticated()
    assert "expired" in (auth.get_last_error_reason() or "").lower() or \
        "NotOnOrAfter" in (auth.get_last_error_reason() or "")


def test_response_lifetime_is_a_few_minutes(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app)
    r, _ = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    xml = base64.b64decode(r).decode()
    not_before = re.search(r'NotBefore="([^"]+)"', xml).group(1)
    not_after = re.search(r'Conditions NotBefore="[^"]+" NotOnOrAfter="([^"]+)"', xml).group(1)
    from datetime import datetime

    span = datetime.fromisoformat(not_after) - datetime.fromisoformat(not_before)
    assert 0 < span.total_seconds() <= 600


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP, "new_user": "allow"}])
def test_sp_that_requires_mfa_never_gets_a_password_only_response(app, client):
    make_user(app)  # no device; policy would let a password-only login through
    plain = make_sp(client, app)
    strict = make_sp(client, app, base="http://strict.test", want_mfa=True)
    url, rid = plain.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    auth = plain.acs_post(saml_response(text(client.get("/sso/continue"))), rid)
    assert auth.is_authenticated() and auth.get_last_authn_contexts() != [MFA]
    url, _ = strict.login()
    go(client, url)
    response = client.get("/sso/continue")
    assert response.headers["Location"] == "/sso/prompt"  # enrolment, never a Response
    page = text(client.get("/sso/prompt"))
    assert "SAMLResponse" not in page and "Add a new device" in page


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP, "new_user": "allow"}])
def test_with_new_user_allow_a_user_who_removed_every_device_is_sent_to_enrolment(app,
                                                                                 client):
    from app.core import devices, users
    from tests.conftest import TEST_ORIGIN, committed

    make_user(app)
    device_id, _ = add_totp_device(app)
    with committed(app) as c:  # e.g. an attacker with the password removed the victim's phone
        devices.remove(c, TEST_ORIGIN, users.get(c, "alice"), device_id, last_confirmed=True)
    password_step_for_a_new_sp(app, client)
    response = client.get("/sso/continue")
    assert response.headers.get("Location") == "/sso/prompt"  # not a password-only Response
    page = text(client.get("/sso/prompt"))
    assert "SAMLResponse" not in page
    assert "Add a new device" in page and "recovery passcode" in page


def test_the_sso_prompt_warns_two_attempts_before_the_lock(app, client):
    signed_in_at_the_prompt(app, client)
    pages = [text(post(client, "/sso/prompt", {"passcode": "000000"},
                       token_from="/sso/prompt")) for _ in range(8)]
    assert not any("attempts left" in page for page in pages[:7])
    assert "2 attempts left before your account is temporarily locked" in pages[7]


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP, "new_user": "deny"}])
def test_new_user_deny(app, client):
    make_user(app)
    password_step_for_a_new_sp(app, client)
    response = client.get("/sso/continue")
    assert response.status_code == 403 and "no device" in text(response)


def test_new_user_enrols_inside_the_prompt_then_signs_in(app, client, clock):
    make_user(app)
    code = issue_recovery(app)
    sp = make_sp(client, app)
    url, rid = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"
    page = text(client.get("/sso/prompt"))
    assert "Add a new device" in page and "recovery passcode" in page
    from tests.helpers.portal import enrol, step_up

    assert client.get("/devices/add", environ_base={"REMOTE_ADDR": "203.0.113.9"}) \
        .headers["Location"] == "/prompt?next=add"
    assert step_up(client, code).headers["Location"] == "/devices/add/type"
    done, secret = enrol(client, clock, "mobile", "android", "Pixel")
    continue_to_login_with_the_new_device(client, clock, sp, rid, done, secret)


OFF = {"REMOTE_ADDR": "203.0.113.9"}


def test_a_recovery_passcode_never_signs_in_to_a_service_provider(app, client, clock):
    """Someone with the password and a recovery passcode, off campus, types it in the SSO
    prompt: it leads to "Add a new device", never to a SAML Response (not even for an SP
    that does not ask for MFA). The SP gets its Response once the new device is used."""
    from app.core import users
    from tests.conftest import committed
    from tests.helpers.portal import enrol

    make_user(app)
    add_totp_device(app, name="Victim's phone")
    code = issue_recovery(app)
    sp = make_sp(client, app)  # asks for no particular AuthnContext
    url, rid = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in", environ_base=OFF)
    response = post(client, "/sso/prompt", {"passcode": code}, token_from="/sso/prompt",
                    environ_base=OFF)
    assert response.headers["Location"] == "/devices/add/type"
    assert "SAMLResponse" not in text(response)
    assert client.get("/sso/continue", environ_base=OFF).headers["Location"] == "/sso/prompt"
    assert audit_rows(app, "saml.response") == []
    page = text(client.get("/devices/add/type", environ_base=OFF))
    assert "Mobile phone" in page and "Tablet" in page
    # "Settings" -> "My Settings & Devices" stays closed: the victim's phone cannot be removed
    assert client.get("/settings", environ_base=OFF).headers["Location"] == \
        "/prompt?next=settings"

    done, secret = enrol(client, clock, "mobile", "android", "Pixel")
    with committed(app) as c:
        added = {d.name: d.enrolled_via for d in users.get(c, "alice").devices}
    assert added == {"Victim's phone": "", "Pixel": "recovery"}
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"
    continue_to_login_with_the_new_device(client, clock, sp, rid, done, secret)


def test_a_recovery_passcode_in_the_prompts_settings_opens_only_add_a_new_device(app, client):
    make_user(app)
    add_totp_device(app, name="Victim's phone")
    code = issue_recovery(app)
    sp = make_sp(client, app)
    url, _ = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in", environ_base=OFF)
    response = post(client, "/prompt", {"next": "settings", "passcode": code, "device": ""},
                    token_from="/prompt?next=settings", environ_base=OFF)
    assert response.headers["Location"] == "/devices/add/type"
    assert client.get("/settings", environ_base=OFF).headers["Location"] == \
        "/prompt?next=settings"
    assert client.get("/sso/continue", environ_base=OFF).headers["Location"] == "/sso/prompt"




def test_off_campus_settings_in_the_prompt_reach_the_device_pages(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app, name="Old phone")
    sp = make_sp(client, app)
    url, rid = sp.login()
    parts = urlsplit(url)
    client.get(parts.path + "?" + parts.query, environ_base=OFF)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in", environ_base=OFF)
    settings = text(client.get("/sso/settings", environ_base=OFF))
    assert "Add a new device" in settings and "My Settings &amp; Devices" in settings
    # the portal's device pages answer off campus within an SSO sign-in
    assert client.get("/settings", environ_base=OFF).headers["Location"] == \
        "/prompt?next=settings"
    response = post(client, "/prompt", {"next": "settings", "device": str(device_id),
                                        "passcode": totp_code(secret, clock.now)},
                    token_from="/prompt?next=settings", environ_base=OFF)
    assert response.headers["Location"] == "/settings"
    page = text(client.get("/settings", environ_base=OFF))
    assert "Old phone" in page and "Back to login" in page
    # but the portal home does not open to this SSO session off campus; signing out does work
    assert client.get("/", environ_base=OFF).status_code == 403
    assert post(client, "/sign-out", {}, token_from="/settings",
                environ_base=OFF).headers["Location"] == "/"
    assert client.get("/settings", environ_base=OFF).status_code == 403
    # while the portal itself still refuses this address
    fresh = app.test_client()
    assert fresh.get("/", environ_base=OFF).status_code == 403
    assert fresh.get("/settings", environ_base=OFF).status_code == 403


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP, "remember_days": 7}])
def test_remember_me_skips_the_prompt_in_a_new_session(app, client, clock):
    sp, device_id, secret = signed_in_at_the_prompt(app, client)
    assert "Remember me for 7 days" in text(client.get("/sso/prompt"))
    response = post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now),
                                            "device": str(device_id), "remember": "yes"},
                    token_from="/sso/prompt")
    cookie = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("um2fa_remember=") and "HttpOnly" in c for c in cookie)
    client.delete_cookie("um2fa_session")  # the browser was closed: a new session
    url, rid = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
         token_from="/sso/sign-in")
    auth = sp.acs_post(saml_response(text(client.get("/sso/continue"))), rid)
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]
    # someone else signing in on this browser is not remembered
    make_user(app, "bob")
    add_totp_device(app, "bob")
    client.delete_cookie("um2fa_session")
    url, _ = sp.login()
    go(client, url)
    post(client, "/sso/sign-in", {"username": "bob", "password": PASSWORD},
         token_from="/sso/sign-in")
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"


def test_key_rotation_publishes_both_keys_and_signs_with_the_new_one(app, client, runner,
                                                                      clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    before = idp_metadata(client)
    result = runner.invoke(args=["saml", "rotate-key"])
    assert result.exit_code == 0 and "2 certificate(s)" in result.output
    app.extensions.pop("saml_keys", None)  # what a restart does
    after = idp_metadata(client)
    # 1 signing and 1 encryption KeyDescriptor + 1 in the signature
    assert before.count("<ds:X509Certificate>") == 3
    assert after.count('<md:KeyDescriptor use="signing">') == 2
    sp = make_sp(client, app)
    r, rid = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    assert sp.acs_post(r, rid).is_authenticated()


def test_single_logout(app, client, clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    url, logout_id = sp.logout(auth.get_nameid(), auth.get_session_index())
    response = go(client, url)
    assert response.status_code == 302 and response.headers["Location"].startswith(
        "http://sp.test/sls?SAMLResponse=")
    result = sp.sls(response.headers["Location"], logout_id)
    assert result.get_errors() == [], result.get_last_error_reason()
    # the IdP session is gone: the next login asks for the password again
    url, _ = sp.login()
    go(client, url)
    assert client.get("/sso/continue").headers["Location"] == "/sso/sign-in"


def test_metadata_is_signed_and_parsed_by_python3_saml(client):
    from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    xml = idp_metadata(client)
    parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml)
    assert parsed["idp"]["entityId"] == "http://localhost/saml/metadata"
    assert parsed["idp"]["singleSignOnService"]["url"] == "http://localhost/saml/sso"
    cert = parsed["idp"]["x509certMulti"]["signing"][0]  # and an "encryption" one
    assert OneLogin_Saml2_Utils.validate_sign(xml, OneLogin_Saml2_Utils.format_cert(cert),
                                              xpath="/md:EntityDescriptor/ds:Signature",
                                              raise_exceptions=True)
    unsigned = client.get("/saml/metadata?signed=0").get_data(as_text=True)
    assert "<ds:Signature" not in unsigned and "X509Certificate" in unsigned


# --- single logout: no logout by link, signed LogoutRequests (security issue, point 10) -----

def test_a_link_to_slo_does_not_sign_out(app, client, clock):
    signed_in_at_sp(app, client, clock)
    response = client.get("/saml/slo")
    assert signed_in(client)
    page = text(response)
    assert 'method="post"' in page and 'name="csrf_token"' in page


def test_local_sign_out_is_a_post_with_a_csrf_token(app, client, clock):
    sp, _ = signed_in_at_sp(app, client, clock)
    response = client.post("/saml/slo")
    assert response.status_code == 400 and signed_in(client)
    response = post(client, "/saml/slo", token_from="/saml/slo")
    assert not signed_in(client)
    # the session's SP is signed out too (tests/sso/test_sso_logout.py), then the page
    auth, answer = sp.sls_redirect(response.headers["Location"])
    assert auth.get_errors() == [], auth.get_last_error_reason()
    page = go(client, answer)
    assert page.status_code == 200 and "You are signed out" in text(page)


def _without(url: str, *names: str) -> str:
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p.split("=", 1)[0] not in names)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


def test_an_unsigned_logout_request_from_an_sp_with_a_certificate_is_refused(app, client,
                                                                               clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    url, _ = sp.logout(auth.get_nameid(), auth.get_session_index())
    response = go(client, _without(url, "Signature", "SigAlg"))
    assert response.status_code == 400 and "SAMLResponse" not in response.headers.get(
        "Location", "")
    assert signed_in(client)


def test_a_badly_signed_logout_request_is_refused(app, client, clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    url, _ = sp.logout(auth.get_nameid(), auth.get_session_index())
    parts = urlsplit(url)
    forged = "&".join(p if not p.startswith("Signature=") else
                      "Signature=" + base64.b64encode(b"\0" * 256).decode().replace("=", "%3D")
                      for p in parts.query.split("&"))
    response = go(client, f"{parts.scheme}://{parts.netloc}{parts.path}?{forged}")
    assert response.status_code == 400
    assert signed_in(client)


@pytest.mark.parametrize("settings_overrides", [{"base_url": IDP, "remember_days": 7,
                                                 "trusted_proxies": "127.0.0.1/32"}])
def test_remember_me_cookie_is_secure_behind_a_trusted_tls_proxy(app, client, clock):
    """The TLS proxy says https (X-Forwarded-Proto): the remember-me cookie is Secure, like
    the session cookie (security issue, point 12)."""
    sp, device_id, secret = signed_in_at_the_prompt(app, client)
    # (only this request says https: the test client keeps Secure cookies from http URLs)
    response = client.post("/sso/prompt", headers={"X-Forwarded-Proto": "https"}, data={
        "passcode": totp_code(secret, clock.now), "device": str(device_id), "remember": "yes",
        "csrf_token": csrf_token(client, "/sso/prompt")})
    cookie = [c for c in response.headers.getlist("Set-Cookie")
              if c.startswith("um2fa_remember=")]
    assert cookie and "Secure" in cookie[0], cookie


def test_the_sso_prompt_checks_a_passcode_on_the_user_read_with_the_session(app, client, clock,
                                                                            monkeypatch):
    """As the portal's prompt: the passcode POST reads the user and their devices with the
    session (one SELECT), not through the ORM; the ORM user only for "Remember me"."""
    from sqlalchemy import event

    from app.db import Prepared
    from app.extensions import core
    from tests.conftest import csrf_token

    _sp, device_id, secret = signed_in_at_the_prompt(app, client)
    token = csrf_token(client, "/sso/prompt")
    selects: list[str] = []
    execute = Prepared.execute

    def prepared(statement, conn, params):
        selects.append(str(statement.statement).split(None, 1)[0])
        return execute(statement, conn, params)

    def orm(conn, cursor, statement, *rest):
        selects.append(statement.split(None, 1)[0])

    monkeypatch.setattr(Prepared, "execute", prepared)
    engine = core.database(app).engine
    event.listen(engine, "before_cursor_execute", orm)
    try:
        response = client.post("/sso/prompt", data={
            "csrf_token": token, "device": str(device_id),
            "passcode": totp_code(secret, clock.now)})
    finally:
        event.remove(engine, "before_cursor_execute", orm)
    assert response.headers["Location"] == "/sso/continue"
    assert selects.count("SELECT") == 1, selects
