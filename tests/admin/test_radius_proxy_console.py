"""Issue 18, point 8, in the console: a RADIUS client added as a proxy, the policies of the NAS
behind it shown, added and removed, and the warning when its push timeout is longer than a
FreeRADIUS proxy waits."""

from __future__ import annotations

import html

import pytest

from app.core import admins, radius_clients
from tests.admin.test_admin_settings_console import last_audit, send
from tests.conftest import committed
from tests.helpers.console import signed_in_console


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


@pytest.fixture
def console(app, clock):
    return signed_in_console(app, clock, admins.ADMIN)


def page(console) -> str:
    return html.unescape(console.get("/admin/radius-clients").get_data(as_text=True))


def test_a_proxy_and_its_nas_policies_in_the_console(app, console):
    added = send(console, "/admin/radius-clients", {"name": "univ-proxy",
                                                    "address": "10.9.0.1", "mode": "append",
                                                    "proxy": "on"})
    assert added.status_code == 200
    answer = html.unescape(added.get_data(as_text=True))
    assert "univ-proxy is a RADIUS proxy" in answer
    assert "a FreeRADIUS proxy waits at most 60 s" in answer  # the default 60 s push timeout
    send(console, "/admin/radius-clients", {"name": "fw1", "address": "10.0.0.5",
                                            "mode": "append"})
    listing = page(console)
    assert 'id="nas-univ-proxy"' in listing and 'id="nas-fw1"' not in listing
    assert "No NAS policies yet: every NAS behind univ-proxy gets its settings." in listing

    made = send(console, "/admin/radius-clients/univ-proxy/nas",
                {"nas_name": "vpn-a", "nas_identifier": "vpn-a", "nas_network": "",
                 "nas_mode": "challenge", "nas_fail_mode": "", "nas_push_timeout": "15",
                 "nas_language": "pt"})
    assert made.status_code == 302
    listing = page(console)
    row = listing.split('id="nas-policy-univ-proxy-vpn-a"')[1].split("</tr>")[0]
    assert "<td>vpn-a</td>" in row and "challenge" in row and "15 s" in row
    assert "secure <span class=\"muted\">(the proxy's)</span>" in row
    assert "Português" in row
    assert last_audit(app, "radius_client.nas_add").actor == "boss"

    for data, message in (({"nas_name": "x"}, "needs a NAS-Identifier"),
                          ({"nas_name": "x", "nas_identifier": "x", "nas_push_timeout": "ten"},
                           "whole number of seconds"),
                          ({"nas_name": "vpn-a", "nas_identifier": "y"}, "already has")):
        refused = send(console, "/admin/radius-clients/univ-proxy/nas", data)
        text = html.unescape(refused.get_data(as_text=True))
        assert refused.status_code == 400 and message in text, data
        assert f'value="{data["nas_name"]}"' in text  # the form kept
    not_proxy = send(console, "/admin/radius-clients/fw1/nas",
                     {"nas_name": "x", "nas_identifier": "x"})
    assert not_proxy.status_code == 400 and "fw1 is not a RADIUS proxy" in \
        html.unescape(not_proxy.get_data(as_text=True))
    assert send(console, "/admin/radius-clients/nope/nas", {"nas_name": "x"}).status_code == 404

    confirm = console.get("/admin/radius-clients/univ-proxy/nas/vpn-a/remove")
    assert "Remove the NAS policy vpn-a?" in html.unescape(confirm.get_data(as_text=True))
    assert send(console, "/admin/radius-clients/univ-proxy/nas/vpn-a/remove").status_code == 302
    with committed(app) as c:
        [proxy] = [x for x in radius_clients.load(c) if x.name == "univ-proxy"]
    assert proxy.proxy and proxy.policies == ()
    assert last_audit(app, "radius_client.nas_remove").detail == "univ-proxy/nas vpn-a"
    gone = send(console, "/admin/radius-clients/univ-proxy/nas/vpn-a/remove")
    assert gone.status_code == 400


def test_the_proxy_pages_in_chinese(app, console):
    """The new texts are translated (a console page in zh_Hant shows no English left)."""
    send(console, "/admin/radius-clients", {"name": "univ-proxy", "address": "10.9.0.1",
                                            "mode": "append", "proxy": "on"})
    console.set_cookie("um2fa_lang", "zh_Hant")
    listing = page(console)
    for english in ("NAS behind the proxy", "Add a NAS policy", "No NAS policies yet",
                    "a FreeRADIUS proxy waits", "A request the proxy forwards"):
        assert english not in listing, english
