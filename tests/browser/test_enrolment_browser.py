"""Issue 17, "Enrolment without friction", in Debian's Chromium (one live server).

Each failed on the code before it: the first login right after activation was refused
("already been used ... Wait for the next one"); the key hid behind "Can't scan?" with no way
to open the app on the phone itself; no "Back" or "Cancel"; a user without a device clicked
"Enter a Passcode" first.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    PASSWORD,
    STEP,
    Person,
    add_alice,
    assert_clean_console,
    continue_to_login,
    issue_recovery,
    sign_in,
)
from tests.peers.live import make_live_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = make_live_server(tmp_path_factory.mktemp("enrolment")).start()
    yield live
    live.stop()


def _step_up_without_a_device(page: Page, recovery: str) -> None:
    """ "Add a new device": no device yet, so the passcode field is there at once."""
    page.get_by_role("link", name="Add a new device").click()
    expect(page.get_by_role("heading", name="Add a new device")).to_be_visible()
    field = page.locator("#method input[name=passcode]")
    expect(field).to_be_visible()  # no click on "Enter a Passcode"
    expect(field).to_be_focused()
    field.fill(recovery)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()


def _early_in_a_step() -> None:
    """Wait (at most one step) until the current 30-second step has 20 s left, so that the
    activation and the login fall in the same step, as they do for a quick person."""
    while time.time() % STEP > 10:
        time.sleep(0.5)


def test_activate_continue_to_login_and_the_current_code_signs_in_at_once(server, page: Page,
                                                                          shots) -> None:
    add_alice(server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    sign_in(page, server, shots)
    _step_up_without_a_device(page, issue_recovery(server))

    # Back and Cancel on every step: Back from the platform returns to the type.
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    page.get_by_role("button", name="Mobile phone").click()
    expect(page.get_by_role("link", name="Back")).to_be_visible()
    page.get_by_role("link", name="Back").click()
    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    page.get_by_role("button", name="Mobile phone").click()
    page.get_by_role("radio", name="Android").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="I have Duo Mobile installed").click()
    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()

    # On the phone itself: "Open in authenticator app", and the key shown plainly in groups
    # of 4, with "Copy".
    opener = page.get_by_role("link", name="Open in authenticator app")
    href = opener.get_attribute("href") or ""
    assert href.startswith("otpauth://totp/"), href
    key = page.locator("#secret")
    expect(key).to_be_visible()
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", key.inner_text().strip())
    secret = "".join(key.inner_text().split())
    assert f"secret={secret}" in href
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shots("activate-key-and-open-link")
    expect(page.get_by_role("link", name="Back")).to_be_visible()

    _early_in_a_step()
    totp = pyotp.TOTP(secret)
    activated_at = time.time()
    page.get_by_label("6-digit code from the app").fill(totp.at(activated_at))
    page.get_by_role("button", name="Continue").click()

    # A sensible default name, prefilled; Cancel (no Back once activated).
    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible()
    expect(page.get_by_label("Device name")).to_have_value("Android mobile phone")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    expect(page.get_by_role("link", name="Back")).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    continue_to_login(page)

    # The code the app shows now (the activation's step): signed in, no waiting.
    page.get_by_role("radio", name="Android mobile phone").check()
    page.get_by_role("link", name="Enter a Passcode").click()
    now = time.time()
    assert int(now) // STEP == int(activated_at) // STEP, "the test was too slow"
    page.locator("#method input[name=passcode]").fill(totp.at(now))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="You are all set!")).to_be_visible()
    shots("signed-in-at-once")
    # the audit records the login as covered by the activation
    [login] = [line.split("\t") for line in server.cli("audit", "alice").stdout.splitlines()
               if "\tfactor\t" in line and "totp" in line]
    assert login[3] == "ok" and login[-1] == "totp:activation", login
    assert_clean_console(page)


def test_cancel_drops_the_device_being_added(server, page: Page, shots) -> None:
    bob = Person("bob", PASSWORD, "Bob Lei")
    server.cli("users", "add", "bob", "--password", PASSWORD, "--dob", "2000-01-02",
               "--id-last4", "456B", "--name", bob.name)
    sign_in(page, server, shots, who=bob)
    _step_up_without_a_device(page, issue_recovery(server, "bob"))
    page.get_by_role("button", name="Tablet").click()
    page.get_by_role("radio", name="iOS").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="I have Duo Mobile installed").click()
    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name=f"Welcome, {bob.name}")).to_be_visible()
    assert server.cli("devices", "list", "bob").stdout.strip() == ""
    assert_clean_console(page)
