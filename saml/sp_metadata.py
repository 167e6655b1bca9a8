"""Reading a service provider's metadata: entity ID, ACS URLs, SLO URL, certificates, what it
asks for (RequestedAttribute, entity categories, subject-id:req) and how it decrypts."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from app.core import service_providers as sps
from app.core.context import Context, Origin
from app.core.service_providers import Registration
from app.models import ServiceProvider
from saml.xml import SamlError, parse, xpath

POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
ENTITY_CATEGORY = "http://macedir.org/entity-category"
SUBJECT_ID_REQ = "urn:oasis:names:tc:SAML:profiles:subject-id:req"
SUBJECT_ID_REQ_VALUES = ("subject-id", "pairwise-id", "none", "any")
_CERT = "ds:KeyInfo/ds:X509Data/ds:X509Certificate"


@dataclass
class SpMetadata:
    entity_id: str
    acs_urls: list[str]
    slo_url: str = ""
    certs: list[str] = field(default_factory=list)
    authn_requests_signed: bool = False
    nameid_formats: list[str] = field(default_factory=list)
    name: str = ""
    requested_attributes: list[dict] = field(default_factory=list)
    entity_categories: list[str] = field(default_factory=list)
    subject_id_req: str = ""
    encryption_certs: list[str] = field(default_factory=list)
    encryption_methods: list[str] = field(default_factory=list)

    def registration(self, metadata_xml: str = "") -> Registration:
        return Registration(
            entity_id=self.entity_id, acs_urls=self.acs_urls, slo_url=self.slo_url,
            certs=self.certs, sign_requests=self.authn_requests_signed,
            nameid_formats=self.nameid_formats, name=self.name, metadata_xml=metadata_xml,
            requested_attributes=self.requested_attributes,
            entity_categories=self.entity_categories, subject_id_req=self.subject_id_req,
            encryption_certs=self.encryption_certs,
            encryption_methods=self.encryption_methods)


def parse_sp_metadata(xml: bytes | str) -> SpMetadata:
    root = parse(xml)
    if root.tag != "{urn:oasis:names:tc:SAML:2.0:metadata}EntityDescriptor":
        raise SamlError("The metadata is not a SAML EntityDescriptor.")
    return read_entity(root)


def register(ctx: Context, origin: Origin, xml: bytes | str, *,
             replace: bool = False) -> tuple[ServiceProvider, SpMetadata]:
    """Register one SP from its metadata (`um2fa sp add --metadata`, the console, the API):
    SamlError for metadata that cannot be read, ServiceProviderError for one the registry
    refuses (both messages are safe to show)."""
    meta = parse_sp_metadata(xml)
    text = xml if isinstance(xml, str) else xml.decode("utf-8", "replace")
    return sps.register(ctx, origin, meta.registration(text), replace=replace), meta


def read_entity(root: etree._Element) -> SpMetadata:
    """One SP's EntityDescriptor (on its own, or one of a federation's aggregate)."""
    entity_id = (root.get("entityID") or "").strip()
    sp = xpath(root, "md:SPSSODescriptor")
    if not entity_id or not sp:
        raise SamlError("The metadata has no entityID or no SPSSODescriptor.")
    sp = sp[0]
    acs = []
    for node in xpath(sp, "md:AssertionConsumerService"):
        if node.get("Binding") == POST_BINDING and node.get("Location"):
            index = _acs_index(node.get("index"))
            default = (node.get("isDefault") or "").lower() == "true"
            acs.append((not default, index, node.get("Location").strip()))
    if not acs:
        raise SamlError("The metadata has no AssertionConsumerService with the HTTP-POST "
                        "binding.")
    slo = [n.get("Location") for n in xpath(sp, "md:SingleLogoutService")
           if n.get("Binding") == REDIRECT_BINDING and n.get("Location")]
    certs = _certs(sp, "signing")
    signed = (sp.get("AuthnRequestsSigned") or "").lower() == "true"
    if signed and not certs:
        raise SamlError("The metadata says AuthnRequests are signed but has no signing "
                        "certificate.")
    names = xpath(root, "md:Organization/md:OrganizationDisplayName/text()")
    return SpMetadata(entity_id=entity_id, acs_urls=[url for *_, url in sorted(acs)],
                      slo_url=slo[0].strip() if slo else "", certs=certs,
                      authn_requests_signed=signed,
                      nameid_formats=[t.strip() for t in xpath(sp, "md:NameIDFormat/text()")],
                      name=str(names[0]).strip() if names else "",
                      requested_attributes=_requested_attributes(sp),
                      entity_categories=_entity_attribute(root, ENTITY_CATEGORY),
                      subject_id_req=_subject_id_req(root),
                      encryption_certs=_certs(sp, "encryption"),
                      encryption_methods=[str(a).strip() for a in xpath(
                          sp, "md:KeyDescriptor[not(@use) or @use='encryption']/"
                              "md:EncryptionMethod/@Algorithm")])


def _acs_index(value: str | None) -> int:
    """An AssertionConsumerService's index: an unsignedShort (0 when absent)."""
    text = (value or "0").strip()
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise SamlError(f"The metadata has an AssertionConsumerService whose index "
                        f"{text[:20]!r} is not a number from 0 to 65535.")
    return int(text)


def _certs(sp: etree._Element, use: str) -> list[str]:
    """The certificates of the KeyDescriptors for `use` (one without a use serves both)."""
    return ["".join(c.text.split()) for c in xpath(
        sp, f"md:KeyDescriptor[not(@use) or @use='{use}']/{_CERT}") if c.text]


def _requested_attributes(sp: etree._Element) -> list[dict]:
    """Every AttributeConsumingService's RequestedAttribute: its Name (an urn:oid name, as
    federations write them, or a FriendlyName-like one) and whether isRequired."""
    found: dict[str, bool] = {}
    for node in xpath(sp, "md:AttributeConsumingService/md:RequestedAttribute"):
        name = (node.get("Name") or "").strip()
        if name:
            required = (node.get("isRequired") or "").strip().lower() in ("true", "1")
            found[name] = found.get(name, False) or required
    return [{"name": n, "required": r} for n, r in found.items()]


def _entity_attribute(root: etree._Element, name: str) -> list[str]:
    return [str(v).strip() for v in xpath(
        root, "md:Extensions/mdattr:EntityAttributes/saml:Attribute[@Name=$name]/"
              "saml:AttributeValue/text()", name=name)]


def _subject_id_req(root: etree._Element) -> str:
    values = [v for v in _entity_attribute(root, SUBJECT_ID_REQ) if v in SUBJECT_ID_REQ_VALUES]
    return values[0] if values else ""
