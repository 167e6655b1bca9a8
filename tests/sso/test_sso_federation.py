"""Issue 14: our IdP as university federations expect it (REFEDS, Shibboleth SPs): the scope in
the metadata, the subject identifiers and attributes, the per-SP release policy."""

from __future__ import annotations

from lxml import etree

from tests.helpers.sso import idp_metadata

SHIBMD = "urn:mace:shibboleth:metadata:1.0"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def test_the_metadata_declares_the_scope_of_every_scoped_attribute(client):
    root = etree.fromstring(idp_metadata(client).encode())
    scopes = root.xpath("md:IDPSSODescriptor/md:Extensions/shibmd:Scope",
                        namespaces={"md": MD, "shibmd": SHIBMD})
    assert [(s.text, s.get("regexp")) for s in scopes] == [("um.edu.mo", "false")]
    # Extensions come first in a role descriptor (the schema's order; Shibboleth checks it)
    assert root.xpath("md:IDPSSODescriptor/*", namespaces={"md": MD})[0].tag == \
        f"{{{MD}}}Extensions"
