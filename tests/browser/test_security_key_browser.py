"""Security keys and passkeys in Debian's Chromium, with the DevTools Protocol's virtual
authenticators (docs/passkeys.md): a USB security key (CTAP2) and a platform authenticator
(a passkey: resident key, user verification).

One walk, in the order a person meets it: add a security key through "Add a new device" (with a
recovery passcode), sign in to the portal with it, add a passkey; sign in to myUM through SSO with
the passkey (REFEDS MFA); then a copy of the security key whose signature counter went back is
refused at the prompt and audited as a possible clone.

WebAuthn needs a secure context and an RP ID that is a host name: the browser uses
http://localhost:<port> (UM2FA_BASE_URL), which is one. Each phase is a new browser context, so
no session carries over; the keys' credentials move between them as a person's key would
(WebAuthn.getCredentials / addCredential).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import idp_and_myum
from tests.browser.steps import (
    ALICE,
    add_alice,
    assert_clean_console,
    enter_passcode,
    fill_sign_in,
    issue_recovery,
    name_device,
)

pytestmark = pytest.mark.browser

USB = {"protocol": "ctap2", "transport": "usb", "hasResidentKey": False,
       "hasUserVerification": False, "isUserVerified": False, "automaticPresenceSimulation": True}
PLATFORM = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True,
            "automaticPresenceSimulation": True}
KEY, PASSKEY = "Alice's YubiKey", "Alice's passkey"
NO_SHOTS: dict[str, str] = {}


class Authenticator:
    """A virtual authenticator attached to one page (Chrome DevTools Protocol)."""

    def __init__(self, page: Page, options: dict) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.id = self.cdp.send("WebAuthn.addVirtualAuthenticator",
                                {"options": options})["authenticatorId"]

    def credentials(self) -> list[dict]:
        return self.cdp.send("WebAuthn.getCredentials",
                             {"authenticatorId": self.id})["credentials"]

    def add(self, credential: dict) -> None:
        self.cdp.send("WebAuthn.addCredential",
                      {"authenticatorId": self.id, "credential": credential})

    def remove(self) -> None:
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.id})


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with idp_and_myum(tmp_path_factory.mktemp("security-keys"), host="localhost") as both:
        add_alice(both.idp, "--role", "staff", "--email", "alice@um.edu.mo")
        yield both.idp, both.myum, both.idp.env["UM2FA_BASE_URL"]


@pytest.fixture
def new_page(browser):
    contexts = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        return page

    yield make
    for context in contexts:
        context.close()


def portal_sign_in(page: Page, base: str, shots) -> None:
    page.goto(base + "/")
    fill_sign_in(page, shots, ALICE, "sign-in")
    expect(page.get_by_role("heading", name=f"Welcome, {ALICE.name}")).to_be_visible()


def register_key(page: Page, shots, name: str, label: str) -> None:
    """ "Add a new device" past its prompt: "Security key or passkey", register, name it."""
    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    page.get_by_role("button", name="Security key or passkey").click()
    expect(page.get_by_role("heading", name="Add your security key")).to_be_visible()
    shots(f"{label}-register")
    page.get_by_role("button", name="Register your security key").click()
    name_device(page, shots, name, NO_SHOTS)
    shots(f"{label}-added")


def use_key(page: Page, device: str) -> None:
    page.get_by_role("radio", name=device).check()
    page.get_by_role("button", name="Use your security key").click()


def audit_lines(idp) -> list[str]:
    return idp.cli("audit", "alice", "--limit", "200").stdout.splitlines()


def test_security_key_and_passkey_enrol_sign_in_sso_and_a_clone_is_refused(
        servers, new_page, browser, request) -> None:
    from tests.browser.conftest import Shots

    idp, myum, base = servers
    recovery = issue_recovery(idp)

    # 1. The portal: add a security key with the recovery passcode, then sign in with it.
    page = new_page()
    shots = Shots(page, request.node.name)
    usb = Authenticator(page, USB)
    portal_sign_in(page, base, shots)
    page.get_by_role("link", name="Add a new device").click()
    enter_passcode(page, shots, recovery, "recovery")
    register_key(page, shots, KEY, "key")
    page.get_by_role("link", name="Continue to Login").click()
    expect(page.get_by_role("heading", name="Continue to Login")).to_be_visible()
    expect(page.get_by_role("button", name="Send me a Push")).to_have_count(0)
    shots("key-prompt")
    use_key(page, KEY)
    expect(page.get_by_role("heading", name="You are all set!")).to_be_visible()
    shots("key-signed-in")
    [key_credential] = usb.credentials()
    assert key_credential["signCount"] >= 1

    # ... and a passkey on this computer ("Add a new device", just authenticated by the key).
    usb.remove()
    platform = Authenticator(page, PLATFORM)
    page.get_by_role("link", name="Back to the 2FA portal").click()
    page.get_by_role("link", name="Add a new device").click()
    register_key(page, shots, PASSKEY, "passkey")
    [passkey_credential] = platform.credentials()
    assert passkey_credential["isResidentCredential"]
    assert_clean_console(page)
    devices = idp.cli("devices", "list", "alice").stdout
    assert KEY in devices and PASSKEY in devices

    # 2. SSO: myUM, our sign-in, the prompt, "Use your security key" with the passkey.
    page = new_page()
    shots = Shots(page, request.node.name + "-sso")
    Authenticator(page, PLATFORM).add(passkey_credential)
    page.goto(myum.url + "/")
    page.get_by_role("link", name="Sign in").click()
    assert page.url.startswith(base + "/sso/sign-in")
    fill_sign_in(page, shots, ALICE, "sso-sign-in")
    expect(page.get_by_role("heading", name="Signing in to myUM")).to_be_visible()
    shots("sso-prompt")
    use_key(page, PASSKEY)
    page.wait_for_url(myum.url + "/")
    expect(page.locator("#welcome")).to_contain_text("with two-factor authentication")
    released = {row.locator("th").inner_text(): row.locator("td").inner_text()
                for row in page.locator("table tr").all()}
    assert released["AuthnContext"] == "https://refeds.org/profile/mfa"
    shots("sso-signed-in")
    assert_clean_console(page)

    # 3. A copy of the security key whose counter went back: refused, audited as a clone.
    page = new_page()
    shots = Shots(page, request.node.name + "-clone")
    clone = Authenticator(page, USB)
    clone.add({**key_credential, "signCount": 0})
    portal_sign_in(page, base, shots)
    page.get_by_role("link", name="My Settings & Devices").first.click()
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    use_key(page, KEY)
    error = page.locator("#webauthn-error")
    expect(error).to_contain_text("it may have been copied")
    shots("clone-refused")
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    assert page.url.startswith(base + "/prompt")
    lines = audit_lines(idp)
    cloned = [line for line in lines if "\tcloned\t" in line]
    assert cloned and "possible cloned key" in cloned[0] and KEY in cloned[0]
    oks = [line for line in lines if "\tfactor\tok\t" in line]
    assert any(KEY in line for line in oks) and any(PASSKEY in line for line in oks)
