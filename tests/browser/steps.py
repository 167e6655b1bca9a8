"""Steps a person takes in the portal, shared by the browser tests (the seed guide's words).

A step that takes screenshots takes them under the labels its caller names, by the step's own
names for its moments (`labels`); a moment the caller leaves out is not photographed. So each
test keeps its own screenshot series while the walk itself is written once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyotp
from playwright.sync_api import Locator, Page, expect

from tests.peers.live import LiveServer
from tests.peers.myum_live import MyumServer

PASSWORD = "correct-horse-9"
NAME = "Alice Chan"
STEP = 30
CSP_MARKERS = ("Content Security Policy", "Refused to")

# Where the portal tests photograph "Add a new device" (type/platform/app, then the
# authenticator's qr/key/code, name and added pages); "" or a missing moment: no screenshot.
DEVICE_SHOTS = {"type": "device-type", "platform": "platform", "app": "install-app",
                "qr": "qr-code", "key": "typed-key", "name": "name-device",
                "added": "device-added"}
APP_SHOTS = {"platform": "platform", "app": "install-app"}


@dataclass(frozen=True)
class Person:
    user: str
    password: str
    name: str


ALICE = Person("alice", PASSWORD, NAME)


@dataclass
class Phone:
    """The authenticator app on the user's devices. A code is accepted once per device, so the
    next use of a device takes the next 30-second step's code, which the server accepts a step
    early (UM2FA_TOTP_DRIFT_STEPS, 1); only a device two steps ahead of the clock waits
    (bounded) for the next step."""

    secrets: dict[str, str] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)

    def code(self, device: str) -> str:
        deadline = time.monotonic() + STEP + 2
        while True:
            current = int(time.time()) // STEP
            step = max(self.used.get(device, -1) + 1, current)
            if step <= current + 1:
                self.used[device] = step
                return pyotp.TOTP(self.secrets[device]).at(step * STEP)
            assert time.monotonic() < deadline, "the TOTP time step did not advance"
            time.sleep(0.2)


def snap(shots, labels: Mapping[str, str], moment: str) -> None:
    if labels.get(moment):
        shots(labels[moment])


def add_alice(server, *extra: str) -> None:
    server.cli("users", "add", "alice", "--password", PASSWORD, "--dob", "2001-02-03",
               "--id-last4", "123A", "--name", NAME, *extra)


def issue_recovery(server, user: str = "alice") -> str:
    """The operator's 9-digit recovery passcode for `user`."""
    recovery = server.cli("recovery", "issue", user).stdout.strip()
    assert re.fullmatch(r"\d{9}", recovery)
    return recovery


def fill_sign_in(page: Page, shots, who: Person, shot: str) -> None:
    """The shared sign-in form (portal and SSO): UMPASS ID and password, then "Sign in"."""
    page.get_by_label("UMPASS ID").fill(who.user)
    page.get_by_label("UMPASS password").fill(who.password)
    shots(shot)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page: Page, server, shots, *, label: str = "", who: Person = ALICE,
            home_shot: str = "", navigate: bool = True) -> None:
    """The portal's sign-in form, then the "Welcome" page (`navigate=False`: already there)."""
    if navigate:
        page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="2FA portal")).to_be_visible()
    fill_sign_in(page, shots, who, f"{label}sign-in")
    expect(page.get_by_role("heading", name=f"Welcome, {who.name}")).to_be_visible()
    if home_shot:
        shots(home_shot)


def follow(page: Page, shots, link: str, *, device: str = "", shot: str = "") -> None:
    """Click `link` and land on the page of that heading; choose `device` if it prompts."""
    page.get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", name=link)).to_be_visible()
    if device:
        page.get_by_role("radio", name=device).check()
    if shot:
        shots(shot)


def enter_passcode(page: Page, shots, code: str, shot: str, *, field_shot: str = "") -> None:
    """ "Enter a Passcode": htmx swaps the field into the prompt in place; type it; Verify.
    (A person with no device finds the field there at once, with no link to click.)"""
    url = page.url
    link = page.get_by_role("link", name="Enter a Passcode")
    if not page.locator("#method input[name=passcode]").count():
        link.click()
    passcode = page.locator("#method input[name=passcode]")
    expect(passcode).to_be_visible()
    assert page.url == url  # swapped in by htmx, not a navigation
    if field_shot:
        shots(field_shot)
    passcode.fill(code)
    shots(shot)
    page.get_by_role("button", name="Verify").click()


def add_device_until_app(page: Page, shots, *, kind: str = "Mobile phone",
                         platform: str = "Android",
                         labels: Mapping[str, str] = APP_SHOTS) -> None:
    """ "Add a new device" from the portal home, already past its prompt: type, platform,
    up to the "Install Duo Mobile" page."""
    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    snap(shots, labels, "type")
    page.get_by_role("button", name=kind).click()
    expect(page.get_by_role("heading", name=f"What type of {kind.lower()} is it?")) \
        .to_be_visible()
    page.get_by_role("radio", name=platform).check()
    snap(shots, labels, "platform")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Install Duo Mobile")).to_be_visible()
    snap(shots, labels, "app")


def name_device(page: Page, shots, name: str, labels: Mapping[str, str]) -> None:
    """ "Give your device a name" -> Save -> "“name” was added"."""
    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible()
    expect(page.get_by_text("Your device is activated.")).to_be_visible()
    page.get_by_label("Device name").fill(name)
    snap(shots, labels, "name")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=f"“{name}” was added")).to_be_visible()
    expect(page.get_by_role("link", name="Continue to Login")).to_be_visible()
    snap(shots, labels, "added")


def add_authenticator(page: Page, shots, phone: Phone, name: str, *, kind: str = "Mobile phone",
                      platform: str = "Android",
                      labels: Mapping[str, str] = DEVICE_SHOTS) -> None:
    """The device steps past the prompt for an authenticator app: type, platform, app, the QR
    code (and the key it holds, shown beside it), the app's code, the name. `phone` learns the
    key under `name`."""
    add_device_until_app(page, shots, kind=kind, platform=platform, labels=labels)
    page.get_by_role("button", name="I have Duo Mobile installed").click()

    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()
    qr = page.get_by_role("img", name="QR code")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 0
    snap(shots, labels, "qr")
    key = page.locator("#secret")
    expect(key).to_be_visible()  # shown plainly, for typing on the phone itself
    snap(shots, labels, "key")
    secret = "".join(key.inner_text().split())
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    phone.secrets[name] = secret
    page.get_by_label("6-digit code from the app").fill(phone.code(name))
    snap(shots, labels, "code")
    page.get_by_role("button", name="Continue").click()
    name_device(page, shots, name, labels)


def continue_to_login(page: Page) -> None:
    page.get_by_role("link", name="Continue to Login").click()
    expect(page.get_by_role("heading", name="Continue to Login")).to_be_visible()


def mark_page(page: Page) -> str:
    """Mark the loaded page (a reload forgets the mark); its address, for assert_in_place."""
    page.evaluate("window.__marker = 1")
    return page.url


def assert_in_place(page: Page, url: str) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert page.url == url


def remove_device(page: Page, shots, item: Locator, name: str, *, url: str,
                  warnings: tuple[str, ...] = (), labels: Mapping[str, str]) -> None:
    """ "Device Options" -> the trash icon "Delete Device" -> the dialog -> "Remove", all in
    place on the page marked at `url`."""
    item.get_by_role("link", name="Device Options").click()
    trash = item.get_by_role("link", name="Delete Device")
    expect(trash.locator("svg")).to_be_visible()  # the trash icon
    snap(shots, labels, "options")
    trash.click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text(f"Remove “{name}”?")
    for warning in warnings:
        expect(dialog).to_contain_text(warning)
    assert_in_place(page, url)
    snap(shots, labels, "confirm")
    last = dialog.get_by_role("checkbox", name="I understand: remove my last device")
    if last.count():  # the last device: an explicit confirmation first
        last.check()
    dialog.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("The device was removed.")
    assert_in_place(page, url)


def assert_clean_console(page: Page, *, allow: tuple[str, ...] = ()) -> None:
    """No CSP violations and no console errors, except those naming one of `allow` (e.g. the
    status of a refused API call the test provoked on purpose)."""
    errors = [e for e in page.console_errors if not any(a in e for a in allow)]
    csp = [e for e in page.console_errors if any(m in e for m in CSP_MARKERS)]
    assert csp == [], f"CSP violations: {csp}"
    assert errors == [], f"console errors: {errors}"


@dataclass
class Servers:
    idp: LiveServer
    myum: MyumServer


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
        enter_passcode(page, shots, phone.code(device), f"{label}-passcode")
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
