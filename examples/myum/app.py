"""myUM, the demo service provider: "Sign in" sends you through UM 2FA and shows what it got.

Settings (environment): MYUM_BASE_URL (http://127.0.0.1:8001), MYUM_INSTANCE_DIR
(instance/myum: its key, certificate and secret), MYUM_IDP_METADATA (a file with UM 2FA's
metadata, from `um2fa saml metadata`), MYUM_NAME (myUM).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask, abort, redirect, render_template, request, session
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

ROOT = Path(__file__).resolve().parent
MFA = "https://refeds.org/profile/mfa"


def _instance() -> Path:
    path = Path(os.environ.get("MYUM_INSTANCE_DIR", "instance/myum"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key_and_cert(instance: Path) -> tuple[str, str]:
    key_path, cert_path = instance / "sp-key.pem", instance / "sp-cert.pem"
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "myUM demo")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650)).sign(key, hashes.SHA256()))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path.read_text(), cert_path.read_text()


def base_url() -> str:
    return os.environ.get("MYUM_BASE_URL", "http://127.0.0.1:8001").rstrip("/")


REQUESTED_ATTRIBUTES = (
    ("uid", "urn:oid:0.9.2342.19200300.100.1.1"),
    ("mail", "urn:oid:0.9.2342.19200300.100.1.3"),
    ("displayName", "urn:oid:2.16.840.1.113730.3.1.241"),
    ("eduPersonPrincipalName", "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"),
    ("eduPersonAffiliation", "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"),
)


def saml_settings(*, sp_only: bool = False) -> OneLogin_Saml2_Settings:
    key, cert = _key_and_cert(_instance())
    base = base_url()
    data = {
        "strict": True,
        "sp": {
            "entityId": base + "/metadata",
            "assertionConsumerService": {
                "url": base + "/acs",
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
            "singleLogoutService": {
                "url": base + "/sls",
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "x509cert": cert, "privateKey": key,
            # What myUM asks the IdP to release (RequestedAttribute in its metadata).
            "attributeConsumingService": {
                "serviceName": "myUM", "serviceDescription": "The university's portal",
                "requestedAttributes": [
                    {"name": oid, "friendlyName": friendly, "isRequired": False,
                     "nameFormat": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"}
                    for friendly, oid in REQUESTED_ATTRIBUTES]},
        },
        "security": {
            "authnRequestsSigned": True, "logoutRequestSigned": True,
            "logoutResponseSigned": True,  # our IdP requires it for propagated logout
            "wantAssertionsSigned": True, "wantMessagesSigned": True,
            "requestedAuthnContext": [MFA], "requestedAuthnContextComparison": "exact",
            "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
            "rejectDeprecatedAlgorithm": True,
        },
        "organization": {"en-US": {"name": "myUM", "displayname":
                                   os.environ.get("MYUM_NAME", "myUM"), "url": base}},
    }
    if sp_only:
        data["idp"] = {"entityId": "https://idp.invalid/", "x509cert": cert,
                       "singleSignOnService": {"url": "https://idp.invalid/sso"}}
    else:
        path = os.environ.get("MYUM_IDP_METADATA", "")
        if not path or not Path(path).exists():
            raise RuntimeError("MYUM_IDP_METADATA must name a file with UM 2FA's metadata")
        data["idp"] = OneLogin_Saml2_IdPMetadataParser.parse(Path(path).read_text())["idp"]
    return OneLogin_Saml2_Settings(data, sp_validation_only=sp_only)


def sp_metadata() -> str:
    xml = saml_settings(sp_only=True).get_sp_metadata()
    return xml.decode() if isinstance(xml, bytes) else xml


def _request_data() -> dict:
    parts = base_url().split("://", 1)
    return {"https": "on" if parts[0] == "https" else "off", "http_host": parts[1],
            "script_name": request.path, "get_data": request.args.copy(),
            "post_data": request.form.copy()}


def _auth() -> OneLogin_Saml2_Auth:
    return OneLogin_Saml2_Auth(_request_data(), saml_settings())


def create_app() -> Flask:
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    secret_file = _instance() / "secret_key"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
    app.secret_key = secret_file.read_text()
    app.config.update(SESSION_COOKIE_NAME="myum_session", SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_HTTPONLY=True)

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'")
        return response

    @app.get("/")
    def home():
        return render_template("home.html", user=session.get("user"))

    @app.get("/login")
    def login():
        auth = _auth()
        url = auth.login(return_to=base_url() + "/")
        session["request_id"] = auth.get_last_request_id()
        return redirect(url)

    @app.post("/acs")
    def acs():
        auth = _auth()
        auth.process_response(request_id=session.pop("request_id", None))
        if auth.get_errors() or not auth.is_authenticated():
            return render_template("home.html", user=None,
                                   error=auth.get_last_error_reason() or "Sign-in failed"), 400
        session["user"] = {"nameid": auth.get_nameid(), "session_index": auth.get_session_index(),
                           "attributes": auth.get_friendlyname_attributes(),
                           "contexts": auth.get_last_authn_contexts()}
        return redirect("/")

    @app.get("/logout")
    def logout():
        user = session.get("user")
        if not user:
            return redirect("/")
        auth = _auth()
        url = auth.logout(name_id=user["nameid"], session_index=user["session_index"],
                          return_to=base_url() + "/")
        session["logout_id"] = auth.get_last_request_id()
        return redirect(url)

    @app.get("/sls")
    def sls():
        auth = _auth()
        url = auth.process_slo(request_id=session.pop("logout_id", None),
                               delete_session_cb=session.clear)
        if auth.get_errors():
            abort(400)
        session.clear()
        return redirect(url or "/")

    @app.get("/favicon.ico")
    def favicon():
        return "", 204  # no icon; browsers ask anyway, and a 404 is a console error

    @app.get("/metadata")
    def metadata():
        return sp_metadata(), 200, {"Content-Type": "application/samlmetadata+xml"}

    return app
