"""IdP-proxy mode of the SSO door (UM2FA_SSO_UPSTREAM_METADATA set): the university's SAML IdP
asks for the password, we ask only for the second factor.

SP -> /saml/sso (as always) -> /sso/sign-in sends the browser on to /sso/upstream/login ->
the upstream IdP (HTTP-Redirect AuthnRequest, RelayState a random token kept in the session) ->
its Response POSTed to /sso/upstream/acs -> the local user signed in -> /sso/continue: the
usual prompt (app/web/sso_prompt.py), new-user policy and our own signed Response to the SP
(app/web/sso.py).
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.config import ConfigError
from app.core import audit, upstream_idp
from app.extensions import core, csrf
from app.i18n import N_
from app.web.auth import start_session
from app.web.limits import address_limit, signin_address_limit
from app.web.request_info import origin
from app.web.sso_base import DOOR, NO_SIGN_IN, error_page, no_sign_in, signing_keys
from saml import upstream
from saml.xml import SamlError

bp = Blueprint("sso_upstream", __name__)
SESSION_KEY = "upstream_req"
EXTENSION = "sso_upstream_idp"


def enabled() -> bool:
    return bool(current_app.config["UM2FA"].sso_upstream_metadata)


def load_idp(path: str) -> upstream.UpstreamIdp:
    try:
        return upstream.parse_idp_metadata(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"UM2FA_SSO_UPSTREAM_METADATA {path}: {exc.strerror}") from exc
    except SamlError as exc:
        raise ConfigError(f"UM2FA_SSO_UPSTREAM_METADATA {path}: {exc}") from exc


def init_app(app: Flask) -> None:
    """Read the upstream IdP's metadata at start-up, so that a bad file stops the start."""
    path = app.config["UM2FA"].sso_upstream_metadata
    if path:
        app.extensions[EXTENSION] = load_idp(path)
    app.register_blueprint(bp)


def _idp() -> upstream.UpstreamIdp:
    return current_app.extensions[EXTENSION]


def our_sp() -> upstream.ServiceProvider:
    return upstream.ServiceProvider.from_settings(current_app.config["UM2FA"], signing_keys())


@bp.get(upstream.METADATA_PATH)
def metadata():
    """Our SP metadata, for the upstream IdP's administrators (also `um2fa saml
    upstream-metadata`)."""
    if not enabled():
        abort(404)
    return Response(upstream.sp_metadata(our_sp()), mimetype="application/samlmetadata+xml")


@bp.get("/sso/upstream/login")
def login():
    """Send the browser to the upstream IdP for the pending SAML request's password step."""
    pending = session.get("saml_req")
    if not enabled():
        abort(404)
    if pending is None:
        return no_sign_in()
    relay = secrets.token_urlsafe(24)
    url, request_id = upstream.login_url(our_sp(), _idp(), relay_state=relay,
                                         force_authn=bool(pending.get("force")))
    session[SESSION_KEY] = {"id": request_id, "relay": relay, "for": pending["id"]}
    return redirect(url)


def _repost():
    """The Response came without our session cookie (SameSite=Lax keeps it off a cross-site
    POST): post it once more from our own origin, where the browser sends the cookie."""
    page = render_template("sso/upstream_repost.html", action=url_for("sso_upstream.acs"),
                           saml_response=request.form.get("SAMLResponse", ""),
                           relay=request.form.get("RelayState", ""))
    # Rendering made a CSRF token in a new, empty session: sending that cookie would replace
    # the browser's real session, the very one this page is there to bring back.
    session.modified = False
    return page


def _refuse(reason: str | Exception, status: int = 400):
    """The error page for `reason` (a marked text, or an exception carrying one); the audit
    keeps it in English."""
    audit.record(core.context(), origin(DOOR), "saml.upstream", "refused",
                 detail=str(reason)[:200])
    return error_page(reason, status)


@bp.post(upstream.ACS_PATH)
@csrf.exempt
@address_limit(signin_address_limit)
def acs():
    """The upstream IdP's Response: validated, used once, then our own prompt."""
    if not enabled():
        abort(404)
    state = session.get(SESSION_KEY)
    if state is None:
        if session:  # our cookie came, but no sign-in waits for an answer (a second POST)
            return _refuse(NO_SIGN_IN)
        if request.form.get("again") != "1":
            return _repost()
        return _refuse(N_("Your browser did not keep the sign-in session. Allow cookies for "
                          "this site and start again from the service you want to use."))
    session.pop(SESSION_KEY)  # one answer per request we sent, whatever happens next
    pending = session.get("saml_req")
    if pending is None or pending.get("id") != state.get("for"):
        return _refuse(NO_SIGN_IN)
    if not hmac.compare_digest(request.form.get("RelayState", "").encode(),
                               state["relay"].encode()):
        return _refuse(N_("The upstream IdP's answer is not for the sign-in we started."))
    ctx = core.context()
    settings = current_app.config["UM2FA"]
    try:
        identity = upstream.validate_response(our_sp(), _idp(),
                                              request.form.get("SAMLResponse", ""),
                                              request_id=state["id"], now=ctx.now())
        if not upstream_idp.claim_assertion(ctx, identity.issuer, identity.assertion_id,
                                            identity.not_on_or_after):
            raise SamlError(N_("This answer from the upstream IdP has been used already. "
                               "Start again from the service you want to use."))
        found = upstream_idp.describe(identity.username, identity.attributes,
                                      settings.sso_upstream_attributes, settings.saml_scope)
        user = upstream_idp.sign_in(ctx, origin(DOOR), found, identity.issuer)
    except (SamlError, upstream_idp.UpstreamError) as exc:
        return _refuse(exc)
    start_session(user, via="sso")
    session["saml_req"] = pending
    return redirect(url_for("sso.resume"), code=303)
