"""IdP-proxy mode: UM 2FA as a service provider of the university's existing SAML IdP.

python3-saml builds our AuthnRequest (HTTP-Redirect, always signed with RSA-SHA256, which
suits an upstream that wants signed requests and one that ignores the signature) and does the
standard checks of the Response: signature of the response or the assertion by a certificate in
the upstream's metadata, issuer, status, one assertion. On top of that we check, without its
leniencies: InResponseTo on the response and the bearer confirmation equal to the request we
sent, our ACS URL as Destination (when given) and as Recipient (required), our entity ID in
every AudienceRestriction (at least one), and NotBefore / NotOnOrAfter of the conditions and
the confirmation with a small skew (python3-saml allows five minutes on the conditions).

Our SP side signs with the IdP's newest signing key (saml/keys.py): one key pair to keep and
rotate; its metadata publishes the previous certificate too. Its entity ID and ACS URL come
from UM2FA_BASE_URL.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from app.core.attribute_release import CATALOG
from app.i18n import N_
from saml.keys import SigningKey
from saml.xml import SamlError, b64decode, parse, xpath

METADATA_PATH = "/sso/upstream/metadata"
ACS_PATH = "/sso/upstream/acs"
SKEW = timedelta(seconds=60)
NAMEID = "NameID"
# NameIDs that never carry a username: transient ones change every time, persistent ones are
# opaque. With these the username must come from an attribute.
OPAQUE_NAMEID_FORMATS = (C.NAMEID_TRANSIENT, C.NAMEID_PERSISTENT)


@dataclass(frozen=True)
class UpstreamIdp:
    """What we use of the upstream IdP's metadata."""

    entity_id: str
    sso_url: str
    certs: tuple[str, ...]


@dataclass(frozen=True)
class ServiceProvider:
    """Our SP side, in front of the upstream IdP."""

    base_url: str
    key: SigningKey
    username_attribute: str = NAMEID
    # The previous key's certificate, published too while the upstream moves to a new key.
    previous_cert: str = ""
    # The upstream's attributes we map to our fields (UM2FA_SSO_UPSTREAM_ATTRIBUTES): asked for
    # in our metadata, as an IdP's release policy expects.
    mapped_attributes: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings, keys: list[SigningKey]) -> ServiceProvider:
        return cls(base_url=settings.base_url, key=keys[-1],
                   username_attribute=settings.sso_upstream_username_attribute,
                   previous_cert=keys[-2].cert_pem if len(keys) > 1 else "",
                   mapped_attributes=tuple(settings.sso_upstream_attributes.values()))

    def requested_attributes(self) -> list[dict]:
        """RequestedAttribute entries: the username attribute (required) and the mapped ones,
        under their urn:oid names when we know them."""
        names = ([self.username_attribute] if self.username_attribute != NAMEID else [])
        names += [n for n in self.mapped_attributes if n not in names]
        out = []
        for name in names:
            known = CATALOG.get(name)
            out.append({"name": known.oid if known else name,
                        **({"friendlyName": name} if known else {}),
                        "nameFormat": C.ATTRNAME_FORMAT_URI if known or name.startswith("urn:")
                        else C.ATTRNAME_FORMAT_UNSPECIFIED,
                        "isRequired": name == self.username_attribute})
        return out

    @property
    def entity_id(self) -> str:
        return self.base_url.rstrip("/") + METADATA_PATH

    @property
    def acs_url(self) -> str:
        return self.base_url.rstrip("/") + ACS_PATH


@dataclass(frozen=True)
class UpstreamIdentity:
    """A person as a validated upstream Response describes them."""

    issuer: str
    username: str
    attributes: dict[str, list[str]] = field(repr=False)
    assertion_id: str
    not_on_or_after: datetime


def parse_idp_metadata(xml: bytes | str) -> UpstreamIdp:
    """The upstream IdP's entity ID, HTTP-Redirect SSO URL and signing certificates."""
    parse(xml)  # size, DOCTYPE and entity checks before python3-saml reads it
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    try:
        data = OneLogin_Saml2_IdPMetadataParser.parse(text)
    except Exception as exc:  # the parser's errors are not one class
        raise SamlError("The upstream IdP's metadata cannot be read.") from exc
    idp = data.get("idp") or {}
    multi = (idp.get("x509certMulti") or {}).get("signing") or []
    certs = tuple(multi or ([idp["x509cert"]] if idp.get("x509cert") else []))
    if not idp.get("entityId"):
        raise SamlError("The upstream IdP's metadata has no IDPSSODescriptor with an entityID.")
    if not (idp.get("singleSignOnService") or {}).get("url"):
        raise SamlError("The upstream IdP's metadata has no SingleSignOnService with the "
                        "HTTP-Redirect binding.")
    if not certs:
        raise SamlError("The upstream IdP's metadata has no signing certificate.")
    return UpstreamIdp(entity_id=idp["entityId"], sso_url=idp["singleSignOnService"]["url"],
                       certs=certs)


def settings(sp: ServiceProvider, idp: UpstreamIdp | None) -> OneLogin_Saml2_Settings:
    data = {
        "strict": True,
        "sp": {
            "entityId": sp.entity_id,
            "assertionConsumerService": {"url": sp.acs_url, "binding": C.BINDING_HTTP_POST},
            "NameIDFormat": C.NAMEID_UNSPECIFIED,
            "x509cert": sp.key.cert_pem, "privateKey": sp.key.key_pem,
            **({"x509certNew": sp.previous_cert} if sp.previous_cert else {}),
            **({"attributeConsumingService": {
                "serviceName": "UM 2FA", "serviceDescription": "Two-factor authentication",
                "requestedAttributes": sp.requested_attributes()}}
               if sp.requested_attributes() else {}),
        },
        "security": {
            "authnRequestsSigned": True,
            # Either the response or the assertion must be signed (python3-saml insists on one).
            "wantAssertionsSigned": False, "wantMessagesSigned": False,
            "wantNameId": sp.username_attribute == NAMEID,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": C.RSA_SHA256, "digestAlgorithm": C.SHA256,
            "signMetadata": True, "metadataValidUntil": "", "metadataCacheDuration": "",
        },
    }
    if idp is not None:
        data["idp"] = {"entityId": idp.entity_id,
                       "singleSignOnService": {"url": idp.sso_url,
                                               "binding": C.BINDING_HTTP_REDIRECT},
                       "x509certMulti": {"signing": list(idp.certs)}}
    return OneLogin_Saml2_Settings(data, sp_validation_only=idp is None)


def sp_metadata(sp: ServiceProvider) -> str:
    """Our SP metadata, signed, for the upstream IdP's administrators."""
    xml = settings(sp, None).get_sp_metadata()
    return xml.decode() if isinstance(xml, bytes) else xml


def _request_data(sp: ServiceProvider, post: dict | None = None) -> dict:
    """python3-saml compares Destination and Recipient with the URL of this request: our public
    ACS URL, never a Host header the client chose."""
    parts = urlsplit(sp.acs_url)
    return {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.netloc,
            "script_name": parts.path, "get_data": {}, "post_data": post or {}}


def login_url(sp: ServiceProvider, idp: UpstreamIdp, *, relay_state: str,
              force_authn: bool = False) -> tuple[str, str]:
    """The HTTP-Redirect URL of our AuthnRequest to the upstream IdP, and the request's ID."""
    auth = OneLogin_Saml2_Auth(_request_data(sp), settings(sp, idp))
    url = auth.login(return_to=relay_state, force_authn=force_authn)
    return url, auth.get_last_request_id()


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as exc:
        raise SamlError(N_("The upstream IdP's answer has a time that cannot be read.")) from exc


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _check_window(not_before: datetime | None, not_after: datetime | None,
                  now: datetime) -> None:
    if not_before is not None and now + SKEW < not_before:
        raise SamlError(N_("The upstream IdP's answer is not valid yet (check the clocks)."))
    if not_after is not None and now - SKEW >= not_after:
        raise SamlError(N_("The upstream IdP's answer has expired. Start again from the service "
                        "you want to use."))


def _check_strictly(root, sp: ServiceProvider, request_id: str, now: datetime) -> datetime:
    """The checks python3-saml is lenient about; returns when the assertion stops being valid."""
    if not _same(root.get("InResponseTo"), request_id):
        raise SamlError(N_("The upstream IdP's answer is not for the sign-in we started."))
    if root.get("Destination") is not None and root.get("Destination") != sp.acs_url:
        raise SamlError(N_("The upstream IdP's answer was meant for another service."))
    assertions = xpath(root, "saml:Assertion")
    if len(assertions) != 1:
        raise SamlError(N_("The upstream IdP's answer must hold exactly one assertion."))
    assertion = assertions[0]
    restrictions = xpath(assertion, "saml:Conditions/saml:AudienceRestriction")
    if not restrictions or any(
            sp.entity_id not in [str(t).strip() for t in xpath(r, "saml:Audience/text()")]
            for r in restrictions):
        raise SamlError(N_("The upstream IdP's answer is meant for another service (audience)."))
    conditions = xpath(assertion, "saml:Conditions")[0]
    _check_window(_time(conditions.get("NotBefore")), _time(conditions.get("NotOnOrAfter")), now)
    for data in xpath(assertion, f"saml:Subject/saml:SubjectConfirmation[@Method='{C.CM_BEARER}']"
                                 "/saml:SubjectConfirmationData"):
        not_after = _time(data.get("NotOnOrAfter"))
        if (data.get("Recipient") == sp.acs_url and _same(data.get("InResponseTo"), request_id)
                and not_after is not None):
            _check_window(_time(data.get("NotBefore")), not_after, now)
            limit = _time(conditions.get("NotOnOrAfter"))
            return min(not_after, limit) if limit else not_after
    raise SamlError(N_("The upstream IdP's answer has no bearer confirmation for this sign-in "
                    "(Recipient, InResponseTo and NotOnOrAfter)."))


def _username(auth: OneLogin_Saml2_Auth, attribute: str,
              attributes: dict[str, list[str]]) -> str:
    if attribute == NAMEID:
        if auth.get_nameid_format() in OPAQUE_NAMEID_FORMATS:
            raise SamlError(N_("The upstream IdP sent an opaque NameID; set "
                            "UM2FA_SSO_UPSTREAM_USERNAME_ATTRIBUTE to the attribute that "
                            "holds the UMPASS ID."))
        value = auth.get_nameid() or ""
    else:
        value = next((v for v in attributes.get(attribute, []) if v.strip()), "")
    if not value.strip():
        raise SamlError(N_("The upstream IdP's answer does not say who signed in "
                           "(%(attribute)s is missing)."), attribute=attribute)
    return value.strip()


def validate_response(sp: ServiceProvider, idp: UpstreamIdp, saml_response: str, *,
                      request_id: str, now: datetime) -> UpstreamIdentity:
    """Check the Response POSTed to our ACS; SamlError (safe to show) when it is refused."""
    if not saml_response:
        raise SamlError(N_("The upstream IdP's answer carries no SAMLResponse."))
    parse(b64decode(saml_response))  # size, DOCTYPE and entity checks first
    auth = OneLogin_Saml2_Auth(_request_data(sp, {"SAMLResponse": saml_response}),
                               settings(sp, idp))
    try:
        auth.process_response(request_id=request_id)
    except Exception as exc:  # python3-saml raises several kinds
        raise SamlError(N_("The upstream IdP's answer cannot be read.")) from exc
    if auth.get_errors() or not auth.is_authenticated():
        reason = auth.get_last_error_reason() or "not authenticated"
        raise SamlError(N_("The upstream IdP's answer was refused: %(reason)s"), reason=reason)
    root = parse(auth.get_last_response_xml())
    not_after = _check_strictly(root, sp, request_id, now)
    attributes = {**auth.get_friendlyname_attributes(), **auth.get_attributes()}
    return UpstreamIdentity(issuer=idp.entity_id,
                            username=_username(auth, sp.username_attribute, attributes),
                            attributes=attributes,
                            assertion_id=auth.get_last_assertion_id() or "",
                            not_on_or_after=not_after)
