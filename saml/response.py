"""Signed SAML out: the Response with its assertion (encrypted to SPs that have an encryption
key), the IdP metadata (single logout's messages are in saml/logout.py)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.core.attribute_release import CATALOG
from app.core.sp_encryption import DATA_ALGORITHMS, KEY_TRANSPORT, AssertionEncryption
from saml.encryption import encrypt_assertion
from saml.keys import KeyPair, SigningKey

SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
URI_NAME_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SHIBMD = "urn:mace:shibboleth:metadata:1.0"
SUPPORTED_NAMEID_FORMATS = (
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
)
REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"


def new_id() -> str:
    return "_" + secrets.token_hex(20)


def instant(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Assertion:
    issuer: str
    audience: str
    recipient: str
    in_response_to: str
    nameid_format: str
    nameid: str
    attributes: dict[str, list[str]]
    authn_context: str
    session_index: str
    now: datetime
    lifetime: int
    # When the person last authenticated (the factor the assertion rests on); default: now.
    authn_instant: datetime | None = None


def _attributes_xml(attributes: dict[str, list[str]]) -> str:
    out = []
    for friendly, values in attributes.items():
        name = CATALOG[friendly].oid
        vals = "".join(f'<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                       f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                       f'xsi:type="xs:string">{escape(v)}</saml:AttributeValue>' for v in values)
        out.append(f"<saml:Attribute Name={quoteattr(name)} FriendlyName={quoteattr(friendly)} "
                   f"NameFormat={quoteattr(URI_NAME_FORMAT)}>{vals}</saml:Attribute>")
    return "".join(out)


def _assertion_xml(a: Assertion, assertion_id: str) -> str:
    not_before = instant(a.now - timedelta(seconds=60))
    not_after = instant(a.now + timedelta(seconds=a.lifetime))
    return (
        f'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{assertion_id}" Version="2.0" IssueInstant="{instant(a.now)}">'
        f"<saml:Issuer>{escape(a.issuer)}</saml:Issuer>"
        f"<saml:Subject><saml:NameID Format={quoteattr(a.nameid_format)} "
        f"SPNameQualifier={quoteattr(a.audience)}>{escape(a.nameid)}</saml:NameID>"
        f'<saml:SubjectConfirmation Method="{BEARER}">'
        f"<saml:SubjectConfirmationData NotOnOrAfter=\"{not_after}\" "
        f"Recipient={quoteattr(a.recipient)} InResponseTo={quoteattr(a.in_response_to)}/>"
        f"</saml:SubjectConfirmation></saml:Subject>"
        f'<saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_after}">'
        f"<saml:AudienceRestriction><saml:Audience>{escape(a.audience)}</saml:Audience>"
        f"</saml:AudienceRestriction></saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{instant(a.authn_instant or a.now)}" '
        f'SessionNotOnOrAfter="{instant(a.now + timedelta(hours=8))}" '
        f"SessionIndex={quoteattr(a.session_index)}>"
        f"<saml:AuthnContext><saml:AuthnContextClassRef>{escape(a.authn_context)}"
        f"</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
        f"<saml:AttributeStatement>{_attributes_xml(a.attributes)}</saml:AttributeStatement>"
        f"</saml:Assertion>"
    )


def sign(xml: str, key: SigningKey) -> str:
    signed = OneLogin_Saml2_Utils.add_sign(xml, key.key_pem, key.cert_pem,
                                           sign_algorithm=C.RSA_SHA256,
                                           digest_algorithm=C.SHA256)
    return signed.decode() if isinstance(signed, bytes) else signed


def build_response(a: Assertion, key: SigningKey,
                   encryption: AssertionEncryption | None = None) -> str:
    """The Response for the ACS: the assertion signed, then encrypted to the SP when
    `encryption` says how, then the whole response signed. A SamlError (safe to show) when the
    SP's encryption certificate cannot be used."""
    assertion = sign(_assertion_xml(a, new_id()), key)
    if encryption is not None:
        assertion = encrypt_assertion(assertion, encryption)
    response = (
        f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{new_id()}" Version="2.0" '
        f'IssueInstant="{instant(a.now)}" Destination={quoteattr(a.recipient)} '
        f"InResponseTo={quoteattr(a.in_response_to)}>"
        f"<saml:Issuer>{escape(a.issuer)}</saml:Issuer>"
        f'<samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status>'
        f"{assertion}</samlp:Response>"
    )
    return sign(response, key)


def build_status_response(*, issuer: str, recipient: str, in_response_to: str, status: str,
                          sub_status: str, message: str, now: datetime,
                          key: SigningKey) -> str:
    """A signed Response without an assertion, telling the SP why it gets none."""
    response = (
        f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{new_id()}" Version="2.0" '
        f'IssueInstant="{instant(now)}" Destination={quoteattr(recipient)} '
        f"InResponseTo={quoteattr(in_response_to)}>"
        f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
        f"<samlp:Status><samlp:StatusCode Value={quoteattr(status)}>"
        f"<samlp:StatusCode Value={quoteattr(sub_status)}/></samlp:StatusCode>"
        f"<samlp:StatusMessage>{escape(message)}</samlp:StatusMessage></samlp:Status>"
        f"</samlp:Response>"
    )
    return sign(response, key)


def _key_descriptor(use: str, key: KeyPair, methods: tuple[str, ...] = ()) -> str:
    return (f'<md:KeyDescriptor use="{use}"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{key.cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            + "".join(f'<md:EncryptionMethod Algorithm="{m}"/>' for m in methods)
            + "</md:KeyDescriptor>")


def idp_metadata(*, entity_id: str, sso_url: str, slo_url: str, keys: list[SigningKey],
                 sign_with: SigningKey | None, scope: str,
                 encryption_keys: Sequence[KeyPair] = ()) -> str:
    """The IdP's metadata. `scope` (shibmd:Scope) is the domain of every scoped attribute we
    release (eduPersonPrincipalName, eduPersonScopedAffiliation, subject-id, pairwise-id): an
    SP's attribute filter drops scoped values whose scope the IdP's metadata does not declare.
    `encryption_keys` (oldest first) are published newest first, the one SPs pick, each with
    the algorithms we decrypt."""
    key_descriptors = "".join(_key_descriptor("signing", k) for k in keys) + "".join(
        _key_descriptor("encryption", k, (*DATA_ALGORITHMS, KEY_TRANSPORT))
        for k in reversed(encryption_keys))
    formats = "".join(f"<md:NameIDFormat>{f}</md:NameIDFormat>" for f in SUPPORTED_NAMEID_FORMATS)
    xml = (
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="{new_id()}" '
        f"entityID={quoteattr(entity_id)}>"
        f'<md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        f'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f'<md:Extensions><shibmd:Scope xmlns:shibmd="{SHIBMD}" regexp="false">'
        f"{escape(scope)}</shibmd:Scope></md:Extensions>"
        f"{key_descriptors}"
        f'<md:SingleLogoutService Binding="{REDIRECT_BINDING}" Location={quoteattr(slo_url)}/>'
        f"{formats}"
        f'<md:SingleSignOnService Binding="{REDIRECT_BINDING}" Location={quoteattr(sso_url)}/>'
        f'<md:SingleSignOnService Binding="{POST_BINDING}" Location={quoteattr(sso_url)}/>'
        f"</md:IDPSSODescriptor></md:EntityDescriptor>"
    )
    return sign(xml, sign_with) if sign_with else xml
