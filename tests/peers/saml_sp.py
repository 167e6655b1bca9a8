"""A real SAML service provider (python3-saml) for the tests: it builds AuthnRequests and
validates our Responses exactly as a university web system would."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.core.attribute_release import CATALOG

MFA = "https://refeds.org/profile/mfa"
URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
# What a typical university web system asks for in its metadata (RequestedAttribute).
TYPICAL_REQUEST = (("uid", False), ("mail", False), ("displayName", False),
                   ("eduPersonPrincipalName", False), ("eduPersonAffiliation", False))


def key_and_cert(cn: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())


_KEYS: dict[str, tuple[str, str]] = {}


@dataclass
class TestSP:
    base: str = "http://sp.test"
    idp_metadata: str = ""
    sign_requests: bool = False
    want_mfa: bool = False
    nameid_format: str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    name: str = "Test SP"
    # wants encrypted assertions (its metadata then publishes an encryption KeyDescriptor)
    encrypted: bool = False
    # encrypts the NameID of its LogoutRequests to the IdP's encryption certificate
    encrypt_nameid: bool = False
    sign_logout_responses: bool = True
    extra: dict = field(default_factory=dict)
    # (friendly name, isRequired) of the RequestedAttributes in its metadata, by urn:oid name
    requested: tuple = TYPICAL_REQUEST
    # entity attributes in its metadata (mdattr:EntityAttributes): name -> values
    entity_attributes: dict = field(default_factory=dict)

    __test__ = False  # not a pytest class

    @property
    def entity_id(self) -> str:
        return self.base + "/metadata"

    @property
    def acs(self) -> str:
        return self.base + "/acs"

    def settings(self) -> OneLogin_Saml2_Settings:
        if self.base not in _KEYS:
            _KEYS[self.base] = key_and_cert(urlsplit(self.base).hostname)
        key, cert = _KEYS[self.base]
        data = {
            "strict": True,
            "sp": {
                "entityId": self.entity_id,
                "assertionConsumerService": {"url": self.acs, "binding":
                                             "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
                "singleLogoutService": {"url": self.base + "/sls", "binding":
                                        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
                "NameIDFormat": self.nameid_format,
                "x509cert": cert, "privateKey": key,
                **({"attributeConsumingService": {
                    "serviceName": self.name, "serviceDescription": self.name,
                    "requestedAttributes": [
                        {"name": CATALOG[n].oid, "friendlyName": n, "nameFormat": URI,
                         "isRequired": required} for n, required in self.requested]}}
                   if self.requested else {}),
            },
            "security": {
                "authnRequestsSigned": self.sign_requests, "logoutRequestSigned": True,
                "logoutResponseSigned": self.sign_logout_responses,
                "wantAssertionsSigned": True, "wantMessagesSigned": True,
                "wantNameId": True, "signatureAlgorithm":
                    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                "requestedAuthnContext": [MFA] if self.want_mfa else False,
                "requestedAuthnContextComparison": "exact",
                "rejectDeprecatedAlgorithm": True,
                "wantAssertionsEncrypted": self.encrypted,
                "nameIdEncrypted": self.encrypt_nameid,
            },
            "organization": {"en-US": {"name": self.name, "displayname": self.name,
                                       "url": self.base}},
        }
        if self.idp_metadata:
            # only the IdP part: the parser also proposes SP security and NameID settings
            data["idp"] = OneLogin_Saml2_IdPMetadataParser.parse(self.idp_metadata)["idp"]
        else:
            data["idp"] = {"entityId": "http://idp.invalid/", "singleSignOnService": {
                "url": "http://idp.invalid/sso"}, "x509cert": cert}
        data.update(self.extra)
        return OneLogin_Saml2_Settings(data, sp_validation_only=not self.idp_metadata)

    def metadata(self) -> str:
        settings = self.settings()
        xml = settings.get_sp_metadata()
        xml = xml.decode() if isinstance(xml, bytes) else xml
        if self.entity_attributes:
            xml = with_entity_attributes(xml, self.entity_attributes)
        return xml

    def _request(self, path: str, get=None, post=None) -> dict:
        parts = urlsplit(self.base)
        return {"https": "on" if parts.scheme == "https" else "off",
                "http_host": parts.netloc,
                "script_name": path, "get_data": get or {}, "post_data": post or {}}

    def login(self, relay_state: str = "", *, force_authn: bool = False) -> tuple[str, str]:
        """The redirect URL to the IdP and the AuthnRequest ID."""
        auth = OneLogin_Saml2_Auth(self._request("/login"), self.settings())
        url = auth.login(return_to=relay_state or None, force_authn=force_authn)
        return url, auth.get_last_request_id()

    def login_post(self) -> tuple[str, str]:
        """An AuthnRequest for the HTTP-POST binding, signed inside the XML (an enveloped
        signature) when the SP signs its requests: (the XML, its ID)."""
        settings = self.settings()
        request = OneLogin_Saml2_Authn_Request(settings)
        xml = request.get_xml()
        if self.sign_requests:
            security = settings.get_security_data()
            xml = OneLogin_Saml2_Utils.add_sign(xml, settings.get_sp_key(),
                                                settings.get_sp_cert(),
                                                sign_algorithm=security["signatureAlgorithm"],
                                                digest_algorithm=security["digestAlgorithm"])
        return (xml.decode() if isinstance(xml, bytes) else xml), request.get_id()

    def acs_post(self, saml_response: str, request_id: str | None) -> OneLogin_Saml2_Auth:
        auth = OneLogin_Saml2_Auth(self._request("/acs", post={"SAMLResponse": saml_response}),
                                   self.settings())
        auth.process_response(request_id=request_id)
        return auth

    def logout(self, name_id: str, session_index: str | None, **kwargs) -> tuple[str, str]:
        """A signed LogoutRequest to the IdP (kwargs: python3-saml's name_id_format, spnq, nq):
        (the redirect URL, the request's ID)."""
        auth = OneLogin_Saml2_Auth(self._request("/logout"), self.settings())
        url = auth.logout(name_id=name_id, session_index=session_index, **kwargs)
        return url, auth.get_last_request_id()

    def sls(self, url: str, request_id: str | None = None) -> OneLogin_Saml2_Auth:
        """The SP's SingleLogoutService receives `url` (a LogoutResponse to its own request)."""
        auth, _ = self.sls_redirect(url, request_id)
        return auth

    def sls_redirect(self, url: str, request_id: str | None = None
                     ) -> tuple[OneLogin_Saml2_Auth, str | None]:
        """The SP's SingleLogoutService receives `url`: a LogoutResponse, or the IdP's
        LogoutRequest (propagated single logout), which it checks (signature, Destination,
        Issuer, NotOnOrAfter) and answers: (the auth, the redirect URL of its answer)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        auth = OneLogin_Saml2_Auth(self._request("/sls", get=query), self.settings())
        answer = auth.process_slo(request_id=request_id, keep_local_session=True)
        return auth, answer

    def logout_response(self, in_response_to: str,
                        status: str = OneLogin_Saml2_Constants.STATUS_SUCCESS) -> str:
        """A LogoutResponse of this SP's own making (signed as the SP signs them), as the URL of
        the IdP's SingleLogoutService to send the browser to."""
        settings = self.settings()
        builder = OneLogin_Saml2_Logout_Response(settings)
        builder.build(in_response_to, status=status)
        parameters = {"SAMLResponse": builder.get_response()}
        auth = OneLogin_Saml2_Auth(self._request("/sls"), settings)
        if self.sign_logout_responses:
            auth.add_response_signature(parameters,
                                        settings.get_security_data()["signatureAlgorithm"])
        return OneLogin_Saml2_Utils.redirect(auth.get_slo_response_url(), parameters)


def with_entity_attributes(xml: str, attributes: dict[str, list[str]]) -> str:
    """SP metadata with an mdattr:EntityAttributes extension (entity categories,
    subject-id:req), as a federation's registrar adds it."""
    values = "".join(
        f'<saml:Attribute Name="{name}" NameFormat="{URI}">'
        + "".join(f"<saml:AttributeValue>{v}</saml:AttributeValue>" for v in vals)
        + "</saml:Attribute>" for name, vals in attributes.items())
    extension = ('<md:Extensions><mdattr:EntityAttributes '
                 'xmlns:mdattr="urn:oasis:names:tc:SAML:metadata:attribute" '
                 'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
                 f"{values}</mdattr:EntityAttributes></md:Extensions>")
    head, rest = xml.split("<md:SPSSODescriptor", 1)
    return head + extension + "<md:SPSSODescriptor" + rest


SAML_RESPONSE_RE = re.compile(r'name="SAMLResponse" value="([^"]+)"')
