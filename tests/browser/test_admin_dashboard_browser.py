"""The console's dashboard and audit search in Debian's Chromium (issue 15): an administrator
signs in with the password and a TOTP passcode, opens the dashboard (the SVG chart drawn on the
server shows) and searches the audit, with no CSP violation or other console error."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    ALICE,
    Phone,
    add_alice,
    assert_clean_console,
    enter_passcode,
    fill_sign_in,
)

pytestmark = pytest.mark.browser
TOKEN = "Token 1"


def test_the_dashboard_and_audit_search(live_server, page: Page, shots) -> None:
    add_alice(live_server, "--role", "staff")
    uri = live_server.cli("devices", "add-totp", "alice", "--name", TOKEN).stdout.strip()
    phone = Phone(secrets={TOKEN: parse_qs(urlparse(uri).query)["secret"][0]})
    live_server.cli("admins", "add", "alice", "--role", "admin")

    page.goto(live_server.url + "/admin/sign-in")
    fill_sign_in(page, shots, ALICE, "console-sign-in")
    enter_passcode(page, shots, phone.code(TOKEN), "console-passcode")
    expect(page.get_by_role("heading", name="Help-desk console")).to_be_visible()

    page.locator(".console-nav").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    chart = page.get_by_role("img", name="Sign-ins per hour, the last 24 hours")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    # alice's own sign-in: the password and the passcode this hour, in the chart's last bar
    expect(chart.locator("rect title", has_text="admin ok")).to_have_count(1)
    expect(page.locator("#figures")).to_contain_text("1 of 1 (100.0%)")
    shots("dashboard")

    page.locator(".console-nav").get_by_role("link", name="Audit search").click()
    page.get_by_label("User").fill("alice")
    page.get_by_label("Action").fill("factor")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#audit-results tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    shots("audit-search")
    assert_clean_console(page)
