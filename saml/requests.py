"""AuthnRequest and LogoutRequest in, over the HTTP-Redirect and HTTP-POST bindings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import unquote_plus

from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.i18n import N_
from saml.encryption import decrypt_nameid
from saml.signature import ALLOWED_SIG_ALGS, verify_enveloped
from saml.xml import SamlError, b64decode, inflate, parse, xpath


@dataclass
class AuthnRequest:
    id: str
    issuer: str
    acs_url: str = ""
    destination: str = ""
    nameid_format: str = ""
    requested_contexts: list[str] = field(default_factory=list)
    force_authn: bool = False
    is_passive: bool = False


@dataclass
class LogoutRequest:
    id: str
    issuer: str
    nameid: str = ""
    nameid_format: str = ""
    sp_name_qualifier: str = ""
    # every SessionIndex element, as sent (app/core/single_logout.py requires exactly one)
    session_indexes: list[str] = field(default_factory=list)
    # the <saml:EncryptedID> an SP sent instead of a NameID, until reveal_nameid decrypts it
    encrypted_id: bytes = b""


@dataclass
class Incoming:
    """One SAML message as it arrived: the XML, RelayState and what its signature covers."""

    xml: bytes
    relay_state: str = ""
    binding: str = "redirect"
    sig_alg: str = ""
    signature: str = ""
    signed_query: str = ""


def _raw_query_part(query_string: str, name: str) -> str | None:
    for part in query_string.split("&"):
        if part.split("=", 1)[0] == name:
            return part
    return None


def from_redirect(query_string: str, args: dict, param: str = "SAMLRequest") -> Incoming:
    value = args.get(param)
    if not value:
        raise SamlError(N_("The request carries no %(param)s."), param=param)
    parts = [_raw_query_part(query_string, n) for n in (param, "RelayState", "SigAlg")]
    return Incoming(xml=inflate(value), relay_state=args.get("RelayState", ""),
                    binding="redirect", sig_alg=args.get("SigAlg", ""),
                    signature=args.get("Signature", ""),
                    signed_query="&".join(p for p in parts if p))


def from_post(form: dict, param: str = "SAMLRequest") -> Incoming:
    value = form.get(param)
    if not value:
        raise SamlError(N_("The request carries no %(param)s."), param=param)
    return Incoming(xml=b64decode(value), relay_state=form.get("RelayState", ""), binding="post")


def verify_signature(incoming: Incoming, certs: list[str]) -> None:
    """A signed request must verify against one of the SP's registered certificates."""
    pems = [OneLogin_Saml2_Utils.format_cert(c) for c in certs]
    if incoming.binding == "redirect":
        if not incoming.signature:
            raise SamlError(N_("This service provider signs its requests, but the request is not "
                            "signed."))
        alg = unquote_plus(incoming.sig_alg)
        if alg not in ALLOWED_SIG_ALGS:
            raise SamlError(N_("The request's signature algorithm is not accepted."))
        signature = b64decode(incoming.signature)
        if not any(OneLogin_Saml2_Utils.validate_binary_sign(incoming.signed_query, signature,
                                                             pem, alg) for pem in pems):
            raise SamlError(N_("The request's signature is not valid."))
        return
    verify_enveloped(parse(incoming.xml), pems, N_("request"),
                     unsigned=N_("This service provider signs its requests, but the request "
                                 "is not signed."))


def _text(root, path: str) -> str:
    found = xpath(root, path)
    return str(found[0]).strip() if found else ""


def parse_authn_request(xml: bytes) -> AuthnRequest:
    root = parse(xml)
    if root.tag != "{urn:oasis:names:tc:SAML:2.0:protocol}AuthnRequest":
        raise SamlError(N_("The message is not a SAML AuthnRequest."))
    if root.get("Version") != "2.0" or not root.get("ID"):
        raise SamlError(N_("The AuthnRequest is not SAML 2.0 or has no ID."))
    binding = root.get("ProtocolBinding")
    if binding and binding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST":
        raise SamlError(N_("Only the HTTP-POST binding is supported for responses."))
    return AuthnRequest(
        id=root.get("ID"),
        issuer=_text(root, "saml:Issuer/text()"),
        acs_url=(root.get("AssertionConsumerServiceURL") or "").strip(),
        destination=(root.get("Destination") or "").strip(),
        nameid_format=_text(root, "samlp:NameIDPolicy/@Format"),
        requested_contexts=[str(t).strip() for t in xpath(
            root, "samlp:RequestedAuthnContext/saml:AuthnContextClassRef/text()")],
        force_authn=(root.get("ForceAuthn") or "").lower() == "true",
        is_passive=(root.get("IsPassive") or "").lower() == "true",
    )


def parse_logout_request(xml: bytes) -> LogoutRequest:
    root = parse(xml)
    if root.tag != "{urn:oasis:names:tc:SAML:2.0:protocol}LogoutRequest" or not root.get("ID"):
        raise SamlError(N_("The message is not a SAML LogoutRequest."))
    encrypted = xpath(root, "saml:EncryptedID")
    if len(encrypted) + len(xpath(root, "saml:NameID")) > 1:
        raise SamlError(N_("The logout request names more than one subject."))
    return LogoutRequest(id=root.get("ID"), issuer=_text(root, "saml:Issuer/text()"),
                         nameid=_text(root, "saml:NameID/text()"),
                         encrypted_id=etree.tostring(encrypted[0]) if encrypted else b"",
                         nameid_format=_text(root, "saml:NameID/@Format"),
                         sp_name_qualifier=_text(root, "saml:NameID/@SPNameQualifier"),
                         session_indexes=[str(t).strip() for t in xpath(
                             root, "samlp:SessionIndex/text()")])


def reveal_nameid(logout: LogoutRequest, key_pems: Sequence[str]) -> LogoutRequest:
    """The request with the NameID that the SP encrypted to our encryption key decrypted into
    `nameid` (and its Format and SPNameQualifier; unchanged if it sent a plain NameID). Call it
    once the request's signature is checked: nothing from a sender we have not authenticated is
    decrypted (no decryption oracle for strangers)."""
    if not logout.encrypted_id:
        return logout
    nameid = decrypt_nameid(parse(logout.encrypted_id), key_pems)
    return replace(logout, nameid=(nameid.text or "").strip(), encrypted_id=b"",
                   nameid_format=(nameid.get("Format") or "").strip(),
                   sp_name_qualifier=(nameid.get("SPNameQualifier") or "").strip())
