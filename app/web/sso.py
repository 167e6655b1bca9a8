"""The SSO door: our SAML IdP. It translates SAML into core calls and answers the SP.

Flow: /saml/sso (AuthnRequest) -> /sso/continue decides -> /sso/sign-in (password) ->
/sso/prompt (second factor, with "Settings") -> /sso/continue posts the Response to the SP.
This module holds the protocol's endpoints (metadata, /saml/sso, /sso/continue, /saml/slo);
the sign-in and the 2FA prompt are in app/web/sso_prompt.py, on the same blueprint `sso`
(app/web/sso_base.py).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import (
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.core import audit, sso
from app.core import service_providers as sps
from app.extensions import core, csrf
from app.web import remember
from app.web.auth import current_user, end_session
from app.web.csp import CSP
from app.web.request_info import origin
from app.web.sso_base import (
    DOOR,
    base_url,
    bp,
    entity_id,
    error_page,
    no_sign_in,
    pending_request,
    signing_keys,
)
from saml.requests import (
    from_post,
    from_redirect,
    parse_authn_request,
    parse_logout_request,
    verify_signature,
)
from saml.response import Assertion, build_response, idp_metadata, logout_response_url
from saml.xml import SamlError


def _state() -> sso.SecondFactorState:
    pending = session.get("saml_req") or {}
    # ForceAuthn: the SP wants the person to authenticate now; a remembered browser is not that.
    return sso.SecondFactorState(in_session=bool(session.get("mfa_at")),
                                 for_this_request=bool(pending.get("mfa")),
                                 remembered=not pending.get("force")
                                 and remember.recognised(session.get("uid", -1)))


# --- metadata -------------------------------------------------------------------------------

@bp.get("/saml/metadata")
def metadata():
    settings = current_app.config["UM2FA"]
    keys = signing_keys()
    signed = settings.saml_sign_metadata and request.args.get("signed", "1") != "0"
    xml = idp_metadata(entity_id=entity_id(), sso_url=base_url() + url_for("sso.single_sign_on"),
                       slo_url=base_url() + url_for("sso.single_logout"), keys=keys,
                       sign_with=keys[-1] if signed else None, scope=settings.saml_scope)
    return Response(xml, mimetype="application/samlmetadata+xml")


# --- single sign-on -------------------------------------------------------------------------

@bp.route("/saml/sso", methods=["GET", "POST"])
@csrf.exempt
def single_sign_on():
    """Receive an AuthnRequest (HTTP-Redirect or HTTP-POST binding) from a registered SP."""
    ctx = core.context()
    try:
        if request.method == "POST":
            incoming = from_post(request.form)
        else:
            incoming = from_redirect(request.query_string.decode("latin-1"), request.args)
        authn = parse_authn_request(incoming.xml)
        sp = sps.find(ctx, authn.issuer)
        if sp is None:
            raise SamlError("This service is not registered with the university's sign-in "
                            "service.")
        acs = sps.choose_acs(sp, authn.acs_url)
        if sp.sign_requests:
            verify_signature(incoming, sps.certs(sp))
        expected = base_url() + url_for("sso.single_sign_on")
        if authn.destination and authn.destination != expected:
            raise SamlError("The request was meant for another sign-in service.")
    except (SamlError, sps.ServiceProviderError) as exc:
        audit.record(ctx, origin(DOOR), "saml.request", "refused", detail=str(exc)[:200])
        return error_page(str(exc))
    session["saml_req"] = {"sp": sp.entity_id, "id": authn.id, "acs": acs,
                           "relay": incoming.relay_state[:1024],
                           "format": authn.nameid_format,
                           "mfa_required": sso.requires_mfa(authn.requested_contexts),
                           "force": authn.force_authn, "mfa": False}
    if authn.force_authn:
        session.pop("uid", None)
        session.pop("mfa_at", None)
    return redirect(url_for("sso.resume"))


@bp.get("/sso/continue")
def resume():
    """Decide what the pending SAML request needs next, and answer the SP when it is done."""
    pending = pending_request()
    if pending is None:
        return no_sign_in()
    user = current_user()
    if user is None:
        return redirect(url_for("sso.sign_in"))
    ctx = core.context()
    state = _state()
    step = sso.next_step(ctx, user, state, sp_requires_mfa=pending["mfa_required"])
    if step is sso.Step.PROMPT or step is sso.Step.ENROL:
        return redirect(url_for("sso.prompt"))
    if step is sso.Step.DENY:
        return error_page("Your account has no device for two-factor authentication. "
                          "Please contact the IT help desk.", 403)
    mfa = sso.mfa_done(ctx, state, user)
    if pending["mfa_required"] and not mfa:
        return error_page("This service requires two-factor authentication.", 403)
    return _answer(pending, user, mfa)


def _authn_instant(mfa: bool) -> datetime | None:
    """The time of the authentication the answer rests on: the second factor's when it was
    done in this session, else the password's (a remembered browser did no factor now)."""
    state = _state()
    stamp = session.get("auth_at")
    if mfa and (state.for_this_request or state.in_session) and session.get("mfa_at"):
        stamp = max(stamp or 0, session["mfa_at"])
    return datetime.fromtimestamp(stamp, UTC) if stamp else None


def _answer(pending: dict, user, mfa: bool):
    ctx = core.context()
    sp = sps.find(ctx, pending["sp"])
    if sp is None:
        session.pop("saml_req", None)
        return error_page("This service is no longer registered.")
    try:
        fmt, value = sso.nameid(ctx, user, sp.entity_id, pending["format"],
                                sps.nameid_formats(sp))
    except sso.SsoError as exc:
        session.pop("saml_req", None)
        return error_page(str(exc))
    session_index = session.setdefault("saml_session", "_" + secrets.token_hex(16))
    assertion = Assertion(issuer=entity_id(), audience=sp.entity_id, recipient=pending["acs"],
                          in_response_to=pending["id"], nameid_format=fmt, nameid=value,
                          attributes=sso.attributes(ctx, user),
                          authn_context=sso.authn_context(mfa), session_index=session_index,
                          now=ctx.now(), authn_instant=_authn_instant(mfa),
                          lifetime=current_app.config["UM2FA"].saml_assertion_lifetime)
    xml = build_response(assertion, signing_keys()[-1])
    audit.record(ctx, origin(DOOR), "saml.response", "ok", username=user.username,
                 detail=f"{sp.entity_id} {'mfa' if mfa else 'password'}")
    session.pop("saml_req", None)
    _remember_service(sp.entity_id, fmt, value)
    page = render_template("sso/post.html", acs=pending["acs"], relay=pending["relay"],
                           saml_response=base64.b64encode(xml.encode()).decode(),
                           sp_name=sp.name)
    response = current_app.make_response(page)
    # The one page whose form leaves our origin: allow exactly the SP's ACS as a form target.
    acs = urlsplit(pending["acs"])
    response.headers["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", f"form-action 'self' {acs.scheme}://{acs.netloc}")
    return response


def _remember_service(entity: str, fmt: str, nameid: str) -> None:
    """The SPs this session signed in to, with the NameID each was given (the latest), for
    single logout: session["saml_sps"] = [{"sp", "format", "nameid"}], in sign-in order."""
    services = [s for s in session.get("saml_sps", []) if s["sp"] != entity]
    services.append({"sp": entity, "format": fmt, "nameid": nameid})
    session["saml_sps"] = services


# --- single logout --------------------------------------------------------------------------

@bp.route("/saml/slo", methods=["GET"])
def single_logout():
    """SP-initiated logout over HTTP-Redirect: end our session, answer with a LogoutResponse.

    Without a SAMLRequest this only shows a "Sign out" button (a POST with a CSRF token): a
    link or an image on any page must not sign anyone out.
    """
    ctx = core.context()
    if "SAMLRequest" not in request.args:
        return render_template("sso/sign_out.html")
    try:
        incoming = from_redirect(request.query_string.decode("latin-1"), request.args)
        logout = parse_logout_request(incoming.xml)
        sp = sps.find(ctx, logout.issuer)
        if sp is None or not sp.slo_url:
            raise SamlError("This service is not registered for single logout.")
        # An SP with a signing certificate must sign its LogoutRequests (an SP registered
        # without one is trusted on its word, as before: docs/saml.md).
        if sp.sign_requests or sps.certs(sp):
            verify_signature(incoming, sps.certs(sp))
    except SamlError as exc:
        audit.record(ctx, origin(DOOR), "saml.logout", "refused", detail=str(exc)[:200])
        return error_page(str(exc))
    user = current_user()
    audit.record(ctx, origin(DOOR), "saml.logout", "ok",
                 username=user.username if user else "", detail=sp.entity_id)
    end_session(DOOR)
    url = logout_response_url(issuer=entity_id(), destination=sp.slo_url,
                              in_response_to=logout.id, relay_state=incoming.relay_state,
                              now=ctx.now(), key=signing_keys()[-1])
    return redirect(url)


@bp.post("/saml/slo")
def sign_out():
    """Local sign-out from the SSO door: a POST with a CSRF token (flask-wtf checks it)."""
    end_session(DOOR)
    return render_template("sso/signed_out.html")
