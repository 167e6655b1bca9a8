"""IdP-proxy mode in Debian's Chromium: myUM -> our IdP -> the university's IdP (a second UM 2FA
on another host name, so its POST to our ACS is cross-site and the browser leaves our SameSite
cookie off it) -> password there -> our 2FA prompt -> passcode -> back at myUM signed in.

Three real subprocesses wired by their metadata through the operator commands.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    ALICE,
    Phone,
    Servers,
    add_alice,
    assert_clean_console,
    attributes,
    fill_sign_in,
    finish_at_prompt,
)
from tests.peers.live import make_live_server
from tests.peers.myum_live import MyumServer

pytestmark = pytest.mark.browser


@pytest.fixture
def proxied(tmp_path):
    upstream = make_live_server(tmp_path / "upstream", new_user="allow")
    upstream.env["UM2FA_BASE_URL"] = f"http://localhost:{upstream.port}"  # another site
    ours = make_live_server(tmp_path / "ours", campus_networks="10.0.0.0/8", remember_days="7",
                            sso_upstream_username_attribute="uid",
                            sso_upstream_attributes='{"mail": "mail"}')
    ours.env["UM2FA_BASE_URL"] = ours.url
    myum = MyumServer(instance_dir=tmp_path / "myum")
    try:
        upstream.start()
        idp_xml = tmp_path / "upstream-idp.xml"
        idp_xml.write_text(upstream.cli("saml", "metadata").stdout)
        ours.env["UM2FA_SSO_UPSTREAM_METADATA"] = str(idp_xml)
        sp_xml = tmp_path / "um2fa-sp.xml"
        sp_xml.write_text(ours.cli("saml", "upstream-metadata").stdout)
        upstream.cli("sp", "add", "--metadata", str(sp_xml))
        ours.start()
        myum.register_with(ours)
        myum.start()
        yield upstream, Servers(ours, myum)
    finally:
        myum.stop()
        ours.stop()
        upstream.stop()


def test_upstream_password_then_our_passcode_in_a_browser(proxied, page: Page, shots) -> None:
    upstream, servers = proxied
    add_alice(upstream, "--role", "staff", "--email", "alice@um.edu.mo")
    add_alice(servers.idp)  # ours: no password is ever checked here, a device is
    uri = servers.idp.cli("devices", "add-totp", "alice", "--name", "Token 1234").stdout.strip()
    phone = Phone(secrets={"Token 1234": pyotp.parse_uri(uri).secret})
    acs = servers.idp.url + "/sso/upstream/acs"
    posts: list[dict] = []
    page.on("request", lambda r: r.url == acs and r.method == "POST" and posts.append(
        {k: v[0] for k, v in parse_qs(r.post_data or "").items()}))

    page.goto(servers.myum.url + "/")
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_label("UMPASS ID")).to_be_visible()
    assert page.url.startswith(f"http://localhost:{upstream.port}/sso/sign-in"), page.url
    shots("upstream-sign-in")
    fill_sign_in(page, shots, ALICE, "upstream-password")
    expect(page.get_by_role("heading", name="Signing in to myUM")).to_be_visible()
    assert page.url.startswith(servers.idp.url + "/sso/prompt"), page.url
    # the upstream's cross-site POST came without our cookie; our page posted it once more
    assert [p.get("again") for p in posts] == [None, "1"]
    assert posts[0]["SAMLResponse"] == posts[1]["SAMLResponse"]
    finish_at_prompt(page, servers, shots, phone, "Token 1234", "proxied")
    released = attributes(page)
    assert released["uid"] == "alice" and released["mail"] == "alice@um.edu.mo"
    assert_clean_console(page)
