"""A real Shibboleth SP (Debian's shibd 3.4 + mod_shib under apache2, tests/peers/shibboleth_sp.py)
signs alice in through our IdP in Chromium, the way a university federation's SPs do (issue 14).

Wired as operators would: the SP gets our signed metadata from `um2fa saml metadata` and checks
its signature against our signing certificate; we register the SP with `um2fa sp add
--metadata` from its own /Shibboleth.sso/Metadata. The SP's attribute map is the one
docs/saml.md gives SP administrators (docs/shibboleth/attribute-map.xml), its attribute policy
Debian's stock one, whose scope checks drop scoped values unless our metadata's shibmd:Scope
matches. Its /secure/ page shows what mod_shib hands the application.

One IdP, one SP and myUM per module, and two walks, each in its own browser context (a TOTP
code is good once per 30 s, so alice has a token for each): a sign-in to the SP, whose page and
Response (as POSTed to the SP's ACS) the first tests read; and a sign-in to the SP and myUM, then
single logout from the SP, which the last two read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

import pyotp
import pytest
from lxml import etree
from playwright.sync_api import Page, Request, expect

from saml.xml import NS, b64decode, parse
from tests.browser.conftest import Shots
from tests.browser.steps import ALICE, Phone, add_alice, attributes, enter_passcode, fill_sign_in
from tests.peers.live import LiveServer, make_live_server
from tests.peers.myum_live import MyumServer
from tests.peers.shibboleth_sp import ShibbolethSP

pytestmark = pytest.mark.browser

SCOPE = "um.edu.mo"
EMAIL = f"alice@{SCOPE}"
MFA = "https://refeds.org/profile/mfa"
TOKENS = ("Token 1234", "Token 5678")


@dataclass
class Federation:
    """Our IdP, a Shibboleth SP and myUM (python3-saml), registered with each other; alice
    (staff) with two TOTP tokens, one for each sign-in of this module (no waiting for the
    next 30-second step)."""

    idp: LiveServer
    sp: ShibbolethSP
    myum: MyumServer
    phone: Phone

    @property
    def idp_entity_id(self) -> str:
        return self.idp.url + "/saml/metadata"


@dataclass
class SignIn:
    """What alice's sign-in through the Shibboleth SP left behind."""

    federation: Federation
    shown: dict[str, str]  # the SP's /secure/ page: what mod_shib exported
    response: etree._Element  # the SAML Response as POSTed to the SP's ACS


def values(shown: dict[str, str], name: str) -> set[str]:
    """A multi-valued attribute as mod_shib exports it: values joined by ';'."""
    return set(shown.get(name, "").split(";")) - {""}


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shib")
    idp = make_live_server(tmp, saml_scope=SCOPE)
    idp.env["UM2FA_BASE_URL"] = idp.url
    myum = MyumServer(instance_dir=tmp / "myum")
    sp = None
    try:
        idp.start()
        sp = ShibbolethSP.for_idp(idp).start()
        sp.register_with(idp)
        myum.register_with(idp)
        myum.start()
        add_alice(idp, "--role", "staff", "--email", EMAIL, "--given-name", "Alice",
                  "--surname", "Chan")
        phone = Phone()
        for token in TOKENS:
            uri = idp.cli("devices", "add-totp", "alice", "--name", token).stdout.strip()
            phone.secrets[token] = pyotp.parse_uri(uri).secret
        yield Federation(idp, sp, myum, phone)
    finally:
        myum.stop()
        if sp:
            sp.stop()
        idp.stop()


def sign_in_to_sp(page: Page, fed: Federation, shots, token: str) -> Request:
    """The SP's /secure/ -> our sign-in -> password -> 2FA prompt -> `token`'s passcode -> the
    SP's page. The POST of the Response to the SP's ACS, as the browser sent it."""
    page.goto(fed.sp.url + "/secure/")
    expect(page.get_by_label("UMPASS ID")).to_be_visible()
    assert page.url.startswith(fed.idp.url + "/sso/sign-in"), page.url
    fill_sign_in(page, shots, ALICE, "sign-in")
    # the name from the SP's metadata (md:Organization, from its metadata generator)
    expect(page.get_by_role("heading", name="Signing in to Shibboleth SP")).to_be_visible()
    page.get_by_role("radio", name=token).check()
    shots("prompt")
    acs = fed.sp.acs_url
    with page.expect_request(lambda r: r.url == acs and r.method == "POST") as posted:
        enter_passcode(page, shots, fed.phone.code(token), "passcode")
    page.wait_for_url(fed.sp.url + "/secure/")
    expect(page.get_by_role("heading", name="Shibboleth SP")).to_be_visible()
    shots("signed-in")
    return posted.value


@pytest.fixture(scope="module")
def signed_in(federation: Federation, browser):
    """alice signs in to the SP's /secure/ in Chromium (the first token)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = context.new_page()
        posted = sign_in_to_sp(page, federation, Shots(page, "shibboleth-sign-in"), TOKENS[0])
        saml_response = parse_qs(posted.post_data or "")["SAMLResponse"][0]
        yield SignIn(federation, attributes(page), parse(b64decode(saml_response)))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{federation.sp.logs()}") from exc
    finally:
        context.close()


def test_shibboleth_sp_signs_alice_in_with_eppn_and_mfa(signed_in: SignIn) -> None:
    """Attributes through shibd's stock policy: eppn passes its scope check (our
    metadata's shibmd:Scope), so REMOTE_USER is alice@um.edu.mo; the MFA context arrives."""
    shown = signed_in.shown
    assert shown["REMOTE_USER"] == f"alice@{SCOPE}", shown
    assert shown["eppn"] == f"alice@{SCOPE}"
    assert shown["Shib-AuthnContext-Class"] == MFA
    assert shown["Shib-Identity-Provider"] == signed_in.federation.idp_entity_id
    assert shown["mail"] == EMAIL and shown["displayName"] == ALICE.name
    # A persistent NameID: IdP!SP!opaque value, without the username in it.
    idp, sp, opaque = shown["persistent-id"].split("!")
    assert (idp, sp) == (signed_in.federation.idp_entity_id, signed_in.federation.sp.entity_id)
    assert opaque and "alice" not in opaque


def test_shibboleth_sp_gets_the_scoped_affiliation(signed_in: SignIn) -> None:
    assert values(signed_in.shown, "affiliation") == {f"staff@{SCOPE}", f"member@{SCOPE}"}


def test_shibboleth_sp_gets_a_pairwise_id(signed_in: SignIn) -> None:
    """SAML V2.0 Subject Identifier Attributes: an opaque value for this SP, @ our scope."""
    pairwise = signed_in.shown.get("pairwise-id", "")
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9=-]{0,126}@" + re.escape(SCOPE), pairwise), \
        signed_in.shown
    assert "alice" not in pairwise.lower()


def test_shibboleth_sp_gets_given_name_and_surname(signed_in: SignIn) -> None:
    assert signed_in.shown.get("givenName") == "Alice", signed_in.shown
    assert signed_in.shown.get("sn") == "Chan"


def test_the_assertion_reaches_the_shibboleth_sp_encrypted(signed_in: SignIn) -> None:
    """The Response POSTed to the SP's ACS holds an EncryptedAssertion (for the SP's key, from
    its metadata) and no plain Assertion; shibd decrypted it (the other tests saw its
    attributes)."""
    response = signed_in.response
    assert response.xpath("//saml:EncryptedAssertion", namespaces=NS), "no EncryptedAssertion"
    assert response.xpath("//saml:Assertion", namespaces=NS) == [], "a plain Assertion"
    # AES-256-GCM: shibd 3.4's metadata lists GCM among the methods it decrypts
    assert response.xpath("//saml:EncryptedAssertion/xenc:EncryptedData/xenc:EncryptionMethod/"
                          "@Algorithm", namespaces=NS) == [
        "http://www.w3.org/2009/xmlenc11#aes256-gcm"]


@dataclass
class Logout:
    """What alice saw after signing in to the SP and to myUM in one browser, then signing out
    at the SP (/Shibboleth.sso/Logout: SAML 2.0 single logout through our IdP)."""

    heading: str  # the SP's page at the end of the logout
    status: str  # the logout status it shows
    secure_after: str  # where the SP's /secure/ leads afterwards
    myum_signed_in_after: bool


@pytest.fixture(scope="module")
def logged_out(federation: Federation, browser):
    fed = federation
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = context.new_page()
        shots = Shots(page, "shibboleth-single-logout")
        sign_in_to_sp(page, fed, shots, TOKENS[1])
        # myUM in the same browser: our session's second factor covers it, no prompt
        page.goto(fed.myum.url + "/")
        page.get_by_role("link", name="Sign in").click()
        page.wait_for_url(fed.myum.url + "/")
        expect(page.locator("#welcome")).to_contain_text("Signed in as")
        shots("myum-signed-in")

        page.goto(fed.sp.url + "/Shibboleth.sso/Logout")
        # our IdP signs myUM out through the browser, then shows what it signed out
        expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
        expect(page.get_by_role("listitem")).to_have_text(["myUM signed out"])
        shots("idp-signed-out")
        page.get_by_role("link", name="Continue").click()
        heading = page.get_by_role("heading", name=re.compile("Logout"))
        expect(heading).to_be_visible()
        shots("sp-logout")
        ended = Logout(heading.inner_text(), page.locator("p", has_text="Status of").inner_text(),
                       "", myum_signed_in_after=True)
        page.goto(fed.sp.url + "/secure/")
        page.wait_for_load_state()
        ended.secure_after = page.url
        page.goto(fed.myum.url + "/")
        shots("myum-after")
        ended.myum_signed_in_after = page.locator("#welcome").count() > 0
        yield ended
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{fed.sp.logs()}") from exc
    finally:
        context.close()


def test_single_logout_at_the_shibboleth_sp_ends_its_session_and_ours(logged_out: Logout,
                                                                      federation: Federation
                                                                      ) -> None:
    """The SP sends its LogoutRequest to our /saml/slo; we end our session and answer; the SP
    reports a global logout, and its /secure/ sends the browser to our sign-in again."""
    assert logged_out.heading == "Global Logout", logged_out
    assert "success" in logged_out.status.lower(), logged_out
    assert logged_out.secure_after.startswith(federation.idp.url + "/sso/sign-in"), logged_out


def test_single_logout_at_the_shibboleth_sp_signs_out_of_myum_too(logged_out: Logout) -> None:
    """Our IdP passes the logout on to the other SPs of the session (myUM, python3-saml)."""
    assert not logged_out.myum_signed_in_after
