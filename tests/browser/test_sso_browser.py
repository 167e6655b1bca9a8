"""The SSO door in Debian's Chromium, off campus, walked as the seed guide's "Off Campus" sections
word it: sign in to myUM through our IdP and the 2FA prompt, enrol a first device with a recovery
passcode, then "Settings" -> "Add a new device" and "Settings" -> "My Settings & Devices" ->
"Device Options" -> "Delete Device" -> "Remove", each time finishing the sign-in to myUM.

Both servers are real subprocesses wired together by their metadata, as scripts/serve does.
The campus is 10.0.0.0/8, so this browser (127.0.0.1) is off campus throughout.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import idp_and_myum
from tests.browser.steps import (
    ALICE,
    Phone,
    Servers,
    add_alice,
    add_authenticator,
    assert_clean_console,
    attributes,
    enter_passcode,
    fill_sign_in,
    finish_at_prompt,
    follow,
    issue_recovery,
    mark_page,
    remove_device,
)
from tests.peers.live import LiveServer

pytestmark = pytest.mark.browser

USER, NAME, EMAIL = ALICE.user, ALICE.name, "alice@um.edu.mo"


@pytest.fixture
def servers(tmp_path):
    with idp_and_myum(tmp_path, campus_networks="10.0.0.0/8", remember_days="7") as both:
        yield both


def sign_in_to_myum(page: Page, servers: Servers, shots, label: str) -> None:
    """myUM -> "Sign in" -> our sign-in page -> UMPASS ID + password -> the 2FA prompt."""
    page.goto(servers.myum.url + "/")
    expect(page.get_by_role("heading", name="myUM")).to_be_visible()
    shots(f"{label}-myum")
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in to myUM")).to_be_visible()
    assert page.url.startswith(servers.idp.url + "/sso/sign-in")
    fill_sign_in(page, shots, ALICE, f"{label}-sign-in")
    expect(page.get_by_role("heading", name="Signing in to myUM")).to_be_visible()
    expect(page.get_by_role("link", name="Settings")).to_be_visible()
    shots(f"{label}-prompt")


def sign_out_of_myum(page: Page, servers: Servers, shots, label: str) -> None:
    """ "Sign out" in myUM: single logout through our IdP, back to myUM signed out."""
    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(servers.myum.url + "/")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator("#welcome")).to_have_count(0)
    shots(f"{label}-signed-out")


def add_device(page: Page, shots, phone: Phone, name: str, *, kind: str, platform: str,
               label: str) -> None:
    """The device steps after authenticating, photographed as `label`-type, -platform, ..."""
    add_authenticator(page, shots, phone, name, kind=kind, platform=platform, labels={
        "type": f"{label}-type", "platform": f"{label}-platform", "app": f"{label}-install",
        "key": f"{label}-key", "name": f"{label}-name", "added": f"{label}-added"})
    page.get_by_role("link", name="Continue to Login").click()


def device_names(server: LiveServer) -> list[str]:
    lines = server.cli("devices", "list", USER).stdout.splitlines()
    return sorted(line.split("\t")[1] for line in lines)


def test_off_campus_sso_enrol_add_and_remove_devices(servers: Servers, page: Page,
                                                      shots) -> None:
    idp = servers.idp
    add_alice(idp, "--role", "staff", "--email", EMAIL)
    recovery = issue_recovery(idp)
    phone = Phone()

    # 1. No device yet: the prompt offers enrolment, which takes the recovery passcode.
    sign_in_to_myum(page, servers, shots, "first")
    expect(page.get_by_text("You have no device for two-factor authentication yet")) \
        .to_be_visible()
    follow(page, shots, "Add a new device", shot="enrol-prompt")
    enter_passcode(page, shots, recovery, "recovery-passcode")
    add_device(page, shots, phone, "Alice's phone", kind="Mobile phone", platform="Android",
               label="phone")
    finish_at_prompt(page, servers, shots, phone, "Alice's phone", "first")
    released = attributes(page)
    assert released["uid"] == USER and released["mail"] == EMAIL
    assert released["displayName"] == NAME
    assert released["eduPersonPrincipalName"] == f"{USER}@um.edu.mo"
    assert released["eduPersonAffiliation"] == "staff, member"
    assert released["AuthnContext"] == "https://refeds.org/profile/mfa"
    assert released["NameID"] and USER not in released["NameID"]

    # 2. Off campus, "Settings" -> "Add a new device", authenticated with the first device.
    sign_out_of_myum(page, servers, shots, "add")
    sign_in_to_myum(page, servers, shots, "add")
    follow(page, shots, "Settings", shot="add-settings")
    follow(page, shots, "Add a new device", device="Alice's phone", shot="add-auth-prompt")
    enter_passcode(page, shots, phone.code("Alice's phone"), "add-auth-passcode")
    add_device(page, shots, phone, "Alice's iPad", kind="Tablet", platform="iOS", label="ipad")
    finish_at_prompt(page, servers, shots, phone, "Alice's iPad", "add")

    # 3. Off campus, "Settings" -> "My Settings & Devices" -> remove the phone.
    sign_out_of_myum(page, servers, shots, "remove")
    sign_in_to_myum(page, servers, shots, "remove")
    follow(page, shots, "Settings", shot="remove-settings")
    follow(page, shots, "My Settings & Devices", device="Alice's phone",
           shot="remove-auth-prompt")
    enter_passcode(page, shots, phone.code("Alice's phone"), "remove-auth-passcode")
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    items = page.locator("li.device")
    expect(items).to_have_count(2)
    shots("remove-list")
    url = mark_page(page)
    remove_device(page, shots, items.filter(has_text="Alice's phone"), "Alice's phone", url=url,
                  labels={"options": "remove-options", "confirm": "remove-confirm"})
    expect(items).to_have_count(1)
    expect(items.locator(".device-name")).to_have_text("Alice's iPad")
    shots("remove-done")
    page.get_by_role("link", name="Back to login").click()
    expect(page.get_by_role("radio", name="Alice's phone")).to_have_count(0)
    finish_at_prompt(page, servers, shots, phone, "Alice's iPad", "remove")

    assert device_names(idp) == ["Alice's iPad"]

    # 3b. A recovery passcode typed in the prompt opens "Add a new device" and nothing else:
    # not "My Settings & Devices", not myUM (no Response is posted on it).
    sign_out_of_myum(page, servers, shots, "recovery")
    second = issue_recovery(idp)
    sign_in_to_myum(page, servers, shots, "recovery")
    acs = servers.myum.url + "/acs"
    posted: list[str] = []
    page.on("request", lambda r: r.url == acs and posted.append(r.url))
    enter_passcode(page, shots, second, "recovery-in-prompt")
    expect(page.get_by_role("heading", name="What type of device are you adding?")) \
        .to_be_visible()
    expect(page.get_by_text("lets you add a new device, nothing else")).to_be_visible()
    shots("recovery-add-only")
    page.goto(idp.url + "/settings")
    expect(page.locator("#prompt-form")).to_be_visible()
    expect(page.locator("#device-list")).to_have_count(0)
    assert posted == []
    page.goto(idp.url + "/sso/prompt")
    finish_at_prompt(page, servers, shots, phone, "Alice's iPad", "recovery")

    # 4. No page broke the CSP (the Response pages posted to myUM's origin); and the portal
    # itself stays on campus, even for this browser's SSO session.
    assert_clean_console(page)
    response = page.goto(idp.url + "/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="You are off campus")).to_be_visible()
    expect(page.get_by_label("UMPASS password")).to_have_count(0)
    expect(page.get_by_role("link", name="My Settings & Devices")).to_have_count(0)
    shots("portal-off-campus")
    assert page.console_errors == [  # the refused page itself, and nothing else
        "Failed to load resource: the server responded with a status of 403 (FORBIDDEN)"]
