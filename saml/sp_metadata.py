"""Reading a service provider's metadata: entity ID, ACS URLs, SLO URL, certificates."""

from __future__ import annotations

from dataclasses import dataclass, field

from saml.xml import SamlError, parse, xpath

POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


@dataclass
class SpMetadata:
    entity_id: str
    acs_urls: list[str]
    slo_url: str = ""
    certs: list[str] = field(default_factory=list)
    authn_requests_signed: bool = False
    nameid_formats: list[str] = field(default_factory=list)
    name: str = ""


def parse_sp_metadata(xml: bytes | str) -> SpMetadata:
    root = parse(xml)
    if root.tag != "{urn:oasis:names:tc:SAML:2.0:metadata}EntityDescriptor":
        raise SamlError("The metadata is not a SAML EntityDescriptor.")
    entity_id = (root.get("entityID") or "").strip()
    sp = xpath(root, "md:SPSSODescriptor")
    if not entity_id or not sp:
        raise SamlError("The metadata has no entityID or no SPSSODescriptor.")
    sp = sp[0]
    acs = []
    for node in xpath(sp, "md:AssertionConsumerService"):
        if node.get("Binding") == POST_BINDING and node.get("Location"):
            index = int(node.get("index") or 0)
            default = (node.get("isDefault") or "").lower() == "true"
            acs.append((not default, index, node.get("Location").strip()))
    if not acs:
        raise SamlError("The metadata has no AssertionConsumerService with the HTTP-POST "
                        "binding.")
    slo = [n.get("Location") for n in xpath(sp, "md:SingleLogoutService")
           if n.get("Binding") == REDIRECT_BINDING and n.get("Location")]
    certs = ["".join(c.text.split()) for c in xpath(
        sp, "md:KeyDescriptor[not(@use) or @use='signing']/ds:KeyInfo/ds:X509Data/"
            "ds:X509Certificate") if c.text]
    signed = (sp.get("AuthnRequestsSigned") or "").lower() == "true"
    if signed and not certs:
        raise SamlError("The metadata says AuthnRequests are signed but has no signing "
                        "certificate.")
    names = xpath(root, "md:Organization/md:OrganizationDisplayName/text()")
    return SpMetadata(entity_id=entity_id, acs_urls=[url for *_, url in sorted(acs)],
                      slo_url=slo[0].strip() if slo else "", certs=certs,
                      authn_requests_signed=signed,
                      nameid_formats=[t.strip() for t in xpath(sp, "md:NameIDFormat/text()")],
                      name=str(names[0]).strip() if names else "")
