"""Issue 14: our IdP as university federations expect it (REFEDS, Shibboleth SPs): the scope in
the metadata, the subject identifiers and attributes, the per-SP release policy."""

from __future__ import annotations

import base64
import re

import pytest
from lxml import etree

from app.core.attribute_release import CATALOG
from tests.conftest import add_totp_device, audit_rows, make_user
from tests.helpers.sso import (
    IDP,
    go,
    idp_metadata,
    make_sp,
    register,
    saml_response,
    sign_in_through_prompt,
    through_the_prompt,
)

SHIBMD = "urn:mace:shibboleth:metadata:1.0"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def test_the_metadata_declares_the_scope_of_every_scoped_attribute(client):
    root = etree.fromstring(idp_metadata(client).encode())
    scopes = root.xpath("md:IDPSSODescriptor/md:Extensions/shibmd:Scope",
                        namespaces={"md": MD, "shibmd": SHIBMD})
    assert [(s.text, s.get("regexp")) for s in scopes] == [("um.edu.mo", "false")]
    # Extensions come first in a role descriptor (the schema's order; Shibboleth checks it)
    assert root.xpath("md:IDPSSODescriptor/*", namespaces={"md": MD})[0].tag == \
        f"{{{MD}}}Extensions"


# --- what each SP receives ------------------------------------------------------------------

OIDS = {a.friendly: a.oid for a in CATALOG.values()}
RS = "http://refeds.org/category/research-and-scholarship"
ENTITY_CATEGORY = "http://macedir.org/entity-category"
SUBJECT_ID_REQ = "urn:oasis:names:tc:SAML:profiles:subject-id:req"
SCOPED_ID = re.compile(r"[0-9a-z][0-9a-z=-]{0,126}@um\.edu\.mo")


@pytest.fixture
def settings_overrides():
    return {"base_url": IDP}


@pytest.fixture
def alice(app):
    make_user(app, email="alice@example.edu", role="staff", name="Alice Chan",
              given_name="Alice", surname="Chan")
    return add_totp_device(app)


def released(app, client, clock, alice, sp, *, offset=0) -> dict[str, list[str]]:
    """What the SP reads from alice's Response, by attribute Name (python3-saml validates it)."""
    device_id, secret = alice
    response, request_id = sign_in_through_prompt(client, app, sp, clock, secret, device_id,
                                                  offset=offset)
    auth = sp.acs_post(response, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    return auth.get_attributes()


def named(attrs: dict[str, list[str]]) -> dict[str, list[str]]:
    friendly = {a.oid: a.friendly for a in CATALOG.values()}
    return {friendly[name]: values for name, values in attrs.items()}


def test_an_sp_that_asks_for_nothing_gets_only_its_pairwise_id(app, client, clock, alice):
    sp = make_sp(client, app, requested=())
    attrs = released(app, client, clock, alice, sp)
    assert list(attrs) == [OIDS["pairwise-id"]]
    [pairwise] = attrs[OIDS["pairwise-id"]]
    assert SCOPED_ID.fullmatch(pairwise) and "alice" not in pairwise
    # stable for this SP, different at another
    other = make_sp(client, app, requested=(), base="http://other.test", name="Other")
    url, request_id = other.login()
    go(client, url)
    auth = other.acs_post(saml_response(client.get("/sso/continue").get_data(as_text=True)),
                          request_id)
    [elsewhere] = auth.get_attributes()[OIDS["pairwise-id"]]
    assert SCOPED_ID.fullmatch(elsewhere) and elsewhere != pairwise
    again = released(app, app.test_client(), clock, alice, sp, offset=1)
    assert again[OIDS["pairwise-id"]] == [pairwise]


def test_an_sp_gets_what_its_metadata_requests_with_values_and_names(app, client, clock,
                                                                      alice):
    sp = make_sp(client, app, requested=(
        ("eduPersonPrincipalName", True), ("eduPersonScopedAffiliation", False),
        ("eduPersonAffiliation", False), ("givenName", False), ("sn", False),
        ("mail", False), ("displayName", False), ("subject-id", False)))
    attrs = named(released(app, client, clock, alice, sp))
    assert attrs.pop("eduPersonPrincipalName") == ["alice@um.edu.mo"]
    assert attrs.pop("eduPersonScopedAffiliation") == ["staff@um.edu.mo", "member@um.edu.mo"]
    assert attrs.pop("eduPersonAffiliation") == ["staff", "member"]
    assert (attrs.pop("givenName"), attrs.pop("sn")) == (["Alice"], ["Chan"])
    assert attrs.pop("mail") == ["alice@example.edu"]
    assert attrs.pop("displayName") == ["Alice Chan"]
    [subject] = attrs.pop("subject-id")
    [pairwise] = attrs.pop("pairwise-id")
    assert SCOPED_ID.fullmatch(subject) and subject != pairwise
    assert attrs == {}  # nothing else leaves the IdP (no uid: not requested)


def test_attributes_go_out_under_their_uri_names_with_friendly_names(app, client, clock, alice):
    sp = make_sp(client, app, requested=(("eduPersonPrincipalName", False),))
    device_id, secret = alice
    response, _ = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    root = etree.fromstring(base64.b64decode(response))
    found = {(a.get("Name"), a.get("FriendlyName"), a.get("NameFormat")) for a in root.iter(
        "{urn:oasis:names:tc:SAML:2.0:assertion}Attribute")}
    uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
    assert found == {(OIDS["eduPersonPrincipalName"], "eduPersonPrincipalName", uri),
                     (OIDS["pairwise-id"], "pairwise-id", uri)}


def test_a_research_and_scholarship_sp_gets_the_r_and_s_bundle(app, client, clock, alice):
    sp = make_sp(client, app, requested=(), entity_attributes={ENTITY_CATEGORY: [RS]})
    attrs = named(released(app, client, clock, alice, sp))
    assert set(attrs) == {"pairwise-id", "subject-id", "eduPersonPrincipalName", "mail",
                          "displayName", "givenName", "sn", "eduPersonScopedAffiliation"}


def test_subject_id_req_in_the_metadata_is_honoured(app, client, clock, alice):
    sp = make_sp(client, app, requested=(),
                 entity_attributes={SUBJECT_ID_REQ: ["subject-id"]})
    assert set(named(released(app, client, clock, alice, sp))) == {"pairwise-id", "subject-id"}


def test_a_required_attribute_the_person_lacks_stops_the_sign_in(app, client, clock):
    make_user(app, email="")  # no email address
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app, requested=(("mail", True),))
    page, _ = through_the_prompt(client, sp, clock, secret, device_id)
    body = page.get_data(as_text=True)
    assert page.status_code == 400 and "requires your mail" in body
    assert "SAMLResponse" not in body
    assert audit_rows(app, "saml.response")[-1].result == "refused"


def test_a_required_attribute_we_do_not_release_stops_the_sign_in(app, client, clock, alice):
    sp = make_sp(client, app, requested=(("eduPersonPrincipalName", True),))
    run_cli(app, "sp", "set", sp.entity_id, "--release", "mail")
    device_id, secret = alice
    body = through_the_prompt(client, sp, clock, secret, device_id)[0].get_data(as_text=True)
    assert "does not release to it" in body and "SAMLResponse" not in body


def run_cli(app, *args: str, ok: bool = True):
    result = app.test_cli_runner().invoke(args=list(args))
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_an_operators_release_list_replaces_the_default_policy(app, client, clock, alice):
    sp = make_sp(client, app)  # requests uid, mail, displayName, eppn, affiliation
    shown = run_cli(app, "sp", "set", sp.entity_id, "--release",
                    f"eduPersonPrincipalName,{OIDS['sn']}").output
    assert "released (operator's list): eduPersonPrincipalName, sn" in shown
    assert set(named(released(app, client, clock, alice, sp))) == {"eduPersonPrincipalName",
                                                                   "sn"}
    assert audit_rows(app, "sp.settings")[-1].detail.startswith(sp.entity_id)
    run_cli(app, "sp", "set", sp.entity_id, "--default-release")
    assert set(named(released(app, app.test_client(), clock, alice, sp, offset=1))) == {
        "pairwise-id", "uid", "mail", "displayName", "eduPersonPrincipalName",
        "eduPersonAffiliation"}


def test_sp_set_refuses_unknown_attributes_and_unknown_sps(app, client):
    sp = make_sp(client, app)
    result = run_cli(app, "sp", "set", sp.entity_id, "--release", "uid,socialSecurityNumber",
                     ok=False)
    assert "unknown attribute(s): socialSecurityNumber" in result.output
    result = run_cli(app, "sp", "set", "http://nobody.test/", "--encrypt", ok=False)
    assert "no such service provider" in result.output
    shown = run_cli(app, "sp", "show", sp.entity_id).output
    assert "released (default): pairwise-id, eduPersonPrincipalName" in shown


def test_re_registering_keeps_the_operators_settings(app, client):
    sp = make_sp(client, app)
    run_cli(app, "sp", "set", sp.entity_id, "--release", "mail", "--email-nameid")
    register(app, sp, replace=True)
    shown = run_cli(app, "sp", "show", sp.entity_id).output
    assert "released (operator's list): mail" in shown and "email NameID: allowed" in shown


# --- NameIDPolicy ---------------------------------------------------------------------------

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def test_a_transient_nameid_is_new_every_time(app, client, clock, alice):
    sp = make_sp(client, app, nameid_format=TRANSIENT)
    device_id, secret = alice
    first = sp.acs_post(*sign_in_through_prompt(client, app, sp, clock, secret, device_id))
    assert first.get_nameid_format() == TRANSIENT
    url, request_id = sp.login()
    go(client, url)
    second = sp.acs_post(saml_response(client.get("/sso/continue").get_data(as_text=True)),
                         request_id)
    assert second.get_nameid_format() == TRANSIENT
    assert first.get_nameid() != second.get_nameid() and "alice" not in first.get_nameid()


def test_the_email_nameid_only_to_an_sp_allowed_to_have_it(app, client, clock, alice):
    sp = make_sp(client, app, nameid_format=EMAIL)
    url, request_id = sp.login()
    page = go(client, url)
    # refused before anyone signs in: the SP gets a signed Response with the SAML status
    auth = sp.acs_post(saml_response(page.get_data(as_text=True)), request_id)
    assert not auth.is_authenticated()
    assert "was Requester" in auth.get_last_error_reason()
    assert "does not give it" in auth.get_last_error_reason()
    assert "status:InvalidNameIDPolicy" in base64.b64decode(
        saml_response(page.get_data(as_text=True))).decode()
    run_cli(app, "sp", "set", sp.entity_id, "--email-nameid")
    device_id, secret = alice
    auth = sp.acs_post(*sign_in_through_prompt(client, app, sp, clock, secret, device_id))
    assert auth.get_nameid() == "alice@example.edu"


def test_an_unsupported_nameid_format_gets_a_saml_error_status(app, client):
    sp = make_sp(client, app,
                 nameid_format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    url, request_id = sp.login()
    response = go(client, url)
    assert response.status_code == 200
    xml = base64.b64decode(saml_response(response.get_data(as_text=True))).decode()
    assert "urn:oasis:names:tc:SAML:2.0:status:Requester" in xml
    assert "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy" in xml
    assert "<saml:Assertion" not in xml
    assert sp.acs_post(saml_response(response.get_data(as_text=True)), request_id).get_errors()
