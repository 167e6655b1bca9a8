"""Safe XML in and out: no DTDs, no entities, bounded inflation."""

from __future__ import annotations

import base64
import binascii
import re
import zlib

from lxml import etree
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from app.i18n import N_
from app.i18n.refusal import Refusal

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "mdattr": "urn:oasis:names:tc:SAML:metadata:attribute",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}
MAX_XML_BYTES = 256 * 1024
_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


class SamlError(Refusal):
    """A SAML message we refuse; the message is safe to show on the error page (in English in
    the audit, translated on the page: app/i18n/refusal.py)."""


def parse(xml: bytes | str, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """The root of a SAML document with no DTD or entity, at most `max_bytes` long (a message;
    a federation's metadata aggregate passes its own, larger bound)."""
    data = xml.encode() if isinstance(xml, str) else xml
    if len(data) > max_bytes:
        raise SamlError(N_("The SAML message is too large."))
    if _DECLARATION.search(data):
        raise SamlError(N_("The SAML message contains a document type declaration, which is "
                        "not allowed."))
    try:
        return OneLogin_Saml2_XML.to_etree(data)
    except Exception as exc:  # the parser's own errors for DTDs, entities and broken XML
        raise SamlError(N_("The SAML message is not well-formed XML.")) from exc


def b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise SamlError(N_("The SAML message is not valid base64.")) from exc


def inflate(value: str) -> bytes:
    """Decode an HTTP-Redirect message: base64, then raw DEFLATE, never past the size limit."""
    raw = b64decode(value)
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(raw, MAX_XML_BYTES + 1)
    except zlib.error as exc:
        raise SamlError(N_("The SAML message is not DEFLATE-compressed as the binding requires.")) \
            from exc
    if len(out) > MAX_XML_BYTES or inflater.unconsumed_tail:
        raise SamlError(N_("The SAML message is too large."))
    return out


def deflate_b64(xml: str) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml.encode()) + compressor.flush()).decode()


def xpath(node: etree._Element, path: str, **variables: str) -> list:
    return node.xpath(path, namespaces=NS, **variables)
