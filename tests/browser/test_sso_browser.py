"""The SSO door in Debian's Chromium, off campus, walked as the seed guide's "Off Campus" sections
word it: sign in to myUM through our IdP and the 2FA prompt, enrol a first device with a recovery
passcode, then "Settings" -> "Add a new device" and "Settings" -> "My Settings & Devices" ->
"Device Options" -> "Delete Device" -> "Remove", each time finishing the sign-in to myUM.

Both servers are real subprocesses wired together by their metadata, as scripts/serve does.
The campus is 10.0.0.0/8, so this browser (127.0.0.1) is off campus throughout.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.myum_live import MyumServer
from tests.live import LiveServer, make_live_server

pytestmark = pytest.mark.browser

USER, PASSWORD, NAME, EMAIL = "alice", "correct-horse-9", "Alice Chan", "alice@um.edu.mo"
STEP = 30
CSP_MARKERS = ("Content Security Policy", "Refused to")


@dataclass
class Servers:
    idp: LiveServer
    myum: MyumServer


@pytest.fixture
def servers(tmp_path):
    idp = make_live_server(tmp_path, campus_networks="10.0.0.0/8", remember_days="7")
    idp.env["UM2FA_BASE_URL"] = idp.url
    myum = MyumServer(instance_dir=tmp_path / "myum")
    try:
        idp.start()
        myum.register_with(idp)
        myum.start()
        yield Servers(idp, myum)
    finally:
        myum.stop()
        idp.stop()


@dataclass
class Phone:
    """The authenticator app on the user's devices. A code is accepted once per device, so the
    next use of a device waits (bounded) for the next 30-second step, as a person would."""

    secrets: dict[str, str] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)

    def code(self, device: str) -> str:
        deadline = time.monotonic() + STEP + 2
        while True:
            now = time.time()
            step = int(now) // STEP
            if step > self.used.get(device, -1):
                self.used[device] = step
                return pyotp.TOTP(self.secrets[device]).at(now)
            assert time.monotonic() < deadline, "the TOTP time step did not advance"
            time.sleep(0.2)


def enter_passcode(page: Page, shots, code: str, label: str) -> None:
    """ "Enter a Passcode": htmx swaps the field into the prompt in place; type it; Verify."""
    url = page.url
    page.get_by_role("link", name="Enter a Passcode").click()
    passcode = page.locator("#method input[name=passcode]")
    expect(passcode).to_be_visible()
    assert page.url == url  # swapped in by htmx, not a navigation
    passcode.fill(code)
    shots(f"{label}-passcode")
    page.get_by_role("button", name="Verify").click()


def sign_in_to_myum(page: Page, servers: Servers, shots, label: str) -> None:
    """myUM -> "Sign in" -> our sign-in page -> UMPASS ID + password -> the 2FA prompt."""
    page.goto(servers.myum.url + "/")
    expect(page.get_by_role("heading", name="myUM")).to_be_visible()
    shots(f"{label}-myum")
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in to myUM")).to_be_visible()
    assert page.url.startswith(servers.idp.url + "/sso/sign-in")
    page.get_by_label("UMPASS ID").fill(USER)
    page.get_by_label("UMPASS password").fill(PASSWORD)
    shots(f"{label}-sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Signing in to myUM")).to_be_visible()
    expect(page.get_by_role("link", name="Settings")).to_be_visible()
    shots(f"{label}-prompt")


def finish_at_prompt(page: Page, servers: Servers, shots, phone: Phone, device: str,
                     label: str) -> None:
    """Choose the device, "Enter a Passcode", and land back on myUM signed in."""
    expect(page.get_by_role("heading", name="Signing in to myUM")).to_be_visible()
    remember = page.get_by_role("checkbox", name="Remember me for 7 days")
    expect(remember).to_be_visible()
    expect(remember).not_to_be_checked()
    page.get_by_role("radio", name=device).check()
    shots(f"{label}-choose-device")
    # The Response page posts itself to myUM's ACS (static/js/app.js, form[data-autosubmit]).
    acs = servers.myum.url + "/acs"
    with page.expect_request(lambda r: r.url == acs and r.method == "POST") as posted:
        enter_passcode(page, shots, phone.code(device), label)
    assert "SAMLResponse=" in (posted.value.post_data or "")
    page.wait_for_url(servers.myum.url + "/")
    welcome = page.locator("#welcome")
    expect(welcome).to_contain_text(f"Signed in as {NAME}")
    expect(welcome).to_contain_text("with two-factor authentication")
    shots(f"{label}-signed-in")


def attributes(page: Page) -> dict[str, str]:
    rows = page.locator("table tr")
    return {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").inner_text()
            for i in range(rows.count())}


def sign_out_of_myum(page: Page, servers: Servers, shots, label: str) -> None:
    """ "Sign out" in myUM: single logout through our IdP, back to myUM signed out."""
    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(servers.myum.url + "/")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator("#welcome")).to_have_count(0)
    shots(f"{label}-signed-out")


def add_device(page: Page, shots, phone: Phone, *, kind: str, platform: str, name: str,
               label: str) -> None:
    """The device steps after authenticating: type, platform, app, key, code, name."""
    expect(page.get_by_role("heading", name="What type of device are you adding?")) \
        .to_be_visible()
    shots(f"{label}-type")
    page.get_by_role("button", name=kind).click()
    expect(page.get_by_role("heading", name=re.compile(r"What type of .* is it\?"))) \
        .to_be_visible()
    page.get_by_role("radio", name=platform).check()
    shots(f"{label}-platform")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("button", name="I have Duo Mobile installed")).to_be_visible()
    shots(f"{label}-install")
    page.get_by_role("button", name="I have Duo Mobile installed").click()

    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    page.get_by_text("Can't scan? Type the key instead").click()
    key = page.locator("#secret")
    expect(key).to_be_visible()
    shots(f"{label}-key")
    secret = "".join(key.inner_text().split())
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    phone.secrets[name] = secret
    page.get_by_label("6-digit code from the app").fill(phone.code(name))
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible()
    page.get_by_label("Device name").fill(name)
    shots(f"{label}-name")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=f"“{name}” was added")).to_be_visible()
    shots(f"{label}-added")
    page.get_by_role("link", name="Continue to Login").click()


def device_names(server: LiveServer) -> list[str]:
    lines = server.cli("devices", "list", USER).stdout.splitlines()
    return sorted(line.split("\t")[1] for line in lines)


def test_off_campus_sso_enrol_add_and_remove_devices(servers: Servers, page: Page,
                                                      shots) -> None:
    idp = servers.idp
    idp.cli("users", "add", USER, "--password", PASSWORD, "--dob", "2001-02-03",
            "--id-last4", "123A", "--role", "staff", "--name", NAME, "--email", EMAIL)
    recovery = idp.cli("recovery", "issue", USER).stdout.strip()
    assert re.fullmatch(r"\d{9}", recovery)
    phone = Phone()

    # 1. No device yet: the prompt offers enrolment, which takes the recovery passcode.
    sign_in_to_myum(page, servers, shots, "first")
    expect(page.get_by_text("You have no device for two-factor authentication yet")) \
        .to_be_visible()
    page.get_by_role("link", name="Add a new device").click()
    expect(page.get_by_role("heading", name="Add a new device")).to_be_visible()
    shots("enrol-prompt")
    enter_passcode(page, shots, recovery, "recovery")
    add_device(page, shots, phone, kind="Mobile phone", platform="Android",
               name="Alice's phone", label="phone")
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
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    shots("add-settings")
    page.get_by_role("link", name="Add a new device").click()
    expect(page.get_by_role("heading", name="Add a new device")).to_be_visible()
    page.get_by_role("radio", name="Alice's phone").check()
    shots("add-auth-prompt")
    enter_passcode(page, shots, phone.code("Alice's phone"), "add-auth")
    add_device(page, shots, phone, kind="Tablet", platform="iOS", name="Alice's iPad",
               label="ipad")
    finish_at_prompt(page, servers, shots, phone, "Alice's iPad", "add")

    # 3. Off campus, "Settings" -> "My Settings & Devices" -> remove the phone.
    sign_out_of_myum(page, servers, shots, "remove")
    sign_in_to_myum(page, servers, shots, "remove")
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    shots("remove-settings")
    page.get_by_role("link", name="My Settings & Devices").click()
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    page.get_by_role("radio", name="Alice's phone").check()
    shots("remove-auth-prompt")
    enter_passcode(page, shots, phone.code("Alice's phone"), "remove-auth")
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    items = page.locator("li.device")
    expect(items).to_have_count(2)
    shots("remove-list")
    page.evaluate("window.__marker = 1")
    url = page.url
    doomed = items.filter(has_text="Alice's phone")
    doomed.get_by_role("link", name="Device Options").click()
    expect(doomed.get_by_role("link", name="Delete Device")).to_be_visible()
    shots("remove-options")
    doomed.get_by_role("link", name="Delete Device").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Remove “Alice's phone”?")
    shots("remove-confirm")
    dialog.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("The device was removed.")
    expect(items).to_have_count(1)
    expect(items.locator(".device-name")).to_have_text("Alice's iPad")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert page.url == url
    shots("remove-done")
    page.get_by_role("link", name="Back to login").click()
    expect(page.get_by_role("radio", name="Alice's phone")).to_have_count(0)
    finish_at_prompt(page, servers, shots, phone, "Alice's iPad", "remove")

    assert device_names(idp) == ["Alice's iPad"]

    # 4. No page broke the CSP (the Response pages posted to myUM's origin); and the portal
    # itself stays on campus, even for this browser's SSO session.
    csp = [e for e in page.console_errors if any(m in e for m in CSP_MARKERS)]
    assert csp == [], f"CSP violations: {csp}"
    assert page.console_errors == [], f"console errors: {page.console_errors}"
    response = page.goto(idp.url + "/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="You are off campus")).to_be_visible()
    expect(page.get_by_label("UMPASS password")).to_have_count(0)
    expect(page.get_by_role("link", name="My Settings & Devices")).to_have_count(0)
    shots("portal-off-campus")
    assert page.console_errors == [  # the refused page itself, and nothing else
        "Failed to load resource: the server responded with a status of 403 (FORBIDDEN)"]
