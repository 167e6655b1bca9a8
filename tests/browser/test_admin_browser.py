"""An administrator, in Chromium against a live `um2fa serve`, signs in to the console with a
passcode, adds a RADIUS client (its secret shown once) and an SP by pasting its metadata, and
sees both listed (issue 15)."""

from __future__ import annotations

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import ALICE, Phone, add_alice, enter_passcode, fill_sign_in
from tests.peers.saml_sp import TestSP

pytestmark = pytest.mark.browser

TOKEN = "Token 1234"


def test_an_administrator_adds_a_radius_client_and_a_service_provider(live_server,
                                                                       page: Page, shots):
    add_alice(live_server, "--role", "staff")
    live_server.cli("admins", "add", "alice", "--role", "admin")
    uri = live_server.cli("devices", "add-totp", "alice", "--name", TOKEN).stdout.strip()
    phone = Phone(secrets={TOKEN: pyotp.parse_uri(uri).secret})

    # the password, then a real second factor at the portal's prompt
    page.goto(live_server.url + "/admin/sign-in")
    expect(page.get_by_role("heading", name="Help-desk console")).to_be_visible()
    fill_sign_in(page, shots, ALICE, "console-sign-in")
    enter_passcode(page, shots, phone.code(TOKEN), "console-passcode")
    page.wait_for_url(live_server.url + "/admin/")
    expect(page.get_by_text("Signed in as alice (admin).")).to_be_visible()

    # a RADIUS client: its generated secret on the answer, once
    page.get_by_role("link", name="RADIUS clients").click()
    expect(page.get_by_role("heading", name="RADIUS clients")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("vpn-main")
    page.get_by_label("Address or network (CIDR)").fill("10.20.0.0/16")
    page.get_by_label("Mode", exact=True).select_option("challenge")
    shots("radius-client-form")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", name="RADIUS client vpn-main added")).to_be_visible()
    secret = page.locator("#radius-secret").inner_text().strip()
    assert len(secret) >= 16
    shots("radius-secret-once")
    page.get_by_role("link", name="Back to the RADIUS clients").click()
    row = page.locator("#radius-clients tbody tr", has_text="vpn-main")
    expect(row).to_contain_text("10.20.0.0/16")
    expect(row.get_by_label("Mode of vpn-main")).to_have_value("challenge")
    expect(row.get_by_label("Language of vpn-main")).to_have_value("")  # the default
    assert secret not in page.content()
    shots("radius-clients")

    # a service provider from pasted metadata
    sp = TestSP(base="https://myum.example.edu", name="myUM")
    page.get_by_role("link", name="Service providers").click()
    page.get_by_role("link", name="Add a service provider").click()
    page.get_by_label("or paste the metadata XML").fill(sp.metadata())
    shots("sp-metadata")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", name="myUM")).to_be_visible()
    expect(page.locator("#service-provider")).to_contain_text("https://myum.example.edu/acs")
    page.get_by_role("link", name="All service providers").click()
    expect(page.locator("#service-providers tbody tr", has_text="myUM")) \
        .to_contain_text(sp.entity_id)
    shots("service-providers")

    # and the RADIUS client is still listed next to it
    page.get_by_role("link", name="RADIUS clients").click()
    expect(page.locator("#radius-clients")).to_contain_text("vpn-main")

    # a RADIUS proxy (FreeRADIUS in front of several NAS) and the policy of one NAS behind it
    page.get_by_label("Name", exact=True).fill("univ-proxy")
    page.get_by_label("Address or network (CIDR)").fill("10.9.0.1")
    page.get_by_label("A RADIUS proxy (FreeRADIUS)").check()
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(".warning")).to_contain_text("a FreeRADIUS proxy waits at most 60 s")
    page.get_by_role("link", name="Back to the RADIUS clients").click()
    section = page.locator("#nas-univ-proxy")
    section.get_by_label("Name of the NAS policy").fill("vpn-a")
    section.get_by_label("NAS-Identifier (matched exactly)").fill("vpn-a")
    section.get_by_label("Mode", exact=True).select_option("challenge")
    section.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#nas-policy-univ-proxy-vpn-a")).to_contain_text("challenge")
    shots("radius-proxy-nas-policies")
    assert page.console_errors == []
