"""Issue 17, accessibility beyond axe, in Debian's Chromium (one live server for the module).

"Add a new device" walked with the keyboard alone; where the focus goes after the htmx swaps of
"My Settings & Devices" ("Device Options", the "Remove" confirmation, Escape, removal); the
step bars' aria-current="step"; errors tied to their fields; a visible focus ring.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.steps import (
    PASSWORD,
    Person,
    Phone,
    assert_clean_console,
    enter_passcode,
    issue_recovery,
    sign_in,
)
from tests.peers.live import make_live_server

pytestmark = pytest.mark.browser

TABS = 25  # at most this many Tab presses to reach anything on these pages


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = make_live_server(tmp_path_factory.mktemp("keyboard")).start()
    yield live
    live.stop()


def add_user(server, who: Person) -> None:
    server.cli("users", "add", who.user, "--password", who.password, "--dob", "2001-02-03",
               "--id-last4", "123A", "--role", "staff", "--name", who.name)


def is_focused(target: Locator) -> bool:
    return target.evaluate("e => e === document.activeElement")


def tab_to(page: Page, target: Locator, *, key: str = "Tab") -> int:
    """Press Tab (or Shift+Tab) until `target` has the focus; how many presses it took."""
    for presses in range(1, TABS + 1):
        page.keyboard.press(key)
        if is_focused(target):
            return presses
    raise AssertionError(f"{TABS} presses of {key} never reached {target}")


def focus_is_not_lost(page: Page) -> None:
    assert page.evaluate("document.activeElement && document.activeElement !== document.body"), \
        "the focus fell back to <body>"


def described_by(field: Locator) -> str:
    """The text of what aria-describedby names, as a screen reader reads it after the label."""
    return field.evaluate("""e => (e.getAttribute('aria-describedby') || '').split(/\\s+/)
        .filter(Boolean).map(id => document.getElementById(id).textContent.trim()).join(' | ')""")


def assert_invalid(field: Locator, error: str | re.Pattern) -> None:
    expect(field).to_have_attribute("aria-invalid", "true")
    words = described_by(field)
    assert (error.search(words) if isinstance(error, re.Pattern) else error in words), words


def assert_step(page: Page, current: str, done: tuple[str, ...] = ()) -> None:
    """Exactly one step is aria-current="step"; the steps before it read as completed."""
    steps = page.locator("ol.steps")
    expect(steps.locator("li[aria-current=step]")).to_have_count(1)
    expect(steps.locator("li[aria-current=step]")).to_have_text(current)
    for label in done:
        expect(steps.locator("li", has_text=label)).to_contain_text(f"{label} (completed)")
    expect(steps.locator(".visually-hidden")).to_have_count(len(done))


def test_add_a_device_with_the_keyboard_alone(server, page: Page, shots) -> None:
    """Sign in, "Add a new device", type, platform, app, activate, name, "Continue to Login":
    Tab, Shift+Tab, Enter, Space and typing only; errors on the way are tied to their fields."""
    dana = Person("dana", PASSWORD, "Dana Ho")
    add_user(server, dana)
    recovery = issue_recovery(server, "dana")
    keys = page.keyboard

    # Sign in: the UMPASS ID field has the focus; a wrong password is the form's error, tied
    # to both fields, and the focus is back on the first of them.
    page.goto(server.url + "/")
    username = page.get_by_label("UMPASS ID")
    expect(username).to_be_focused()
    keys.type(dana.user)
    keys.press("Tab")
    expect(page.get_by_label("UMPASS password")).to_be_focused()
    keys.type("not-the-password")
    keys.press("Enter")
    expect(page.locator("#form-error")).to_contain_text("Incorrect")
    expect(username).to_be_focused()
    for field in (username, page.get_by_label("UMPASS password")):
        assert_invalid(field, "Incorrect")
    shots("sign-in-error")
    keys.press("Tab")
    keys.type(dana.password)
    keys.press("Enter")
    expect(page.get_by_role("heading", name=f"Welcome, {dana.name}")).to_be_visible()

    # "Add a new device": no device yet, so the passcode field has the focus at once. A wrong
    # passcode is the field's error, shown next to it; the field has the focus again.
    assert tab_to(page, page.get_by_role("link", name="Add a new device")) <= 4
    keys.press("Enter")
    passcode = page.locator("#passcode")
    expect(passcode).to_be_focused()
    keys.type("000000000")
    keys.press("Enter")
    expect(page.locator("#passcode-error")).to_be_visible()
    expect(passcode).to_be_focused()
    assert_invalid(passcode, re.compile("passcode", re.I))
    shots("passcode-error")
    keys.type(recovery)
    keys.press("Enter")

    # The type: Tab to "Mobile phone", Enter.
    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    assert_step(page, "Device")
    tab_to(page, page.get_by_role("button", name="Mobile phone"))
    keys.press("Enter")

    # The platform: Tab into the radio group, Space to choose, Tab to "Continue"; Shift+Tab
    # goes back to the chosen radio.
    expect(page.get_by_role("heading", name="What type of mobile phone is it?")).to_be_visible()
    assert_step(page, "Platform", done=("Device",))
    ios = page.get_by_role("radio", name="iOS")
    tab_to(page, ios)
    keys.press("Space")
    expect(ios).to_be_checked()
    keys.press("Tab")
    expect(page.get_by_role("button", name="Continue")).to_be_focused()
    keys.press("Shift+Tab")
    expect(ios).to_be_focused()
    keys.press("Tab")
    keys.press("Enter")

    expect(page.get_by_role("heading", name="Install Duo Mobile")).to_be_visible()
    assert_step(page, "App", done=("Device", "Platform"))
    tab_to(page, page.get_by_role("button", name="I have Duo Mobile installed"))
    keys.press("Enter")

    # Activate: the key the phone would read; Tab past "Open in authenticator app" and "Copy"
    # to the code field.
    expect(page.get_by_role("heading", name="Activate your device")).to_be_visible()
    assert_step(page, "Scan", done=("Device", "Platform", "App"))
    phone = Phone({"phone": "".join(page.locator("#secret").inner_text().split())})
    tab_to(page, page.get_by_label("6-digit code from the app"))
    keys.type(phone.code("phone"))
    keys.press("Enter")

    # Name: the suggested name replaced, Enter.
    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible()
    assert_step(page, "Name", done=("Device", "Platform", "App", "Scan"))
    name = page.get_by_label("Device name")
    tab_to(page, name)
    keys.press("Control+A")
    keys.type("Keyboard phone")
    keys.press("Enter")

    expect(page.get_by_role("heading", name="“Keyboard phone” was added")).to_be_visible()
    tab_to(page, page.get_by_role("link", name="Continue to Login"))
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Continue to Login")).to_be_visible()
    shots("continue-to-login")
    assert "Keyboard phone" in server.cli("devices", "list", "dana").stdout
    assert_clean_console(page, allow=("status of 401",))  # the wrong password and passcode


def test_focus_follows_the_device_list_swaps(server, page: Page, shots) -> None:
    """ "Device Options" -> the name field; "Delete Device" -> the dialog; Escape or "Cancel"
    -> back to "Delete Device"; "Remove" -> the notice, never <body>; a rename error -> the
    field. The focus ring is visible on what Tab reaches."""
    erin = Person("erin", PASSWORD, "Erin Wu")
    add_user(server, erin)
    phone = Phone()
    for device in ("Token A", "Token B"):
        uri = server.cli("devices", "add-totp", "erin", "--name", device).stdout.strip()
        phone.secrets[device] = parse_qs(urlparse(uri).query)["secret"][0]
    sign_in(page, server, shots, who=erin)
    page.get_by_role("link", name="My Settings & Devices").click()
    page.get_by_role("radio", name="Token A").check()
    enter_passcode(page, shots, phone.code("Token A"), "settings-passcode")
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    keys = page.keyboard

    token_b = page.locator("li.device", has_text="Token B")
    options = token_b.get_by_role("link", name="Device Options")
    options.focus()
    keys.press("Enter")
    name = token_b.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    expect(token_b.get_by_role("group", name="Device Options Token B")).to_be_visible()

    # A rename to nothing: the error next to the field, tied to it, the field focused.
    keys.press("Control+A")
    keys.press("Backspace")
    page.evaluate("document.querySelector('#device-list input[name=name]').required = false")
    keys.press("Enter")
    name = token_b.get_by_label("Name", exact=True)
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()
    assert_invalid(name, "Give the device a name.")
    shots("rename-error")

    # "Delete Device" opens the dialog, which takes the focus; Escape closes it and gives the
    # focus back to "Delete Device".
    delete = token_b.get_by_role("link", name="Delete Device")
    tab_to(page, delete)
    keys.press("Enter")
    dialog = page.get_by_role("alertdialog", name="Remove “Token B”?")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".confirm-title")).to_be_focused()
    shots("dialog")
    keys.press("Escape")
    expect(dialog).to_have_count(0)
    expect(delete).to_be_focused()

    # "Cancel" does the same.
    keys.press("Enter")
    expect(dialog.locator(".confirm-title")).to_be_focused()
    tab_to(page, dialog.get_by_role("link", name="Cancel"))
    keys.press("Enter")
    expect(dialog).to_have_count(0)
    expect(delete).to_be_focused()

    # The focus ring: 3px, not "none", on what Tab reached (a link styled as a button).
    ring = delete.evaluate("""e => { const s = getComputedStyle(e);
        return [e.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth)]; }""")
    assert ring[0] and ring[1] != "none" and ring[2] >= 2, ring

    # "Remove": the device goes, and the notice takes the focus.
    keys.press("Enter")
    tab_to(page, dialog.get_by_role("button", name="Remove"))
    keys.press("Enter")
    notice = page.get_by_role("status")
    expect(notice).to_have_text("The device was removed.")
    expect(notice).to_be_focused()
    expect(page.locator("li.device", has_text="Token B")).to_have_count(0)
    focus_is_not_lost(page)
    shots("removed")

    # Tab from there: the ring shows on the next link and on a field.
    keys.press("Tab")
    focused = page.evaluate("""() => { const e = document.activeElement,
        s = getComputedStyle(e); return [e.matches(':focus-visible'), s.outlineStyle,
        parseFloat(s.outlineWidth), e.textContent.trim()]; }""")
    assert focused[0] and focused[1] != "none" and focused[2] >= 2, focused
    keys.press("Enter")  # "Device Options" of Token A
    name = page.locator("li.device", has_text="Token A").get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    width = name.evaluate("e => parseFloat(getComputedStyle(e).outlineWidth)")
    assert width >= 2, width
    assert server.cli("devices", "list", "erin").stdout.count("Token") == 1
    assert_clean_console(page, allow=("status of 400",))  # the refused rename


def test_recovery_steps_and_field_errors(server, page: Page, shots) -> None:
    """The recovery portal's step bar moves; each empty field's error is next to it, tied to
    it, and the first field has the focus."""
    page.goto(server.url + "/recovery/")
    assert_step(page, "Role")
    page.get_by_role("link", name="Staff").click()
    expect(page.get_by_role("heading", name="Verify your identity")).to_be_visible()
    assert_step(page, "Identity", done=("Role",))
    page.get_by_role("button", name="Verify").click()
    username = page.get_by_label("UMPASS ID")
    expect(username).to_be_focused()
    assert_invalid(username, "Enter your UMPASS ID.")
    assert_invalid(page.get_by_label("Date of birth"), "Enter your date of birth.")
    last4 = page.get_by_label("Last 4 characters of ID/Passport Number")
    assert_invalid(last4, "Enter the last 4 characters")
    assert "For example" in described_by(last4)  # the hint too
    expect(page.locator("#dob-error")).to_have_text("Enter your date of birth.")
    shots("identify-errors")
    # the error sits next to its field: right before it in the form
    assert page.evaluate("document.getElementById('dob-error').nextElementSibling.id") == "dob"
    assert_clean_console(page, allow=("status of 400",))  # the empty form

