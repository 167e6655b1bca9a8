"""Single logout's messages over the HTTP-Redirect binding: our signed LogoutRequest to a
service provider and our signed LogoutResponse out, the SP's LogoutResponse in. (The SP's
LogoutRequest in is read by saml/requests.py, with the AuthnRequest.)"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote_plus
from xml.sax.saxutils import escape, quoteattr

import xmlsec
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.i18n import N_
from saml.keys import SigningKey
from saml.response import SUCCESS, instant, new_id
from saml.xml import SamlError, deflate_b64, parse, xpath

UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
_PROTOCOL = "{urn:oasis:names:tc:SAML:2.0:protocol}"
_NAMESPACES = ('xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
               'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"')


@dataclass
class LogoutResponse:
    """An SP's answer to our LogoutRequest."""

    id: str
    issuer: str
    in_response_to: str
    status: str
    destination: str = ""
    sub_status: str = ""

    @property
    def success(self) -> bool:
        return self.status == SUCCESS


def signed_redirect(destination: str, param: str, xml: str, *, relay_state: str,
                    key: SigningKey) -> str:
    """`xml` over the HTTP-Redirect binding (DEFLATE, base64), signed RSA-SHA256: the URL to
    send the browser to."""
    query = f"{param}={quote_plus(deflate_b64(xml))}"
    if relay_state:
        query += f"&RelayState={quote_plus(relay_state)}"
    query += f"&SigAlg={quote_plus(C.RSA_SHA256)}"
    signature = OneLogin_Saml2_Utils.sign_binary(query.encode(), key.key_pem,
                                                 xmlsec.Transform.RSA_SHA256)
    query += f"&Signature={quote_plus(base64.b64encode(signature).decode())}"
    separator = "&" if "?" in destination else "?"
    return f"{destination}{separator}{query}"


def _status_xml(status: str, sub_status: str) -> str:
    inner = f'<samlp:StatusCode Value="{sub_status}"/>' if sub_status else ""
    return f'<samlp:Status><samlp:StatusCode Value="{status}">{inner}</samlp:StatusCode>' \
           f"</samlp:Status>"


def logout_response_url(*, issuer: str, destination: str, in_response_to: str,
                        relay_state: str, now: datetime, key: SigningKey,
                        status: str = SUCCESS, sub_status: str = "") -> str:
    """A signed LogoutResponse over the HTTP-Redirect binding, as a URL to send the browser to.
    `status` and its second-level `sub_status`: e.g. REQUESTER + UNKNOWN_PRINCIPAL for a
    request we refused, SUCCESS + PARTIAL_LOGOUT when some service did not confirm."""
    xml = (
        f'<samlp:LogoutResponse {_NAMESPACES} ID="{new_id()}" Version="2.0" '
        f'IssueInstant="{instant(now)}" Destination={quoteattr(destination)} '
        f"InResponseTo={quoteattr(in_response_to)}>"
        f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
        f"{_status_xml(status, sub_status)}"
        f"</samlp:LogoutResponse>"
    )
    return signed_redirect(destination, "SAMLResponse", xml, relay_state=relay_state, key=key)


@dataclass
class OutgoingLogout:
    """Our LogoutRequest to one service: whom it names, as we named them to that service."""

    issuer: str
    destination: str
    nameid: str
    nameid_format: str
    sp_name_qualifier: str
    session_index: str


def logout_request_url(request: OutgoingLogout, *, now: datetime, lifetime: int,
                       key: SigningKey) -> tuple[str, str]:
    """Our signed LogoutRequest over the HTTP-Redirect binding: (the URL, the request's ID).
    The NameID carries the Format and SPNameQualifier of the assertion that gave it; the
    request is valid for `lifetime` seconds (NotOnOrAfter)."""
    request_id = new_id()
    fmt = f" Format={quoteattr(request.nameid_format)}" if request.nameid_format else ""
    xml = (
        f'<samlp:LogoutRequest {_NAMESPACES} ID="{request_id}" Version="2.0" '
        f'IssueInstant="{instant(now)}" Destination={quoteattr(request.destination)} '
        f'NotOnOrAfter="{instant(now + timedelta(seconds=lifetime))}">'
        f"<saml:Issuer>{escape(request.issuer)}</saml:Issuer>"
        f"<saml:NameID{fmt} SPNameQualifier={quoteattr(request.sp_name_qualifier)}>"
        f"{escape(request.nameid)}</saml:NameID>"
        f"<samlp:SessionIndex>{escape(request.session_index)}</samlp:SessionIndex>"
        f"</samlp:LogoutRequest>"
    )
    url = signed_redirect(request.destination, "SAMLRequest", xml, relay_state="", key=key)
    return url, request_id


def _first(root, path: str) -> str:
    found = xpath(root, path)
    return str(found[0]).strip() if found else ""


def parse_logout_response(xml: bytes) -> LogoutResponse:
    """An SP's LogoutResponse: its ID, Issuer, InResponseTo and status. Whether it answers the
    request we sent, and its signature, are the caller's to check."""
    root = parse(xml)
    if root.tag != _PROTOCOL + "LogoutResponse" or not root.get("ID"):
        raise SamlError(N_("The message is not a SAML LogoutResponse."))
    if root.get("Version") != "2.0":
        raise SamlError(N_("The LogoutResponse is not SAML 2.0."))
    status = _first(root, "samlp:Status/samlp:StatusCode/@Value")
    if not status:
        raise SamlError(N_("The LogoutResponse has no status."))
    return LogoutResponse(
        id=root.get("ID"),
        issuer=_first(root, "saml:Issuer/text()"),
        in_response_to=(root.get("InResponseTo") or "").strip(),
        destination=(root.get("Destination") or "").strip(),
        status=status,
        sub_status=_first(root, "samlp:Status/samlp:StatusCode/samlp:StatusCode/@Value"),
    )
