"""Enveloped XML signatures over a whole document: the one rule against signature wrapping,
for a POSTed AuthnRequest (saml/requests.py) and a federation's metadata aggregate
(saml/aggregate.py)."""

from __future__ import annotations

import xmlsec
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.i18n import N_
from saml.xml import NS, SamlError, xpath

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
TERMS = ("what",)  # `what` names the document: a marked text, translated with the message


def verify_enveloped(root: etree._Element, pems: list[str], what: str, *,
                     unsigned: str = "") -> None:
    """`root` carries an enveloped signature of itself, valid under one of `pems`, or a
    SamlError. `what` names the document in the messages ("request", "metadata"); `unsigned`
    replaces the message for a document without any signature."""
    signature = enveloped_signature(root, what, unsigned=unsigned)
    # Only now may xmlsec resolve "#ID": the one reference names the root, and only the root
    # carries that ID (other elements' IDs are not registered: nothing else may be resolved).
    xmlsec.tree.add_ids(root, ["ID"])
    for pem in pems:
        try:
            if OneLogin_Saml2_Utils.validate_node_sign(signature, root, pem):
                return
        except OneLogin_Saml2_Error:  # its validation errors too: try the next certificate
            continue
        except xmlsec.Error:  # a certificate xmlsec cannot read
            continue
    raise SamlError(N_("The %(what)s's signature is not valid."),
                        terms=TERMS, what=what)


def enveloped_signature(root: etree._Element, what: str, *,
                        unsigned: str = "") -> etree._Element:
    """The document's one signature, if it signs the document itself, or a SamlError.

    Against signature wrapping: exactly one ds:Signature in the whole document, a direct child
    of the root, with exactly one Reference whose URI is "#" + the root's ID, an ID no other
    element carries; accepted algorithms and transforms only. The signature value itself is
    checked by the caller (verify_enveloped)."""
    signatures = list(root.iter(_DS + "Signature"))
    if not signatures:
        if unsigned:
            raise SamlError(unsigned)
        raise SamlError(N_("The %(what)s is not signed."), terms=TERMS, what=what)
    if len(signatures) > 1:
        raise SamlError(N_("The %(what)s carries more than one signature."),
                        terms=TERMS, what=what)
    signature = signatures[0]
    root_id = root.get("ID") or ""
    if signature.getparent() is not root or not root_id:
        raise SamlError(N_("The %(what)s's signature does not sign the %(what)s itself."),
                        terms=TERMS, what=what)
    # no other attribute (another ID, an xml:id) may name what the reference resolves to
    if root.xpath("count(//@*[. = $id])", id=root_id) != 1:
        raise SamlError(N_("The %(what)s's ID is not unique."), terms=TERMS, what=what)
    references = xpath(signature, "ds:SignedInfo/ds:Reference")
    if len(references) != 1 or references[0].get("URI") != "#" + root_id:
        raise SamlError(N_("The %(what)s's signature does not sign the %(what)s itself."),
                        terms=TERMS, what=what)
    methods = xpath(signature, "ds:SignedInfo/ds:SignatureMethod/@Algorithm")
    digests = xpath(references[0], "ds:DigestMethod/@Algorithm")
    if (len(methods) != 1 or methods[0] not in ALLOWED_SIG_ALGS or len(digests) != 1
            or digests[0] not in ALLOWED_DIGEST_ALGS):
        raise SamlError(N_("The %(what)s's signature algorithm is not accepted."),
                        terms=TERMS, what=what)
    transforms = xpath(references[0], "ds:Transforms/ds:Transform")
    if any(t.get("Algorithm") not in ALLOWED_TRANSFORMS for t in transforms):
        raise SamlError(N_("The %(what)s's signature uses a transform that is not accepted."),
                        terms=TERMS, what=what)
    return signature
