"""The on-campus 2FA portal in Debian's Chromium, walked as a person would (the seed guide's words).

Add a device with a recovery passcode, scan (type) the key, log in with it, then rename and
remove it in "My Settings & Devices"; and move the "Default" badge between two devices.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    Phone,
    add_alice,
    add_authenticator,
    assert_clean_console,
    assert_in_place,
    continue_to_login,
    enter_passcode,
    follow,
    issue_recovery,
    mark_page,
    remove_device,
    sign_in,
)

pytestmark = pytest.mark.browser


def passcode(page: Page, shots, code: str, label: str) -> None:
    """ "Enter a Passcode", photographed before and after typing."""
    enter_passcode(page, shots, code, f"{label}-passcode-typed",
                   field_shot=f"{label}-passcode-field")


def open_settings(page: Page, shots, phone: Phone, device: str) -> None:
    """ "My Settings & Devices" from the portal home; pass the prompt if it asks for one."""
    page.get_by_role("link", name="My Settings & Devices").click()
    device_list, prompt = page.locator("#device-list"), page.locator("#prompt-form")
    expect(device_list.or_(prompt)).to_be_visible()
    if prompt.is_visible():
        shots("settings-prompt")
        page.get_by_role("radio", name=device).check()
        passcode(page, shots, phone.code(device), "settings")
    expect(page.get_by_role("heading", name="My Settings & Devices")).to_be_visible()
    expect(device_list).to_be_visible()
    shots("settings-list")


def test_add_log_in_rename_and_remove_a_device(live_server, page: Page, shots) -> None:
    add_alice(live_server)
    recovery = issue_recovery(live_server)
    sign_in(page, live_server, shots, home_shot="portal-home")

    # "Add a new device" -> "Enter a Passcode" with the 9-digit recovery passcode; the QR page
    # is an SVG data URI, and the key a phone would read from it is shown beside it.
    follow(page, shots, "Add a new device", shot="add-prompt")
    passcode(page, shots, recovery, "recovery")
    phone = Phone()
    add_authenticator(page, shots, phone, "Alice's iPad", kind="Tablet", platform="iOS")
    continue_to_login(page)

    # Log in with the new device: the next code it shows (the activation used this step's).
    page.get_by_role("radio", name="Alice's iPad").check()
    shots("choose-device")
    passcode(page, shots, phone.code("Alice's iPad"), "login")
    expect(page.get_by_role("heading", name="You are all set!")).to_be_visible()
    shots("all-set")

    # "My Settings & Devices" from the portal home.
    page.get_by_role("link", name="Back to the 2FA portal").click()
    expect(page).to_have_url(live_server.url + "/")
    today = dt.datetime.now(dt.UTC).date()
    open_settings(page, shots, phone, "Alice's iPad")
    item = page.locator("li.device")
    expect(item).to_have_count(1)
    expect(item.locator(".device-name")).to_have_text("Alice's iPad")
    details = item.locator(".muted").first.inner_text()
    assert "Tablet" in details and "iOS" in details
    added = re.search(r"Added (\d{1,2} \w+ \d{4})", details)  # in Macau time (en_MO)
    assert added, details
    assert abs(dt.datetime.strptime(added[1], "%d %B %Y").date() - today) <= dt.timedelta(days=1)
    assert re.search(r"Last used \d{1,2} \w{3} \d{4}, \d{1,2}:\d{2}\s[ap]m", details), details
    expect(item.locator(".badge")).to_have_text("Default")

    # "Device Options" -> rename, in place.
    url = mark_page(page)
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
    remove_device(page, shots, item, "Work iPad", url=url, labels={"confirm": "confirm-remove"},
                  warnings=("This is your last device", "9-digit recovery passcode"))
    expect(page.get_by_text("You have no devices.")).to_be_visible()
    expect(page.locator("li.device")).to_have_count(0)
    shots("removed")

    assert live_server.cli("devices", "list", "alice").stdout.strip() == ""
    assert_clean_console(page)


def test_make_default_moves_the_badge_in_place(live_server, page: Page, shots) -> None:
    add_alice(live_server)
    phone = Phone()
    for name in ("Token A", "Token B"):
        uri = live_server.cli("devices", "add-totp", "alice", "--name", name).stdout.strip()
        assert uri.startswith("otpauth://totp/")
        phone.secrets[name] = parse_qs(urlparse(uri).query)["secret"][0]
    sign_in(page, live_server, shots, home_shot="portal-home")

    # Signed in but no second factor yet: "My Settings & Devices" prompts first.
    open_settings(page, shots, phone, "Token A")
    token_a = page.locator("li.device", has_text="Token A")
    token_b = page.locator("li.device", has_text="Token B")
    expect(token_a.locator(".badge")).to_have_text("Default")
    expect(token_b.locator(".badge")).to_have_count(0)

    url = mark_page(page)
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
