"""The recovery portal in Debian's Chromium, steps 1-5 as the device guide words them, then the
passcode it gave adds a new device in the 2FA portal ("Add a new device" -> "Enter a Passcode").
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

USER, PASSWORD, DOB, ID_LAST4 = "carol", "carol-password-7", "1985-06-07", "B45c"


def recovery_identity(page: Page, shots, *, dob: str) -> None:
    """Steps 1 and 2: the role, then UMPASS ID, date of birth, last 4 ID characters."""
    expect(page.get_by_role("heading", name="Recovery portal")).to_be_visible()
    shots("role")
    page.get_by_role("link", name="Staff").click()
    expect(page.get_by_role("heading", name="Verify your identity")).to_be_visible()
    page.get_by_label("UMPASS ID").fill(USER)
    page.get_by_label("Date of birth").fill(dob)
    page.get_by_label("Last 4 characters of ID/Passport Number").fill(ID_LAST4.lower())
    shots("identity")
    page.get_by_role("button", name="Verify").click()


def recovery_password(page: Page, shots, label: str) -> None:
    """Steps 3 and 4: "Get 2FA Passcode" -> Next, then the UMPASS password -> Next."""
    expect(page.get_by_role("heading", name="What do you need?")).to_be_visible()
    page.get_by_role("radio", name="Get 2FA Passcode").check()
    shots(f"{label}-option")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Enter your UMPASS password")).to_be_visible()
    page.get_by_label("UMPASS password").fill(PASSWORD)
    shots(f"{label}-password")
    page.get_by_role("button", name="Next").click()


def test_recover_then_add_a_device_with_the_passcode(live_server, page: Page, shots) -> None:
    live_server.cli("users", "add", USER, "--password", PASSWORD, "--dob", DOB,
                    "--id-last4", ID_LAST4, "--role", "staff", "--name", "Carol Lee")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=live_server.url)

    # Skipping ahead by URL lands on step 1.
    page.goto(live_server.url + "/recovery/password")
    expect(page).to_have_url(live_server.url + "/recovery/")

    # A wrong date of birth: the generic answer, only after the password.
    recovery_identity(page, shots, dob="1985-07-06")
    recovery_password(page, shots, "wrong-dob")
    expect(page.get_by_role("heading", name="We could not verify your identity")).to_be_visible()
    shots("not-verified")
    page.get_by_role("link", name="Start again").click()

    # Steps 1-5 with the right answers.
    recovery_identity(page, shots, dob=DOB)
    recovery_password(page, shots, "right")
    expect(page.get_by_role("heading", name="Your 2FA recovery passcode")).to_be_visible()
    shown = page.locator("#recovery-passcode").inner_text()
    assert re.fullmatch(r"\d{3} \d{3} \d{3}", shown), shown
    passcode = shown.replace(" ", "")
    expect(page.get_by_text("It works once.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"It expires at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"))) \
        .to_be_visible()
    copy = page.locator("button[data-copy=recovery-passcode]")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == passcode
    shots("passcode")

    # The 2FA portal, on campus: sign in -> "Add a new device" -> "Enter a Passcode".
    page.get_by_role("link", name="Go to the 2FA portal").click()
    expect(page.get_by_role("heading", name="2FA portal")).to_be_visible()
    page.get_by_label("UMPASS ID").fill(USER)
    page.get_by_label("UMPASS password").fill(PASSWORD)
    shots("portal-sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("You have no device yet")).to_be_visible()
    shots("portal-home")
    page.get_by_role("link", name="Add a new device").click()
    expect(page.get_by_role("heading", name="Add a new device")).to_be_visible()
    page.get_by_role("link", name="Enter a Passcode").click()
    field = page.locator("#method input[name=passcode]")
    expect(field).to_be_visible()
    field.fill(passcode)
    shots("enter-passcode")
    page.get_by_role("button", name="Verify").click()

    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    shots("device-type")
    page.get_by_role("button", name="Mobile phone").click()
    expect(page.get_by_role("heading", name="What type of mobile phone is it?")).to_be_visible()
    page.get_by_role("radio", name="Android").check()
    shots("platform")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Install Duo Mobile")).to_be_visible()
    shots("install-app")
    page.get_by_role("button", name="I have Duo Mobile installed").click()

    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()
    shots("qr-code")
    page.get_by_text("Can't scan? Type the key instead").click()
    secret_box = page.locator("#secret")
    expect(secret_box).to_be_visible()
    secret = "".join(secret_box.inner_text().split())
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.get_by_label("6-digit code from the app").fill(pyotp.TOTP(secret).at(time.time()))
    shots("activation-code")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible()
    page.get_by_label("Device name").fill("Carol's Android")
    shots("name-device")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Continue to Login")).to_be_visible()
    shots("continue-to-login")

    # The passcode worked once: the recovery portal's answer is spent, and so is the code.
    listing = live_server.cli("devices", "list", USER).stdout
    assert "Carol's Android" in listing and "mobile/android" in listing
    # The one error is Chromium noting the 401 status of the "could not verify" page.
    others = [e for e in page.console_errors if "status of 401" not in e]
    assert others == [], f"console errors (CSP included): {others}"
