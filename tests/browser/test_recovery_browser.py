"""The recovery portal in Debian's Chromium, steps 1-5 as the device guide words them, then the
passcode it gave adds a new device in the 2FA portal ("Add a new device" -> "Enter a Passcode").
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    DEVICE_SHOTS,
    Person,
    Phone,
    add_authenticator,
    assert_clean_console,
    enter_passcode,
    follow,
    sign_in,
)

pytestmark = pytest.mark.browser

USER, PASSWORD, DOB, ID_LAST4 = "carol", "carol-password-7", "1985-06-07", "B45c"
CAROL = Person(USER, PASSWORD, "Carol Lee")


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
                    "--id-last4", ID_LAST4, "--role", "staff", "--name", CAROL.name)
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
    expect(page.get_by_text(re.compile(r"It expires at \d{1,2}:\d{2}\s[ap]m Macao time"))) \
        .to_be_visible()
    copy = page.locator("button[data-copy=recovery-passcode]")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == passcode
    shots("passcode")

    # The 2FA portal, on campus: sign in -> "Add a new device" -> "Enter a Passcode".
    page.get_by_role("link", name="Go to the 2FA portal").click()
    sign_in(page, live_server, shots, label="portal-", who=CAROL, home_shot="portal-home",
            navigate=False)
    expect(page.get_by_text("You have no device yet")).to_be_visible()
    follow(page, shots, "Add a new device")
    enter_passcode(page, shots, passcode, "enter-passcode")
    add_authenticator(page, shots, Phone(), "Carol's Android", labels={
        **DEVICE_SHOTS, "key": "", "code": "activation-code", "added": "continue-to-login"})

    # The passcode worked once: the recovery portal's answer is spent, and so is the code.
    listing = live_server.cli("devices", "list", USER).stdout
    assert "Carol's Android" in listing and "mobile/android" in listing
    # The one error is Chromium noting the 401 status of the "could not verify" page.
    assert_clean_console(page, allow=("status of 401",))
