"""The on-campus 2FA portal in Debian's Chromium, walked as a person would (the seed guide's words).

Add a device with a recovery passcode, scan (type) the key, log in with it, then rename and
remove it in "My Settings & Devices"; and move the "Default" badge between two devices.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-9"
NAME = "Alice Chan"
STEP = 30
CSP_MARKERS = ("Content Security Policy", "Refused to")


def add_alice(server) -> None:
    server.cli("users", "add", "alice", "--password", PASSWORD, "--dob", "2001-02-03",
               "--id-last4", "123A", "--name", NAME)


def phone_code(secret: str) -> tuple[str, int]:
    """What the phone shows now, and the time step it belongs to (read at one instant)."""
    now = time.time()
    return pyotp.TOTP(secret).at(now), int(now) // STEP


def code_after(secret: str, used_step: int) -> tuple[str, int]:
    """The code the phone shows once the step `used_step` is over (a code works only once)."""
    deadline = time.monotonic() + STEP + 2
    while (found := phone_code(secret))[1] <= used_step:
        assert time.monotonic() < deadline, "the TOTP time step did not advance"
        time.sleep(0.2)
    return found


def sign_in(page: Page, server, shots) -> None:
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="2FA portal")).to_be_visible()
    shots("sign-in")
    page.get_by_label("UMPASS ID").fill("alice")
    page.get_by_label("UMPASS password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Welcome, {NAME}")).to_be_visible()
    shots("portal-home")


def enter_passcode(page: Page, shots, code: str, label: str) -> None:
    """ "Enter a Passcode": htmx swaps the field into the prompt in place; type it; Verify."""
    url = page.url
    page.get_by_role("link", name="Enter a Passcode").click()
    field = page.locator("#method input[name=passcode]")
    expect(field).to_be_visible()
    assert page.url == url  # swapped in by htmx, not a navigation
    shots(f"{label}-passcode-field")
    field.fill(code)
    shots(f"{label}-passcode-typed")
    page.get_by_role("button", name="Verify").click()


def open_settings(page: Page, shots, *, device: str, secret: str, used_step: int) -> None:
    """ "My Settings & Devices" from the portal home; pass the prompt if it asks for one."""
    page.get_by_role("link", name="My Settings & Devices").click()
    device_list, prompt = page.locator("#device-list"), page.locator("#prompt-form")
    expect(device_list.or_(prompt)).to_be_visible()
    if prompt.is_visible():
        shots("settings-prompt")
        page.get_by_role("radio", name=device).check()
        code, _ = code_after(secret, used_step)
        enter_passcode(page, shots, code, "settings")
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    expect(device_list).to_be_visible()
    shots("settings-list")


def assert_in_place(page: Page, url: str) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert page.url == url


def assert_clean_console(page: Page) -> None:
    csp = [e for e in page.console_errors if any(m in e for m in CSP_MARKERS)]
    assert csp == [], f"CSP violations: {csp}"
    assert page.console_errors == [], f"console errors: {page.console_errors}"


def test_add_log_in_rename_and_remove_a_device(live_server, page: Page, shots) -> None:
    add_alice(live_server)
    recovery = live_server.cli("recovery", "issue", "alice").stdout.strip()
    assert re.fullmatch(r"\d{9}", recovery)
    sign_in(page, live_server, shots)

    # "Add a new device" -> "Enter a Passcode" with the 9-digit recovery passcode.
    page.get_by_role("link", name="Add a new device").click()
    expect(page.get_by_role("heading", name="Add a new device")).to_be_visible()
    shots("add-prompt")
    enter_passcode(page, shots, recovery, "recovery")

    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    shots("device-type")
    page.get_by_role("button", name="Tablet").click()
    expect(page.get_by_role("heading", name="What type of tablet is it?")).to_be_visible()
    page.get_by_role("radio", name="iOS").check()
    shots("platform")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Install Duo Mobile")).to_be_visible()
    shots("install-app")
    page.get_by_role("button", name="I have Duo Mobile installed").click()

    # The QR page: an SVG data URI; "Can't scan?" reveals the key a phone would read from it.
    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()
    qr = page.get_by_role("img", name="QR code")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 0
    shots("qr-code")
    secret_box = page.locator("#secret")
    expect(secret_box).to_be_hidden()
    page.get_by_text("Can't scan? Type the key instead").click()
    expect(secret_box).to_be_visible()
    shots("typed-key")
    secret = "".join(secret_box.inner_text().split())
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    activation_code, activation_step = phone_code(secret)
    page.get_by_label("6-digit code from the app").fill(activation_code)
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible()
    expect(page.get_by_text("Your device is activated.")).to_be_visible()
    shots("name-device")
    page.get_by_label("Device name").fill("Alice's iPad")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="“Alice's iPad” was added")).to_be_visible()
    shots("device-added")
    page.get_by_role("link", name="Continue to Login").click()

    # Log in with the new device: the next code it shows (the activation used this step's).
    expect(page.get_by_role("heading", name="Continue to Login")).to_be_visible()
    page.get_by_role("radio", name="Alice's iPad").check()
    shots("choose-device")
    login_code, login_step = code_after(secret, activation_step)
    enter_passcode(page, shots, login_code, "login")
    expect(page.get_by_role("heading", name="You are all set!")).to_be_visible()
    shots("all-set")

    # "My Settings & Devices" from the portal home.
    page.get_by_role("link", name="Back to the 2FA portal").click()
    expect(page).to_have_url(live_server.url + "/")
    today = dt.datetime.now(dt.UTC).date()
    open_settings(page, shots, device="Alice's iPad", secret=secret, used_step=login_step)
    item = page.locator("li.device")
    expect(item).to_have_count(1)
    expect(item.locator(".device-name")).to_have_text("Alice's iPad")
    details = item.locator(".muted").first.inner_text()
    assert "Tablet" in details and "iOS" in details
    added = re.search(r"Added (\d{4}-\d{2}-\d{2})", details)
    assert added and abs(dt.date.fromisoformat(added[1]) - today) <= dt.timedelta(days=1)
    assert re.search(r"Last used \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", details), details
    expect(item.locator(".badge")).to_have_text("Default")

    # "Device Options" -> rename, in place.
    page.evaluate("window.__marker = 1")
    url = page.url
    item.get_by_role("link", name="Device Options").click()
    name_field = item.get_by_label("Name", exact=True)
    expect(name_field).to_have_value("Alice's iPad")
    shots("device-options")
    name_field.fill("Work iPad")
    item.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_have_text("Renamed to “Work iPad”.")
    expect(item.locator(".device-name")).to_have_text("Work iPad")
    assert_in_place(page, url)
    shots("renamed")

    # Trash icon / "Delete Device" -> the last-device warning -> "Remove", in place.
    item.get_by_role("link", name="Device Options").click()
    trash = item.get_by_role("link", name="Delete Device")
    expect(trash.locator("svg")).to_be_visible()  # the trash icon
    trash.click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Remove “Work iPad”?")
    expect(dialog).to_contain_text("This is your last device")
    expect(dialog).to_contain_text("9-digit recovery passcode")
    assert_in_place(page, url)
    shots("confirm-remove")
    dialog.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("The device was removed.")
    expect(page.get_by_text("You have no devices.")).to_be_visible()
    expect(page.locator("li.device")).to_have_count(0)
    assert_in_place(page, url)
    shots("removed")

    assert live_server.cli("devices", "list", "alice").stdout.strip() == ""
    assert_clean_console(page)


def test_make_default_moves_the_badge_in_place(live_server, page: Page, shots) -> None:
    add_alice(live_server)
    secrets = {}
    for name in ("Token A", "Token B"):
        uri = live_server.cli("devices", "add-totp", "alice", "--name", name).stdout.strip()
        assert uri.startswith("otpauth://totp/")
        secrets[name] = parse_qs(urlparse(uri).query)["secret"][0]
    sign_in(page, live_server, shots)

    # Signed in but no second factor yet: "My Settings & Devices" prompts first.
    open_settings(page, shots, device="Token A", secret=secrets["Token A"],
                  used_step=0)
    token_a = page.locator("li.device", has_text="Token A")
    token_b = page.locator("li.device", has_text="Token B")
    expect(token_a.locator(".badge")).to_have_text("Default")
    expect(token_b.locator(".badge")).to_have_count(0)

    page.evaluate("window.__marker = 1")
    url = page.url
    token_b.get_by_role("link", name="Device Options").click()
    expect(token_a.get_by_role("button", name="Make default")).to_have_count(0)
    shots("device-options")
    token_b.get_by_role("button", name="Make default").click()
    expect(page.get_by_role("status")).to_have_text("“Token B” is now your default device.")
    expect(token_b.locator(".badge")).to_have_text("Default")
    expect(token_a.locator(".badge")).to_have_count(0)
    assert_in_place(page, url)
    shots("default-moved")

    listed = live_server.cli("devices", "list", "alice").stdout.splitlines()
    defaults = [line.split("\t")[1] for line in listed if "\tdefault\t" in line]
    assert defaults == ["Token B"]
    assert_clean_console(page)
