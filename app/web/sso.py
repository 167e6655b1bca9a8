"""The SSO door: our SAML IdP. It translates SAML into core calls and answers the SP.

Flow: /saml/sso (AuthnRequest) -> /sso/continue decides -> /sso/sign-in (password) ->
/sso/prompt (second factor, with "Settings") -> /sso/continue posts the Response to the SP.
This module holds the protocol's endpoints (metadata, /saml/sso, /sso/continue); single logout
(/saml/slo) is in app/web/sso_logout.py, the sign-in and the 2FA prompt in
app/web/sso_prompt.py, all on the same blueprint `sso` (app/web/sso_base.py).
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

from app.core import attribute_release, audit, sp_encryption, sso
from app.core import service_providers as sps
from app.extensions import core, csrf
from app.i18n import N_
from app.web import remember
from app.web.auth import current_user
from app.web.csp import CSP
from app.web.request_info import origin
from app.web.sso_base import (
    DOOR,
    base_url,
    bp,
    encryption_keys,
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
    verify_signature,
)
from saml.response import (
    INVALID_NAMEID_POLICY,
    REQUESTER,
    Assertion,
    build_response,
    build_status_response,
    idp_metadata,
)
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
                       sign_with=keys[-1] if signed else None, scope=settings.saml_scope,
                       encryption_keys=encryption_keys())
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
            raise SamlError(N_("This service is not registered with the university's "
                               "sign-in service."))
        acs = sps.choose_acs(sp, authn.acs_url)
        if sp.sign_requests:
            verify_signature(incoming, sps.certs(sp))
        expected = base_url() + url_for("sso.single_sign_on")
        if authn.destination and authn.destination != expected:
            raise SamlError(N_("The request was meant for another sign-in service."))
    except (SamlError, sps.ServiceProviderError) as exc:
        audit.record(ctx, origin(DOOR), "saml.request", "refused", detail=str(exc)[:200])
        return error_page(exc)
    try:
        fmt = sso.nameid_format(authn.nameid_format, sp)
    except sso.NameIdPolicyError as exc:
        audit.record(ctx, origin(DOOR), "saml.request", "refused", detail=str(exc)[:200])
        xml = build_status_response(issuer=entity_id(), recipient=acs, in_response_to=authn.id,
                                    status=REQUESTER, sub_status=INVALID_NAMEID_POLICY,
                                    message=str(exc), now=ctx.now(), key=signing_keys()[-1])
        return _post_to_acs(acs, incoming.relay_state[:1024], xml, sp.name)
    session["saml_req"] = {"sp": sp.entity_id, "id": authn.id, "acs": acs,
                           "relay": incoming.relay_state[:1024], "format": fmt,
                           "mfa_required": sso.requires_mfa(authn.requested_contexts),
                           "force": authn.force_authn, "mfa": False}
    if authn.force_authn:
        # The person signs in again; if it is the same person, the SPs of this session stay
        # in it for single logout (app/web/sso_prompt.py: sign_in).
        if session.get("uid"):
            session["reauth"] = {"uid": session["uid"], "sps": session.get("saml_sps", []),
                                 "index": session.get("saml_session", "")}
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
        return error_page(N_("Your account has no device for two-factor authentication. "
                             "Please contact the IT help desk."), 403)
    mfa = sso.mfa_done(ctx, state, user)
    if pending["mfa_required"] and not mfa:
        return error_page(N_("This service requires two-factor authentication."), 403)
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
        return error_page(N_("This service is no longer registered."))
    try:
        value = sso.nameid(ctx, user, sp.entity_id, pending["format"])
        released = attribute_release.release(ctx, user, sp)
    except (sso.SsoError, attribute_release.ReleaseError) as exc:
        return _refuse(ctx, user, sp.entity_id, exc, str(exc))
    session_index = session.setdefault("saml_session", "_" + secrets.token_hex(16))
    assertion = Assertion(issuer=entity_id(), audience=sp.entity_id, recipient=pending["acs"],
                          in_response_to=pending["id"], nameid_format=pending["format"],
                          nameid=value, attributes=released,
                          authn_context=sso.authn_context(mfa), session_index=session_index,
                          now=ctx.now(), authn_instant=_authn_instant(mfa),
                          lifetime=current_app.config["UM2FA"].saml_assertion_lifetime)
    try:
        xml = build_response(assertion, signing_keys()[-1], sp_encryption.for_assertions(sp))
    except SamlError as exc:  # the SP's encryption certificate is unusable
        return _refuse(ctx, user, sp.entity_id, exc, "encryption certificate unusable")
    audit.record(ctx, origin(DOOR), "saml.response", "ok", username=user.username,
                 detail=f"{sp.entity_id} {'mfa' if mfa else 'password'}")
    session.pop("saml_req", None)
    _remember_service(sp.entity_id, pending["format"], value)
    return _post_to_acs(pending["acs"], pending["relay"], xml, sp.name)


def _refuse(ctx, user, sp_entity_id: str, message: Exception, reason: str):
    """No Response for this request: the person sees why, the audit says so."""
    session.pop("saml_req", None)
    audit.record(ctx, origin(DOOR), "saml.response", "refused", username=user.username,
                 detail=f"{sp_entity_id} {reason}"[:200])
    return error_page(message)


def _post_to_acs(acs_url: str, relay: str, xml: str, sp_name: str):
    """The page that posts a Response to the SP's ACS (the one form that leaves our origin:
    exactly that ACS is allowed as a form target)."""
    page = render_template("sso/post.html", acs=acs_url, relay=relay,
                           saml_response=base64.b64encode(xml.encode()).decode(),
                           sp_name=sp_name)
    response = current_app.make_response(page)
    acs = urlsplit(acs_url)
    response.headers["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", f"form-action 'self' {acs.scheme}://{acs.netloc}")
    return response


def _remember_service(entity: str, fmt: str, nameid: str) -> None:
    """The SPs this session signed in to, with the NameID each was given (the latest), for
    single logout: session["saml_sps"] = [{"sp", "format", "nameid"}], in sign-in order."""
    services = [s for s in session.get("saml_sps", []) if s["sp"] != entity]
    services.append({"sp": entity, "format": fmt, "nameid": nameid})
    session["saml_sps"] = services
