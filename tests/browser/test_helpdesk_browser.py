"""The help desk's story in Debian's Chromium (issue 15): alice is locked out and has lost her
phone; she calls the help desk. The help-desk person signs in to the console with a second
factor, finds alice as they type, reads her timeline (the lockout is there), unlocks her,
removes the lost phone and issues a recovery passcode after checking her ID; alice then adds a
new device with it in the portal, as the seed guide says.

One live server; alice and the help-desk person each in their own browser context.
"""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Shots
from tests.browser.steps import (
    ALICE,
    Person,
    Phone,
    add_alice,
    add_authenticator,
    assert_clean_console,
    enter_passcode,
    fill_sign_in,
    follow,
    sign_in,
)
from tests.peers.live import make_live_server

pytestmark = pytest.mark.browser

DESK = Person("hd", "desk-password-9", "Dora Desk")
THRESHOLD = 10


@pytest.fixture
def live_server(tmp_path):
    # ten wrong passcodes and then the right ones within a minute: above the passcode limits
    server = make_live_server(tmp_path, ratelimit_passcode_user="100 per minute",
                              ratelimit_passcode_user_ceiling="100 per minute").start()
    yield server
    server.stop()


@pytest.fixture
def alice_page(browser, request):
    """Alice's own browser (the help desk's is `page`)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.shots = Shots(page, request.node.name + "-alice")
    yield page
    context.close()


def lock_herself_out(page: Page, server) -> None:
    """Alice signs in and types wrong passcodes at the portal's prompt until it locks."""
    sign_in(page, server, page.shots)
    page.goto(server.url + "/prompt?next=settings")
    page.get_by_role("link", name="Enter a Passcode").click()
    passcode = page.locator("#method input[name=passcode]")
    for _ in range(THRESHOLD):
        expect(passcode).to_be_visible()
        passcode.fill("000000")
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and "/prompt" in r.url):
            page.get_by_role("button", name="Verify").click()
        expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("locked")
    page.shots("locked-out")


def console_sign_in(page: Page, server, shots, phone: Phone) -> None:
    page.goto(server.url + "/admin/sign-in")
    expect(page.get_by_role("heading", name="Help-desk console")).to_be_visible()
    fill_sign_in(page, shots, DESK, "console-sign-in")
    expect(page).to_have_url(re.compile(r"/prompt\?next=admin$"))
    enter_passcode(page, shots, phone.code("Desk token"), "console-passcode")
    expect(page.get_by_role("heading", name="Help-desk console")).to_be_visible()
    expect(page.get_by_text("Signed in as hd (helpdesk)")).to_be_visible()
    shots("console-home")


def act(page: Page, form_action: str, reason: str, button: str, *, tick: str = "") -> None:
    """Fill the reason of the action's form (and tick its box), and press its button."""
    form = page.locator(f"form[action$='{form_action}']")
    form.get_by_label("Reason").fill(reason)
    if tick:
        form.get_by_role("checkbox", name=re.compile(tick)).check()
    form.get_by_role("button", name=button).click()


def test_a_locked_out_user_with_a_lost_phone_calls_the_help_desk(live_server, page: Page,
                                                                  alice_page: Page,
                                                                  shots) -> None:
    server = live_server
    add_alice(server, "--email", "alice@example.edu")
    server.cli("devices", "add-totp", "alice", "--name", "Lost phone")
    server.cli("users", "add", DESK.user, "--password", DESK.password, "--dob", "1980-01-01",
               "--id-last4", "456B", "--name", DESK.name, "--role", "staff")
    desk_phone = Phone()
    uri = server.cli("devices", "add-totp", DESK.user, "--name", "Desk token").stdout.strip()
    desk_phone.secrets["Desk token"] = pyotp.parse_uri(uri).secret
    server.cli("admins", "add", DESK.user, "--role", "helpdesk")

    lock_herself_out(alice_page, server)

    # The help desk: the password, then a second factor at the portal's prompt.
    console_sign_in(page, server, shots, desk_phone)

    # "ali": the results appear as they type (htmx, the page stays).
    url = page.url
    page.get_by_label("UMPASS ID, name or email").press_sequentially("ali", delay=50)
    result = page.locator("#user-results").get_by_role("link", name="alice")
    expect(result).to_be_visible()
    assert page.url == url
    shots("search-results")
    result.click()
    expect(page.get_by_role("heading", name="Alice Chan (alice)")).to_be_visible()
    expect(page.locator("#state")).to_contain_text("Locked out until")
    # in Macau time, the zone named once on the page
    expect(page.locator("#state")).to_contain_text(re.compile(r"\d{4}, \d{1,2}:\d{2}\s[ap]m"))
    expect(page.get_by_text("Macao time (GMT+08:00)")).to_be_visible()
    shots("alice-locked")

    # Her timeline: the wrong passcodes and the lockout.
    page.get_by_role("link", name="The full timeline").click()
    expect(page.get_by_role("heading", name="Timeline of alice")).to_be_visible()
    expect(page.get_by_role("cell", name="lockout", exact=True)).to_be_visible()
    page.get_by_label("Outcome").select_option("fail")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="factor", exact=True)).to_have_count(THRESHOLD)
    shots("timeline-failures")
    page.get_by_role("link", name="alice").click()

    # Unlock, with a reason.
    act(page, "/unlock", "Alice called; locked out after losing her phone", "Unlock")
    expect(page.get_by_role("status")).to_contain_text("alice is unlocked")
    expect(page.locator("#state")).to_have_text("Active")
    shots("unlocked")

    # Remove the lost phone: a reason and the confirmation.
    act(page, "/remove", "phone lost on the bus", "Remove", tick="Remove Lost phone")
    expect(page.get_by_role("status")).to_contain_text("The device was removed")
    expect(page.get_by_role("cell", name="No devices.")).to_be_visible()
    shots("phone-removed")

    # A recovery passcode, after checking her UM card; shown once.
    act(page, "/recovery", "new phone; UM card checked at the counter",
        "Issue a recovery passcode", tick="I checked the person's identity document")
    expect(page.get_by_role("heading", name="Recovery passcode for alice")).to_be_visible()
    recovery = page.locator("#recovery-passcode").inner_text().strip()
    assert re.fullmatch(r"\d{9}", recovery)
    shots("recovery-passcode")
    page.get_by_role("link", name="Back to alice").click()
    expect(page.get_by_role("heading", name="Alice Chan (alice)")).to_be_visible()
    assert recovery not in page.content()
    expect(page.locator("table.passcodes")).to_contain_text("unused")
    assert_clean_console(page)

    # Alice adds a new device with that passcode ("Add a new device" -> "Enter a Passcode").
    alice_shots = alice_page.shots
    sign_in(alice_page, server, alice_shots, who=ALICE)
    follow(alice_page, alice_shots, "Add a new device", shot="add-prompt")
    enter_passcode(alice_page, alice_shots, recovery, "recovery-passcode")
    phone = Phone()
    add_authenticator(alice_page, alice_shots, phone, "New phone")
    assert_clean_console(alice_page, allow=("401 (UNAUTHORIZED)",))  # her wrong passcodes

    # The help desk sees it.
    page.reload()
    expect(page.locator("table.devices")).to_contain_text("New phone")
    expect(page.locator("table.devices")).to_contain_text("a recovery passcode")
    expect(page.locator("table.passcodes")).to_contain_text("used")
    shots("alice-new-device")
