"""AuthnRequest and LogoutRequest in, over the HTTP-Redirect and HTTP-POST bindings."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import xmlsec
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from saml.xml import NS, SamlError, b64decode, inflate, parse, xpath

ALLOWED_SIG_ALGS = {C.RSA_SHA256, C.RSA_SHA384, C.RSA_SHA512}
ALLOWED_DIGEST_ALGS = {C.SHA256, C.SHA384, C.SHA512}
# what an enveloped signature over the whole message needs, and nothing that could select
# another part of the document (XPath, XSLT)
ALLOWED_TRANSFORMS = {
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
}
_DS = "{" + NS["ds"] + "}"


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
        raise SamlError(f"The request carries no {param}.")
    parts = [_raw_query_part(query_string, n) for n in (param, "RelayState", "SigAlg")]
    return Incoming(xml=inflate(value), relay_state=args.get("RelayState", ""),
                    binding="redirect", sig_alg=args.get("SigAlg", ""),
                    signature=args.get("Signature", ""),
                    signed_query="&".join(p for p in parts if p))


def from_post(form: dict, param: str = "SAMLRequest") -> Incoming:
    value = form.get(param)
    if not value:
        raise SamlError(f"The request carries no {param}.")
    return Incoming(xml=b64decode(value), relay_state=form.get("RelayState", ""), binding="post")


def verify_signature(incoming: Incoming, certs: list[str]) -> None:
    """A signed request must verify against one of the SP's registered certificates."""
    pems = [OneLogin_Saml2_Utils.format_cert(c) for c in certs]
    if incoming.binding == "redirect":
        if not incoming.signature:
            raise SamlError("This service provider signs its requests, but the request is not "
                            "signed.")
        alg = unquote_plus(incoming.sig_alg)
        if alg not in ALLOWED_SIG_ALGS:
            raise SamlError("The request's signature algorithm is not accepted.")
        signature = b64decode(incoming.signature)
        if not any(OneLogin_Saml2_Utils.validate_binary_sign(incoming.signed_query, signature,
                                                             pem, alg) for pem in pems):
            raise SamlError("The request's signature is not valid.")
        return
    root = parse(incoming.xml)
    signature = _enveloped_signature(root)
    # Only now may xmlsec resolve "#ID": the one reference names the root, and only the root
    # carries that ID.
    xmlsec.tree.add_ids(root, ["ID"])
    for pem in pems:
        try:
            if OneLogin_Saml2_Utils.validate_node_sign(signature, root, pem):
                return
        except OneLogin_Saml2_Error:  # its validation errors too: try the next certificate
            continue
    raise SamlError("The request's signature is not valid.")


def _enveloped_signature(root):
    """The message's one signature, if it signs the message itself, or a SamlError.

    Against signature wrapping: exactly one ds:Signature in the whole document, a direct child
    of the root, with exactly one Reference whose URI is "#" + the root's ID, an ID no other
    element carries; accepted algorithms and transforms only. The signature value itself is
    checked by the caller."""
    signatures = list(root.iter(_DS + "Signature"))
    if not signatures:
        raise SamlError("This service provider signs its requests, but the request is not "
                        "signed.")
    if len(signatures) > 1:
        raise SamlError("The request carries more than one signature.")
    signature = signatures[0]
    root_id = root.get("ID") or ""
    if signature.getparent() is not root or not root_id:
        raise SamlError("The request's signature does not sign the request itself.")
    # no other attribute (another ID, an xml:id) may name what the reference resolves to
    if root.xpath("count(//@*[. = $id])", id=root_id) != 1:
        raise SamlError("The request's ID is not unique.")
    references = xpath(signature, "ds:SignedInfo/ds:Reference")
    if len(references) != 1 or references[0].get("URI") != "#" + root_id:
        raise SamlError("The request's signature does not sign the request itself.")
    methods = xpath(signature, "ds:SignedInfo/ds:SignatureMethod/@Algorithm")
    digests = xpath(references[0], "ds:DigestMethod/@Algorithm")
    if (len(methods) != 1 or methods[0] not in ALLOWED_SIG_ALGS or len(digests) != 1
            or digests[0] not in ALLOWED_DIGEST_ALGS):
        raise SamlError("The request's signature algorithm is not accepted.")
    transforms = xpath(references[0], "ds:Transforms/ds:Transform")
    if any(t.get("Algorithm") not in ALLOWED_TRANSFORMS for t in transforms):
        raise SamlError("The request's signature uses a transform that is not accepted.")
    return signature


def _text(root, path: str) -> str:
    found = xpath(root, path)
    return str(found[0]).strip() if found else ""


def parse_authn_request(xml: bytes) -> AuthnRequest:
    root = parse(xml)
    if root.tag != "{urn:oasis:names:tc:SAML:2.0:protocol}AuthnRequest":
        raise SamlError("The message is not a SAML AuthnRequest.")
    if root.get("Version") != "2.0" or not root.get("ID"):
        raise SamlError("The AuthnRequest is not SAML 2.0 or has no ID.")
    binding = root.get("ProtocolBinding")
    if binding and binding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST":
        raise SamlError("Only the HTTP-POST binding is supported for responses.")
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
        raise SamlError("The message is not a SAML LogoutRequest.")
    return LogoutRequest(id=root.get("ID"), issuer=_text(root, "saml:Issuer/text()"),
                         nameid=_text(root, "saml:NameID/text()"),
                         nameid_format=_text(root, "saml:NameID/@Format"),
                         sp_name_qualifier=_text(root, "saml:NameID/@SPNameQualifier"),
                         session_indexes=[str(t).strip() for t in xpath(
                             root, "samlp:SessionIndex/text()")])
