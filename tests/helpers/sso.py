"""The SSO door with Flask's client as browser and a python3-saml SP (the SSO, push and
fault tests)."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.core import service_providers as sps
from saml.sp_metadata import parse_sp_metadata
from tests.conftest import TEST_ORIGIN, committed
from tests.peers.saml_sp import SAML_RESPONSE_RE, TestSP

IDP = "http://localhost"


def idp_metadata(client) -> str:
    return client.get("/saml/metadata").get_data(as_text=True)


def register(app, sp: TestSP) -> None:
    meta = parse_sp_metadata(sp.metadata())
    with committed(app) as c:
        sps.register(c, TEST_ORIGIN, meta.registration())


def make_sp(client, app, **kwargs) -> TestSP:
    sp = TestSP(idp_metadata=idp_metadata(client), **kwargs)
    register(app, sp)
    return sp


def go(client, url: str):
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == IDP, url
    return client.get(parts.path + ("?" + parts.query if parts.query else ""))


def saml_response(page: str) -> str:
    match = SAML_RESPONSE_RE.search(page)
    assert match, page[:2000]
    return match.group(1)
