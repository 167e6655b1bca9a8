"""Single logout (issue 14, point 5): a LogoutRequest ends the session only when it names what
this session gave the SP, and the session's other SPs are signed out one after the other
(front-channel), with Flask's client as the browser and python3-saml SPs as the services."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from tests.conftest import add_totp_device, audit_rows, make_user, post
from tests.helpers.sso import (
    IDP,
    go,
    make_sp,
    saml_response,
    sign_in_through_prompt,
    signed_in,
    signed_in_at_sp,
    through_the_prompt,
)
from tests.peers.saml_sp import TestSP

EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"


@pytest.fixture
def settings_overrides():
    return {"base_url": IDP}


def text(response) -> str:
    return response.get_data(as_text=True)


def location(response) -> str:
    assert response.status_code == 302, (response.status_code, text(response)[:2000])
    return response.headers["Location"]


def sign_in_at(client, sp: TestSP):
    """The signed-in browser signs in to one more SP (no prompt: one second factor per
    session): the SP's view of it."""
    url, request_id = sp.login()
    assert go(client, url).headers["Location"] == "/sso/continue"
    auth = sp.acs_post(saml_response(text(client.get("/sso/continue"))), request_id)
    assert auth.is_authenticated()
    return auth


def saml_session(client) -> str:
    with client.session_transaction() as s:
        return s.get("saml_session", "")


def the_three_services(app, client, clock):
    """alice signed in to "Test SP" (through the prompt), then "Library", then "Moodle":
    [(sp, its auth)] in sign-in order."""
    sp1, auth1 = signed_in_at_sp(app, client, clock)
    sp2 = make_sp(client, app, base="http://library.test", name="Library")
    sp3 = make_sp(client, app, base="http://moodle.test", name="Moodle")
    return [(sp1, auth1), (sp2, sign_in_at(client, sp2)), (sp3, sign_in_at(client, sp3))]


def logout_response_xml(url: str) -> str:
    value = parse_qs(urlsplit(url).query)["SAMLResponse"][0]
    return OneLogin_Saml2_Utils.decode_base64_and_inflate(value).decode()


def refused_with_unknown_principal(sp: TestSP, response, logout_id: str) -> None:
    """The SP got a signed LogoutResponse, at its registered SLO URL, that says no."""
    url = location(response)
    assert url.startswith(sp.base + "/sls?SAMLResponse=")
    result = sp.sls(url, logout_id)
    assert result.get_errors() == ["logout_not_success"], result.get_last_error_reason()
    xml = logout_response_xml(url)
    assert REQUESTER in xml and UNKNOWN_PRINCIPAL in xml


def sp_answers(sp: TestSP, url: str) -> str:
    """The SP receives our LogoutRequest, checks it (signature, Destination, Issuer,
    NotOnOrAfter) and answers: the URL of its LogoutResponse, back to our /saml/slo."""
    assert url.startswith(sp.base + "/sls?SAMLRequest="), url
    auth, answer = sp.sls_redirect(url)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert answer.startswith(IDP + "/saml/slo?SAMLResponse=")
    return answer


def request_sent(url: str) -> str:
    value = parse_qs(urlsplit(url).query)["SAMLRequest"][0]
    return OneLogin_Saml2_Utils.decode_base64_and_inflate(value).decode()


def services_on_the_page(page: str) -> dict[str, str]:
    """The "Signed out" page's list: service name -> what it says of it."""
    items = re.findall(r'<li class="service">\s*<span class="name">([^<]*)</span>\s*'
                       r'<span class="state">([^<]*)</span>', page)
    return {unescape(name): state for name, state in items}


def continue_link(page: str) -> str:
    match = re.search(r'<a class="button" href="([^"]+)">Continue</a>', page)
    assert match, page[:3000]
    return unescape(match.group(1))


# --- matching: a LogoutRequest must name this session's sign-in at that SP -------------------

def test_a_logout_request_with_a_made_up_nameid_is_refused(app, client, clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    url, logout_id = sp.logout("made-up-nameid", auth.get_session_index())
    refused_with_unknown_principal(sp, go(client, url), logout_id)
    assert signed_in(client)
    refused = audit_rows(app, "saml.logout")[-1]
    assert refused.result == "refused" and sp.entity_id in refused.detail
    assert "made-up-nameid" not in refused.detail and auth.get_nameid() not in refused.detail


def sign_in_bob_at(app, client, clock, sp: TestSP) -> str:
    """bob, in his own browser, signs in to `sp`: the NameID it gave him."""
    make_user(app, "bob")
    device_id, secret = add_totp_device(app, "bob")
    page, request_id = through_the_prompt(client, sp, clock, secret, device_id, "bob")
    auth = sp.acs_post(saml_response(text(page)), request_id)
    assert auth.is_authenticated()
    return auth.get_nameid()


def test_a_logout_request_with_another_users_nameid_is_refused(app, client, clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    bobs = sign_in_bob_at(app, app.test_client(), clock, sp)
    assert bobs != auth.get_nameid()
    url, logout_id = sp.logout(bobs, auth.get_session_index())
    refused_with_unknown_principal(sp, go(client, url), logout_id)
    assert signed_in(client)


@pytest.mark.parametrize("session_index", ["_" + "0" * 32, None])
def test_a_wrong_or_missing_session_index_is_refused(app, client, clock, session_index):
    sp, auth = signed_in_at_sp(app, client, clock)
    url, logout_id = sp.logout(auth.get_nameid(), session_index)
    refused_with_unknown_principal(sp, go(client, url), logout_id)
    assert signed_in(client)


def test_a_nameid_in_another_format_is_refused(app, client, clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    url, logout_id = sp.logout(auth.get_nameid(), auth.get_session_index(),
                               name_id_format=EMAIL)
    refused_with_unknown_principal(sp, go(client, url), logout_id)
    assert signed_in(client)


def test_an_sp_the_session_never_signed_in_to_cannot_end_it(app, client, clock):
    sp, auth = signed_in_at_sp(app, client, clock)
    other = make_sp(client, app, base="http://other.test", name="Other")
    # what a compromised or curious SP could know: another SP's NameID and the SessionIndex
    url, logout_id = other.logout(auth.get_nameid(), auth.get_session_index())
    refused_with_unknown_principal(other, go(client, url), logout_id)
    assert signed_in(client)


def test_an_sp_of_the_session_cannot_end_it_with_another_sps_nameid(app, client, clock):
    (sp1, auth1), (sp2, _), _ = the_three_services(app, client, clock)
    url, logout_id = sp2.logout(auth1.get_nameid(), auth1.get_session_index())
    refused_with_unknown_principal(sp2, go(client, url), logout_id)
    assert signed_in(client)


def test_an_old_logout_request_replayed_after_a_new_sign_in_is_refused(app, client, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    sp = make_sp(client, app)
    r, rid = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    auth = sp.acs_post(r, rid)
    first_index = saml_session(client)
    url, logout_id = sp.logout(auth.get_nameid(), auth.get_session_index())
    assert sp.sls(location(go(client, url)), logout_id).get_errors() == []
    assert not signed_in(client)
    clock.advance(30)
    r, rid = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    again = sp.acs_post(r, rid)
    # a new sign-in: a new session, with a new SessionIndex in every assertion
    assert saml_session(client) and saml_session(client) != first_index
    assert again.get_session_index() == saml_session(client) != auth.get_session_index()
    refused_with_unknown_principal(sp, go(client, url), logout_id)
    assert signed_in(client)


def test_without_a_session_a_logout_request_is_answered_success(app, client, clock):
    """Nothing to end in this browser: the SP hears Success (docs/saml.md says why)."""
    sp, auth = signed_in_at_sp(app, client, clock)
    url, logout_id = sp.logout(auth.get_nameid(), auth.get_session_index())
    answer = location(go(app.test_client(), url))
    assert answer.startswith("http://sp.test/sls?SAMLResponse=")
    assert sp.sls(answer, logout_id).get_errors() == []
    assert signed_in(client)


# --- propagation: the session's other SPs, one after the other --------------------------------

def test_logout_at_one_sp_signs_the_others_out_one_after_the_other(app, client, clock):
    (sp1, auth1), (sp2, _auth2), (sp3, auth3) = the_three_services(app, client, clock)
    started = datetime.now(UTC)
    url, logout_id = sp2.logout(_auth2.get_nameid(), _auth2.get_session_index())
    to_sp1 = location(go(client, url))
    assert not signed_in(client)
    # the first other SP (in sign-in order) gets our LogoutRequest, naming what it was given
    xml = request_sent(to_sp1)
    nameid = OneLogin_Saml2_Logout_Request.get_nameid_data(xml)
    assert nameid["Value"] == auth1.get_nameid()
    assert nameid["Format"] == auth1.get_nameid_format()
    assert nameid["SPNameQualifier"] == sp1.entity_id
    assert OneLogin_Saml2_Logout_Request.get_session_indexes(xml) == [
        auth1.get_session_index()]
    not_after = re.search(r'NotOnOrAfter="([^"]+)"', xml).group(1)
    lifetime = datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - started
    assert 0 < lifetime.total_seconds() <= 300
    # then the next one, then the page
    to_sp3 = location(go(client, sp_answers(sp1, to_sp1)))
    assert OneLogin_Saml2_Logout_Request.get_nameid(request_sent(to_sp3)) == auth3.get_nameid()
    page = go(client, sp_answers(sp3, to_sp3))
    assert page.status_code == 200
    html = text(page)
    assert "Signed out" in html
    assert services_on_the_page(html) == {"Test SP": "signed out", "Moodle": "signed out"}
    # "Continue" takes the browser back to the SP that asked, with Success
    link = continue_link(html)
    assert link.startswith("http://library.test/sls?SAMLResponse=")
    assert sp2.sls(link, logout_id).get_errors() == []
    oks = [r for r in audit_rows(app, "saml.logout") if r.result == "ok"]
    assert sp2.entity_id in oks[-1].detail
    # the IdP session is gone
    url, _ = sp1.login()
    go(client, url)
    assert client.get("/sso/continue").headers["Location"] == "/sso/sign-in"


def test_an_sp_that_never_answers_is_skipped_and_the_requester_hears_partial_logout(
        app, client, clock):
    (sp1, _), (sp2, _), (sp3, auth3) = the_three_services(app, client, clock)
    url, logout_id = sp3.logout(auth3.get_nameid(), auth3.get_session_index())
    to_sp1 = location(go(client, url))
    assert to_sp1.startswith("http://sp.test/sls?SAMLRequest=")
    # Test SP is down; the person comes back to /saml/slo
    waiting = text(client.get("/saml/slo"))
    assert "Test SP" in waiting and "Skip" in waiting
    to_sp2 = location(post(client, "/saml/slo/skip", token_from="/saml/slo"))
    assert to_sp2.startswith("http://library.test/sls?SAMLRequest=")
    html = text(go(client, sp_answers(sp2, to_sp2)))
    assert services_on_the_page(html) == {"Test SP": "did not confirm",
                                          "Library": "signed out"}
    link = continue_link(html)
    assert link.startswith("http://moodle.test/sls?SAMLResponse=")
    assert sp3.sls(link, logout_id).get_errors() == []  # Success, second-level Partial
    xml = logout_response_xml(link)
    assert PARTIAL_LOGOUT in xml
    # Test SP's late answer finds nothing waiting for it: an error page
    late = go(client, sp_answers(sp1, to_sp1))
    assert late.status_code == 400


def test_a_logout_response_that_is_not_the_pending_steps_is_refused(app, client, clock):
    (sp1, _), (sp2, _), (sp3, auth3) = the_three_services(app, client, clock)
    url, _ = sp3.logout(auth3.get_nameid(), auth3.get_session_index())
    to_sp1 = location(go(client, url))
    sent_id = OneLogin_Saml2_Logout_Request.get_id(request_sent(to_sp1))
    unsigned = dataclasses.replace(sp1, sign_logout_responses=False)
    for forged in (sp2.logout_response(sent_id),       # another SP of the session
                   sp1.logout_response("_not-our-id"),  # not an answer to our request
                   unsigned.logout_response(sent_id)):  # unsigned, from an SP with a cert
        response = go(client, forged)
        assert response.status_code == 400, forged
        assert "SAMLRequest" not in response.headers.get("Location", "")
    garbage = client.get("/saml/slo?SAMLResponse=bm90IHhtbA%3D%3D")  # not DEFLATE, not XML
    assert garbage.status_code == 400 and "Back to the sign-out in progress" in text(garbage)
    assert audit_rows(app, "saml.logout_response")[-1].result == "refused"
    # the chain is unchanged: Test SP's real answer moves it on to Library
    to_sp2 = location(go(client, sp_answers(sp1, to_sp1)))
    assert to_sp2.startswith("http://library.test/sls?SAMLRequest=")


def test_a_logout_response_without_a_sign_out_in_progress_is_an_error_page(app, client,
                                                                             clock):
    sp, _ = signed_in_at_sp(app, client, clock)
    response = go(client, sp.logout_response("_anything"))
    assert response.status_code == 400 and signed_in(client)


def test_a_service_saying_no_did_not_confirm(app, client, clock):
    (sp1, _), (sp2, auth2), (sp3, _) = the_three_services(app, client, clock)
    url, _ = sp2.logout(auth2.get_nameid(), auth2.get_session_index())
    to_sp1 = location(go(client, url))
    sent_id = OneLogin_Saml2_Logout_Request.get_id(request_sent(to_sp1))
    to_sp3 = location(go(client, sp1.logout_response(
        sent_id, "urn:oasis:names:tc:SAML:2.0:status:Responder")))
    html = text(go(client, sp_answers(sp3, to_sp3)))
    assert services_on_the_page(html) == {"Test SP": "did not confirm", "Moodle": "signed out"}
    assert PARTIAL_LOGOUT in logout_response_xml(continue_link(html))


def test_sign_out_at_the_idp_signs_out_of_every_service(app, client, clock):
    (sp1, _), (sp2, _), (sp3, _) = the_three_services(app, client, clock)
    to_sp1 = location(post(client, "/saml/slo", token_from="/saml/slo"))
    assert not signed_in(client)
    to_sp2 = location(go(client, sp_answers(sp1, to_sp1)))
    to_sp3 = location(go(client, sp_answers(sp2, to_sp2)))
    html = text(go(client, sp_answers(sp3, to_sp3)))
    assert "You are signed out" in html
    assert services_on_the_page(html) == {"Test SP": "signed out", "Library": "signed out",
                                          "Moodle": "signed out"}
    assert "SAMLResponse" not in html  # no requester to go back to


def test_a_forced_sign_in_keeps_the_sessions_services_for_single_logout(app, client, clock):
    """ForceAuthn: the same person signs in again; the SPs signed in to before stay in the
    session, so single logout still reaches them and their own LogoutRequests still match."""
    sp1, auth1 = signed_in_at_sp(app, client, clock)
    device_id, secret = add_totp_device(app, name="Tablet")
    sp2 = make_sp(client, app, base="http://library.test", name="Library")
    response, request_id = sign_in_through_prompt(client, app, sp2, clock, secret, device_id,
                                                  force_authn=True)
    auth2 = sp2.acs_post(response, request_id)
    assert auth2.get_session_index() == auth1.get_session_index()
    logout_url, _ = sp2.logout(auth2.get_nameid(), auth2.get_session_index())
    to_sp1 = location(go(client, logout_url))
    assert OneLogin_Saml2_Logout_Request.get_nameid(request_sent(to_sp1)) == auth1.get_nameid()
