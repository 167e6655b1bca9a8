"""Issue 14: a real Shibboleth SP (tests/peers/shibboleth_sp.py: Debian's shibd + mod_shib under
apache2) trusts our metadata only with our signature on it, as a federation member would; and
the attribute map docs/saml.md shows SP administrators is the one that SP runs.

A Shibboleth SP that trusts an IdP sends the browser there: /Shibboleth.sso/Login answers with a
redirect to our /saml/sso carrying its AuthnRequest. Metadata that fails the Signature filter is
dropped, and the same request finds no IdP to send the browser to.
"""

from __future__ import annotations

import http.client
import re
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from tests.peers.live import ROOT, LiveServer, make_live_server
from tests.peers.saml_sp import key_and_cert
from tests.peers.shibboleth_sp import ATTRIBUTE_MAP, ShibbolethSP


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    server = make_live_server(tmp_path_factory.mktemp("shib-idp"), saml_scope="um.edu.mo")
    server.env["UM2FA_BASE_URL"] = server.url
    server.start()
    yield server
    server.stop()


def login(sp: ShibbolethSP) -> tuple[int, str]:
    """GET the SP's session initiator, as a browser sent to /secure/ would; (status, Location)."""
    address = urlsplit(sp.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", "/Shibboleth.sso/Login?target=%2Fsecure%2F")
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.getheader("Location") or ""
    finally:
        connection.close()


def start_and_login(sp: ShibbolethSP) -> tuple[int, str, str]:
    """Start `sp`, ask it to sign a browser in; (status, Location, its logs); stop it."""
    sp.start()
    try:
        return (*login(sp), sp.logs(lines=400))
    finally:
        sp.stop()


FAILED_CHECK = "filtering out entity at root of instance after failed signature check"


def test_shibd_accepts_our_signed_metadata_and_sends_the_browser_to_us(idp: LiveServer) -> None:
    status, location, log = start_and_login(ShibbolethSP.for_idp(idp))
    assert status == 302, log
    assert location.startswith(idp.url + "/saml/sso?SAMLRequest="), location
    assert FAILED_CHECK not in log


def test_shibd_refuses_our_metadata_altered_after_signing(idp: LiveServer) -> None:
    genuine = ShibbolethSP.for_idp(idp)
    # the attacker's IdP in place of ours, the signature left as it was
    forged = genuine.idp_metadata.replace(idp.url + "/saml/sso", "http://127.0.0.1:9/saml/sso")
    assert forged != genuine.idp_metadata
    status, location, log = start_and_login(replace(genuine, idp_metadata=forged))
    assert status != 302 and "127.0.0.1:9" not in location
    assert FAILED_CHECK in log, log


def test_shibd_refuses_our_metadata_under_another_certificate(idp: LiveServer) -> None:
    genuine = ShibbolethSP.for_idp(idp)
    _key, other = key_and_cert("not our IdP")
    status, location, log = start_and_login(replace(genuine, idp_signing_cert=other))
    assert status != 302 and idp.url not in location
    assert FAILED_CHECK in log, log


def test_docs_show_the_attribute_map_the_shibboleth_sp_runs() -> None:
    """docs/saml.md's attribute map is docs/shibboleth/attribute-map.xml, comments aside."""
    def elements(text: str) -> list[str]:
        text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        return [line.strip() for line in text.splitlines() if line.strip()]

    docs = (ROOT / "docs" / "saml.md").read_text()
    shown = re.search(r"```xml\n(<Attributes .*?</Attributes>)\n```", docs, re.S)
    assert shown, "docs/saml.md shows no attribute map"
    assert elements(shown.group(1)) == elements(ATTRIBUTE_MAP.read_text())
