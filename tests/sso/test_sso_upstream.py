"""IdP-proxy mode: a second UM 2FA instance is the university's IdP (upstream, its own instance
directory, database, users and keys); ours asks it for the password, then prompts for the
second factor and answers the python3-saml test SP. Flask's clients play one browser, one
client per host."""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import ConfigError
from app.core import service_providers as sps
from app.core import users
from app.extensions import core
from saml.response import Assertion, build_response
from saml.sp_metadata import parse_sp_metadata
from tests.conftest import (
    PASSWORD,
    TEST_ORIGIN,
    Clock,
    add_totp_device,
    audit_rows,
    committed,
    make_user,
    post,
    totp_code,
)
from tests.peers.saml_sp import MFA, SAML_RESPONSE_RE, TestSP

IDP = "http://localhost"
UPSTREAM = "http://upstream.test"
OUR_SP = IDP + "/sso/upstream/metadata"
OUR_ACS = IDP + "/sso/upstream/acs"
RELAY_RE = re.compile(r'name="RelayState" value="([^"]+)"')
FAST = {f"ratelimit_{k}": "1000 per minute" for k in (
    "signin_address", "signin_user", "passcode_address", "passcode_user",
    "recovery_address", "recovery_user")}


@dataclass
class Upstream:
    app: Flask
    client: FlaskClient
    clock: Clock
    metadata_path: str


@pytest.fixture
def upstream(tmp_path, databases):
    """The university's IdP: UM 2FA with its own users, letting them in on a password."""
    url = f"sqlite:///{tmp_path / 'upstream.sqlite3'}"
    databases.migrate(url)
    app = create_app({"instance_dir": tmp_path / "upstream", "database_url": url,
                      "base_url": UPSTREAM, "new_user": "allow", "testing": True, **FAST})
    app.config["UM2FA_CLOCK"] = clock = Clock()
    client = app.test_client()
    path = tmp_path / "upstream-idp.xml"
    path.write_text(client.get("/saml/metadata").get_data(as_text=True))
    yield Upstream(app, client, clock, str(path))
    core.database(app).dispose()


@pytest.fixture
def extra_settings() -> dict:
    return {}


@pytest.fixture
def settings_overrides(upstream, extra_settings):
    return {"base_url": IDP, "sso_upstream_metadata": upstream.metadata_path,
            "sso_upstream_username_attribute": "uid",
            "sso_upstream_attributes": {"name": "displayName", "mail": "mail",
                                        "role": "eduPersonAffiliation"},
            **extra_settings}


def upstream_user(upstream: Upstream, username: str = "alice", **fields) -> None:
    values = {"password": PASSWORD, "dob": "2001-02-03", "id_last4": "123A", "role": "staff",
              "name": username.title() + " Upstream", "email": f"{username}@um.example",
              **fields}
    with committed(upstream.app) as c:
        users.add(c, TEST_ORIGIN, users.NewUser(username, **values))


@pytest.fixture
def sp(app, client, upstream) -> TestSP:
    """The downstream SP registered with us, and our SP side registered with the upstream."""
    test_sp = TestSP(idp_metadata=client.get("/saml/metadata").get_data(as_text=True))
    for target, xml in ((app, test_sp.metadata()),
                        (upstream.app, client.get("/sso/upstream/metadata").get_data(
                            as_text=True))):
        meta = parse_sp_metadata(xml)
        with committed(target) as c:
            # as `um2fa sp add` does: what our metadata requests is what the upstream releases
            sps.register(c, TEST_ORIGIN, meta.registration())
    return test_sp


def text(response) -> str:
    return response.get_data(as_text=True)


def path_of(url: str, host: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == host, url
    return parts.path + ("?" + parts.query if parts.query else "")


@dataclass
class Started:
    sp_request_id: str
    upstream_url: str
    request_id: str  # our AuthnRequest to the upstream
    relay: str


def start(client, sp: TestSP) -> Started:
    """The SP's AuthnRequest reaches us; we send the browser on to the upstream IdP."""
    url, sp_request_id = sp.login()
    assert client.get(path_of(url, IDP)).headers["Location"] == "/sso/continue"
    assert client.get("/sso/continue").headers["Location"] == "/sso/sign-in"
    assert client.get("/sso/sign-in").headers["Location"] == "/sso/upstream/login"
    upstream_url = client.get("/sso/upstream/login").headers["Location"]
    query = parse_qs(urlsplit(upstream_url).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    request_id = re.search(r' ID="([^"]+)"', xml).group(1)
    return Started(sp_request_id, upstream_url, request_id, query["RelayState"][0])


def upstream_password(upstream: Upstream, started: Started, username: str = "alice") -> dict:
    """The person signs in at the upstream IdP; its page would post this form to our ACS."""
    up = upstream.client
    assert up.get(path_of(started.upstream_url, UPSTREAM)).headers["Location"] == \
        "/sso/continue"
    assert up.get("/sso/continue").headers["Location"] == "/sso/sign-in"
    response = post(up, "/sso/sign-in", {"username": username, "password": PASSWORD},
                    token_from="/sso/sign-in")
    assert response.headers["Location"] == "/sso/continue", text(response)
    page = text(up.get("/sso/continue"))
    assert f'action="{OUR_ACS}"' in page, page[:2000]
    return {"SAMLResponse": SAML_RESPONSE_RE.search(page).group(1),
            "RelayState": RELAY_RE.search(page).group(1)}


def acs(client, form: dict):
    return client.post("/sso/upstream/acs", data=form)


def our_passcode(client, clock, secret: str, device_id: int):
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"
    page = text(client.get("/sso/prompt"))
    assert "Enter a Passcode" in page
    response = post(client, "/sso/prompt", {"passcode": totp_code(secret, clock.now),
                                            "device": str(device_id)}, token_from="/sso/prompt")
    assert response.headers["Location"] == "/sso/continue", text(response)
    return text(client.get("/sso/continue"))


def refused(response, words: str) -> None:
    body = text(response).replace("&#39;", "'")
    alert = re.search(r'role="alert">(.*?)</p>', body, re.S)
    assert response.status_code == 400 and alert, body[:1500]
    assert "We could not sign you in" in body and words in alert.group(1), alert.group(1)
    assert "Traceback" not in body


def refused_without_session(client, form: dict) -> None:
    """A Response whose sign-in session is gone: re-posted once, then refused."""
    assert 'name="again"' in text(acs(client, form))
    refused(acs(client, {**form, "again": "1"}), "did not keep the sign-in session")


def signed_in(client) -> bool:
    """Does our session hold a user? (Otherwise /sso/continue asks for the password again.)"""
    return client.get("/sso/continue").headers.get("Location") != "/sso/sign-in"


def test_upstream_password_and_our_passcode_give_the_sp_a_valid_assertion(
        app, client, clock, upstream, sp):
    upstream_user(upstream)
    make_user(app, email="alice@example.edu", name="Alice Chan", role="student")
    device_id, secret = add_totp_device(app)
    started = start(client, sp)
    assert started.upstream_url.startswith(UPSTREAM + "/saml/sso?SAMLRequest=")
    assert "&Signature=" in started.upstream_url  # signed; the upstream checked it
    form = upstream_password(upstream, started)
    assert form["RelayState"] == started.relay
    response = acs(client, form)
    assert response.status_code == 303 and response.headers["Location"] == "/sso/continue"
    page = our_passcode(client, clock, secret, device_id)
    auth = sp.acs_post(SAML_RESPONSE_RE.search(page).group(1), started.sp_request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]
    attrs = auth.get_friendlyname_attributes()
    assert attrs["uid"] == ["alice"]
    # the upstream's attributes, mapped, brought the local row up to date
    assert attrs["mail"] == ["alice@um.example"] and attrs["displayName"] == ["Alice Upstream"]
    assert attrs["eduPersonAffiliation"] == ["staff", "member"]
    ours = [r for r in audit_rows(app, "sign_in") if r.door == "sso"]
    assert ours[-1].result == "ok" and "upstream IdP " + UPSTREAM in ours[-1].detail
    assert audit_rows(app, "saml.response")[-1].username == "alice"
    # the password never reached us: the local sign-in page is not used in proxy mode
    assert post(client, "/sso/sign-in", {"username": "alice", "password": PASSWORD},
                token_from="/").headers["Location"] == "/sso/upstream/login"


def test_a_replayed_upstream_response_is_refused_on_any_node(app, client, clock, upstream,
                                                              sp):
    upstream_user(upstream)
    make_user(app)
    add_totp_device(app)
    started = start(client, sp)
    form = upstream_password(upstream, started)
    # the session cookie as it was before the answer: its session ended when the answer
    # signed the user in (a new id), so it brings no sign-in; the database would refuse the
    # assertion anyway (the next test)
    before = client.get_cookie("um2fa_session").value
    assert acs(client, form).status_code == 303
    client.set_cookie("um2fa_session", before)
    refused_without_session(client, form)
    # a second node: its own app and memory, the same database and keys
    settings = app.config["UM2FA"]
    node_b = create_app({name: getattr(settings, name) for name in (
        "instance_dir", "database_url", "base_url", "sso_upstream_metadata",
        "sso_upstream_username_attribute", "sso_upstream_attributes")} | {"testing": True})
    try:
        other = node_b.test_client()
        other.set_cookie("um2fa_session", before)
        refused_without_session(other, form)
        with other.session_transaction() as held:
            assert "uid" not in held
    finally:
        core.database(node_b).dispose()
    assert audit_rows(app, "saml.upstream")[-1].result == "refused"


def test_an_upstream_assertion_is_claimed_once_whichever_node_sees_it(app):
    """The database's record of used assertions: a second claim (this node or another, whose
    session cookie could once be rolled back) is refused until well after the expiry."""
    from datetime import timedelta

    from app.core import upstream_idp
    from tests.conftest import committed

    with committed(app) as ctx:
        expiry = ctx.now() + timedelta(minutes=5)
        assert upstream_idp.claim_assertion(ctx, UPSTREAM, "_a1", expiry)
    with committed(app) as ctx:
        assert not upstream_idp.claim_assertion(ctx, UPSTREAM, "_a1", expiry)
        assert upstream_idp.claim_assertion(ctx, UPSTREAM, "_a2", expiry)


def _crafted(upstream: Upstream, started: Started, **changes) -> dict:
    """A Response signed with the upstream's real key, with chosen fields."""
    from app.web.sso import signing_keys

    values = {"issuer": UPSTREAM + "/saml/metadata", "audience": OUR_SP, "recipient": OUR_ACS,
              "in_response_to": started.request_id,
              "nameid_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
              "nameid": "alice", "attributes": {"uid": ["alice"]},
              "authn_context": "urn:oasis:names:tc:SAML:2.0:ac:classes:"
                               "PasswordProtectedTransport",
              "session_index": "_s1", "now": datetime.now(UTC), "lifetime": 300, **changes}
    with upstream.app.test_request_context("/"):
        key = signing_keys()[-1]
    xml = build_response(Assertion(**values), key)
    return {"SAMLResponse": base64.b64encode(xml.encode()).decode(),
            "RelayState": started.relay}


def test_a_crafted_response_with_the_right_fields_is_accepted(app, client, upstream, sp):
    """The control for the refusals below: the crafted responses are otherwise good."""
    make_user(app)
    add_totp_device(app)
    started = start(client, sp)
    assert acs(client, _crafted(upstream, started)).status_code == 303
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"


@pytest.mark.parametrize(("changes", "words"), [
    ({"in_response_to": "_another_request"}, "refused"),
    ({"audience": "http://evil.test/metadata"}, "not a valid audience"),
    ({"recipient": "http://evil.test/acs"}, "refused"),
    ({"issuer": "http://evil.test/idp"}, "Invalid issuer"),
])
def test_wrong_in_response_to_audience_recipient_or_issuer_is_refused(
        app, client, upstream, sp, changes, words):
    make_user(app)
    add_totp_device(app)
    started = start(client, sp)
    refused(acs(client, _crafted(upstream, started, **changes)), words)
    assert not signed_in(client)


def test_an_answer_for_another_request_in_the_same_session_is_refused(app, client, upstream,
                                                                      sp):
    """Two sign-ins started: only the answer to the latest request counts."""
    upstream_user(upstream)
    make_user(app)
    first = start(client, sp)
    old = upstream_password(upstream, first)
    refused(acs(client, {**old, "RelayState": start(client, sp).relay}),
            "does not match the ID of the AuthNRequest")
    start(client, sp)
    refused(acs(client, old), "not for the sign-in we started")  # its RelayState is stale too
    assert not signed_in(client)


def test_unsigned_response_is_refused(app, client, upstream, sp):
    upstream_user(upstream)
    make_user(app)
    started = start(client, sp)
    form = upstream_password(upstream, started)
    xml = base64.b64decode(form["SAMLResponse"]).decode()
    stripped = re.sub(r"<ds:Signature\b.*?</ds:Signature>", "", xml, flags=re.S)
    assert "Signature" not in stripped
    form["SAMLResponse"] = base64.b64encode(stripped.encode()).decode()
    refused(acs(client, form), "No Signature found")
    assert not signed_in(client)


def test_response_signed_by_another_key_is_refused(app, client, upstream, sp, tmp_path):
    make_user(app)
    started = start(client, sp)
    from saml import keys

    other = keys.generate(tmp_path / "evil", "evil")
    xml = build_response(Assertion(
        issuer=UPSTREAM + "/saml/metadata", audience=OUR_SP, recipient=OUR_ACS,
        in_response_to=started.request_id,
        nameid_format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified", nameid="alice",
        attributes={"uid": ["alice"]}, authn_context="x", session_index="_s",
        now=datetime.now(UTC), lifetime=300), other)
    refused(acs(client, {"SAMLResponse": base64.b64encode(xml.encode()).decode(),
                         "RelayState": started.relay}), "Signature validation failed")


def test_tampered_response_is_refused(app, client, upstream, sp):
    upstream_user(upstream)
    make_user(app)
    make_user(app, "bob")
    started = start(client, sp)
    form = upstream_password(upstream, started)
    xml = base64.b64decode(form["SAMLResponse"]).decode()
    tampered = xml.replace('xsi:type="xs:string">alice<', 'xsi:type="xs:string">bob<')
    assert tampered != xml
    form["SAMLResponse"] = base64.b64encode(tampered.encode()).decode()
    refused(acs(client, form), "refused")
    assert not signed_in(client)


def test_expired_response_is_refused(app, client, upstream, sp):
    upstream_user(upstream)
    make_user(app)
    started = start(client, sp)
    upstream.clock.advance(-3600)  # the upstream made its answer an hour ago
    form = upstream_password(upstream, started)
    refused(acs(client, form), "refused")
    assert not signed_in(client)


def test_time_conditions_are_checked_with_a_small_skew(app, client, upstream, sp):
    """python3-saml allows five minutes of drift on the conditions; we allow one."""
    make_user(app)
    started = start(client, sp)
    ahead = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 240, UTC)
    form = _crafted(upstream, started, now=ahead)  # NotBefore three minutes from now
    refused(acs(client, form), "not valid yet")


def test_wrong_relay_state_and_garbage_are_refused(app, client, upstream, sp):
    make_user(app)
    started = start(client, sp)
    form = _crafted(upstream, started)
    refused(acs(client, {**form, "RelayState": "something-else"}), "not for the sign-in")
    started = start(client, sp)
    refused(acs(client, {"SAMLResponse": "not base64 at all!", "RelayState": started.relay}),
            "")
    started = start(client, sp)
    bomb = '<!DOCTYPE x [<!ENTITY a "b">]><samlp:Response/>'
    refused(acs(client, {"SAMLResponse": base64.b64encode(bomb.encode()).decode(),
                         "RelayState": started.relay}), "document type declaration")
    assert not signed_in(client)


def test_a_post_without_our_cookie_is_posted_again_from_our_origin(app, client, upstream, sp):
    """SameSite=Lax keeps the session cookie off the upstream's cross-site POST."""
    make_user(app)
    started = start(client, sp)
    form = _crafted(upstream, started)
    browser = app.test_client()  # no cookie, as on the cross-site POST
    page = browser.post("/sso/upstream/acs", data=form)
    body = text(page)
    assert page.status_code == 200 and "data-autosubmit" in body
    assert 'action="/sso/upstream/acs"' in body and 'name="again" value="1"' in body
    assert "Set-Cookie" not in page.headers  # the real cookie is not overwritten
    # from our own page the browser sends the cookie: the same form, again=1, succeeds
    response = acs(client, {**form, "again": "1"})
    assert response.headers["Location"] == "/sso/continue"
    # and with no cookie even then: a clear error, not a loop
    refused(browser.post("/sso/upstream/acs", data={**form, "again": "1"}), "cookies")
    # a second POST of the answer in the same browser: nothing waits for it
    refused(acs(client, form), "no sign-in in progress")


@pytest.mark.parametrize("extra_settings", [{"new_user": "enrol"}, {"new_user": "deny"},
                                            {"new_user": "allow"}])
def test_user_unknown_locally_follows_the_new_user_policy(app, client, upstream, sp,
                                                          extra_settings):
    upstream_user(upstream, "carol", role="student")
    started = start(client, sp)
    response = acs(client, upstream_password(upstream, started, "carol"))
    assert response.headers["Location"] == "/sso/continue"
    with committed(app) as c:
        carol = users.get(c, "carol")
        assert carol.email == "carol@um.example" and carol.display_name == "Carol Upstream"
        assert carol.role == "student" and carol.password_hash is None
    assert audit_rows(app, "user.provision")[-1].result == "created"
    policy = extra_settings["new_user"]
    response = client.get("/sso/continue")
    if policy == "enrol":
        assert response.headers["Location"] == "/sso/prompt"
        page = text(client.get("/sso/prompt"))
        assert "Add a new device" in page and "SAMLResponse" not in page
    elif policy == "deny":
        assert response.status_code == 403 and "no device" in text(response)
    else:
        auth = sp.acs_post(SAML_RESPONSE_RE.search(text(response)).group(1),
                           started.sp_request_id)
        assert auth.is_authenticated() and auth.get_last_authn_contexts() != [MFA]
        assert auth.get_friendlyname_attributes()["uid"] == ["carol"]


def test_a_locked_local_user_is_refused(app, client, upstream, sp):
    upstream_user(upstream)
    make_user(app)
    with committed(app) as c:
        users.get(c, "alice").disabled = True
    started = start(client, sp)
    refused(acs(client, upstream_password(upstream, started)), "locked")
    assert not signed_in(client)


@pytest.mark.parametrize("extra_settings", [{"sso_upstream_username_attribute": "NameID"}])
def test_username_from_the_nameid(app, client, upstream, sp):
    make_user(app)
    add_totp_device(app)
    started = start(client, sp)
    assert acs(client, _crafted(upstream, started, nameid="Alice@um.edu.mo",
                                attributes={"mail": ["a@b.c"]})).status_code == 303
    assert client.get("/sso/continue").headers["Location"] == "/sso/prompt"  # alice's prompt
    # an opaque (persistent) NameID, as the upstream UM 2FA sends by default, never names a
    # user: a clear message to set the attribute
    upstream_user(upstream)
    browser = app.test_client()
    started = start(browser, sp)
    refused(acs(browser, upstream_password(upstream, started)), "opaque NameID")


def test_metadata_cli_and_config_errors(app, runner, upstream, tmp_path):
    result = runner.invoke(args=["saml", "upstream-metadata"])
    assert result.exit_code == 0, result.output
    meta = parse_sp_metadata(result.output)
    assert meta.entity_id == OUR_SP and meta.acs_urls == [OUR_ACS]
    assert meta.authn_requests_signed and len(meta.certs) == 1
    # after a key rotation both certificates are published, the new one first
    assert runner.invoke(args=["saml", "rotate-key"]).exit_code == 0
    rotated = parse_sp_metadata(runner.invoke(args=["saml", "upstream-metadata"]).output)
    assert len(rotated.certs) == 2 and rotated.certs[1] == meta.certs[0]
    base = {"instance_dir": tmp_path / "x", "database_url": f"sqlite:///{tmp_path / 'x.db'}"}
    with pytest.raises(ConfigError, match="cannot be read"):
        create_app({**base, "base_url": IDP, "sso_upstream_metadata": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="UM2FA_BASE_URL is required"):
        create_app({**base, "sso_upstream_metadata": upstream.metadata_path})
    with pytest.raises(ConfigError, match="unknown field"):
        create_app({**base, "base_url": IDP, "sso_upstream_metadata": upstream.metadata_path,
                    "sso_upstream_attributes": '{"password": "x"}'})
    bad = tmp_path / "bad.xml"
    bad.write_text('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
                   'entityID="x"/>')
    with pytest.raises(ConfigError, match="no IDPSSODescriptor"):
        create_app({**base, "base_url": IDP, "sso_upstream_metadata": str(bad)})
    doctype = tmp_path / "doctype.xml"
    doctype.write_text('<!DOCTYPE x [<!ENTITY a "b">]><x/>')
    with pytest.raises(ConfigError, match="document type"):
        create_app({**base, "base_url": IDP, "sso_upstream_metadata": str(doctype)})


def test_without_upstream_the_routes_are_absent(tmp_path, databases):
    url = f"sqlite:///{tmp_path / 'plain.sqlite3'}"
    databases.migrate(url)
    plain = create_app({"instance_dir": tmp_path / "plain", "database_url": url,
                        "base_url": IDP, "testing": True})
    try:
        c = plain.test_client()
        assert c.get("/sso/upstream/metadata").status_code == 404
        assert c.post("/sso/upstream/acs", data={"SAMLResponse": "x"}).status_code == 404
    finally:
        core.database(plain).dispose()


def test_our_sp_metadata_requests_the_username_and_mapped_attributes(client):
    """An upstream IdP with a release policy (Shibboleth's, ours) sends what the SP's metadata
    requests: the username attribute (required) and the mapped ones, by their urn:oid names."""
    from saml.sp_metadata import parse_sp_metadata

    meta = parse_sp_metadata(client.get("/sso/upstream/metadata").get_data(as_text=True))
    assert meta.requested_attributes == [
        {"name": "urn:oid:0.9.2342.19200300.100.1.1", "required": True},       # uid
        {"name": "urn:oid:2.16.840.1.113730.3.1.241", "required": False},      # displayName
        {"name": "urn:oid:0.9.2342.19200300.100.1.3", "required": False},      # mail
        {"name": "urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "required": False}]       # affiliation
