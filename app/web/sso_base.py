"""The SSO door's blueprint and what its endpoints share (the protocol's in app/web/sso.py,
the sign-in and 2FA prompt's in app/web/sso_prompt.py): the IdP's base URL, entity ID,
signing and encryption keys, the SAML request waiting in the session, error pages."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, session

from app.core import service_providers as sps
from app.extensions import core
from app.i18n import N_
from app.i18n.refusal import said
from saml import keys as saml_keys

bp = Blueprint("sso", __name__)
DOOR = "sso"
NO_SIGN_IN = N_("There is no sign-in in progress. Start again from the service you want to "
                "use.")


SAML_PARAMS = ("SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature")


@bp.context_processor
def _language_next() -> dict:
    """The language switcher comes back to the page without a SAML message in its address:
    a message is used once, and it would carry it into another page's form."""
    if any(name in request.args for name in SAML_PARAMS):
        return {"language_next": request.path}
    return {}


# --- helpers --------------------------------------------------------------------------------

def base_url() -> str:
    return (current_app.config["UM2FA"].base_url or request.url_root).rstrip("/")


def entity_id() -> str:
    return base_url() + "/saml/metadata"


def _key_pairs(name: str, prefix: str) -> list[saml_keys.KeyPair]:
    """The IdP's key pairs of one kind, read once per process (a restart reads new ones)."""
    app = current_app._get_current_object()
    if name not in app.extensions:
        settings = app.config["UM2FA"]
        instance, make = settings.instance_dir, settings.makes_keys
        try:
            app.extensions[name] = saml_keys.load_all(instance, entity_id(), prefix, make=make)
        except FileExistsError:  # another process generated the first key at the same moment
            app.extensions[name] = saml_keys.load_all(instance, entity_id(), prefix, make=make)
    return app.extensions[name]


def signing_keys() -> list[saml_keys.KeyPair]:
    """Oldest first; the last one signs."""
    return _key_pairs("saml_keys", saml_keys.SIGNING)


def encryption_keys() -> list[saml_keys.KeyPair]:
    """What SPs encrypt to us with (a LogoutRequest's NameID), oldest first."""
    return _key_pairs("saml_encryption_keys", saml_keys.ENCRYPTION)


def error_page(reason: str | Exception, status: int = 400):
    """The SSO error page; `reason` as for `shown` (the audit keeps `str(reason)`: English)."""
    return render_template("sso/error.html", message=said(reason)), status


def no_sign_in():
    """The error page for a step of the SSO door reached with no SAML request pending."""
    return error_page(NO_SIGN_IN)


def pending_request() -> dict | None:
    return session.get("saml_req")


def sp_name(pending: dict) -> str:
    sp = sps.find(core.context(), pending["sp"])
    return sp.name if sp else pending["sp"]
