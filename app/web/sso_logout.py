"""Single logout at the SSO door: /saml/slo, on the blueprint `sso` (app/web/sso_base.py).

An SP's LogoutRequest ends our session only when it names what this session gave that SP
(app/core/single_logout.py: `refusal`); then, and on the IdP's own "Sign out" button, the
session's other SPs get our LogoutRequest one after the other, front-channel over
HTTP-Redirect, and their LogoutResponses come back here. The chain lives in the new, signed-out
session (session["saml_logout"]); at its end the "Signed out" page lists every service and, when
an SP asked, "Continue" takes the browser back to it with our LogoutResponse.
"""

from __future__ import annotations

from flask import redirect, render_template, request, session, url_for

from app.core import audit
from app.core import service_providers as sps
from app.core import single_logout as slo
from app.extensions import core
from app.i18n import N_
from app.i18n.refusal import said
from app.web.auth import current_user, end_session
from app.web.request_info import origin
from app.web.sso_base import (
    DOOR,
    base_url,
    bp,
    encryption_keys,
    entity_id,
    signing_keys,
)
from saml.logout import (
    PARTIAL_LOGOUT,
    UNKNOWN_PRINCIPAL,
    OutgoingLogout,
    logout_request_url,
    logout_response_url,
    parse_logout_response,
)
from saml.requests import (
    Incoming,
    from_redirect,
    parse_logout_request,
    reveal_nameid,
    verify_signature,
)
from saml.response import REQUESTER, SUCCESS
from saml.xml import SamlError

CHAIN = "saml_logout"  # the chain in progress, in the signed-out session
REQUEST_LIFETIME = 120  # seconds: NotOnOrAfter of our LogoutRequests (one browser redirect)


def _problem(reason: str | Exception):
    """The sign-out problem page for `reason` (app/i18n/refusal.py: said)."""
    return render_template("sso/sign_out_problem.html", message=said(reason),
                           in_progress=_chain() is not None), 400


def _chain() -> slo.Chain | None:
    data = session.get(CHAIN)
    return slo.Chain.from_dict(data) if data else None


def _raw_query() -> str:
    return request.query_string.decode("latin-1")


@bp.route("/saml/slo", methods=["GET"])
def single_logout():
    """SingleLogoutService, HTTP-Redirect: an SP's LogoutRequest, or an SP's LogoutResponse to
    ours. Without either it shows the sign-out in progress (to skip a service that does not
    answer), or else only a "Sign out" button (a POST with a CSRF token): a link or an image
    on any page must not sign anyone out."""
    if "SAMLRequest" in request.args:
        return _logout_request()
    if "SAMLResponse" in request.args:
        return _logout_response()
    chain = _chain()
    if chain is not None and chain.pending() is not None:
        return render_template("sso/signing_out.html", step=chain.pending())
    return render_template("sso/sign_out.html")


@bp.post("/saml/slo")
def sign_out():
    """The IdP's own "Sign out" (a POST with a CSRF token, flask-wtf checks it): every
    service of the session is signed out too, then the "Signed out" page."""
    services = slo.participants(session.get("saml_sps", [])) if session.get("uid") else []
    return _sign_out(services, requester=None)


@bp.post("/saml/slo/skip")
def skip_logout_step():
    """The service we wait for never answered: it did not confirm; on to the next one."""
    chain = _chain()
    step = chain.pending() if chain is not None else None
    if chain is None or step is None:
        return _problem(N_("There is no sign-out in progress."))
    audit.record(core.context(), origin(DOOR), "saml.logout_response", "skipped",
                 detail=step.sp)
    slo.skip(chain)
    return _next(chain)


# --- an SP's LogoutRequest ----------------------------------------------------------------

def _logout_request():
    ctx = core.context()
    try:
        incoming = from_redirect(_raw_query(), request.args)
        logout = parse_logout_request(incoming.xml)
        sp = sps.find(ctx, logout.issuer)
        if sp is None or not sp.slo_url:
            raise SamlError(N_("This service is not registered for single logout."))
        # An SP with a signing certificate must sign its LogoutRequests (an SP registered
        # without one is trusted on its word, as before: docs/saml.md).
        if sp.sign_requests or sps.certs(sp):
            verify_signature(incoming, sps.certs(sp))
        elif logout.encrypted_id:
            # nothing from a sender we cannot authenticate is decrypted (no decryption oracle)
            raise SamlError(N_("An encrypted NameID must come in a signed logout request."))
        logout = reveal_nameid(logout, [k.key_pem for k in encryption_keys()])
    except SamlError as exc:
        audit.record(ctx, origin(DOOR), "saml.logout", "refused", detail=str(exc)[:200])
        return _problem(exc)

    def answer(status: str = SUCCESS, sub_status: str = "") -> str:
        return logout_response_url(issuer=entity_id(), destination=sp.slo_url,
                                   in_response_to=logout.id, relay_state=incoming.relay_state,
                                   now=ctx.now(), key=signing_keys()[-1], status=status,
                                   sub_status=sub_status)

    if not session.get("uid"):
        # No live session in this browser: nothing to end, and the SP's wish (this person
        # signed out here) holds. Success, as SAML allows (docs/saml.md, "Single logout").
        audit.record(ctx, origin(DOOR), "saml.logout", "ok",
                     detail=f"{sp.entity_id}: no session in this browser")
        return redirect(answer())
    user = current_user()
    username = user.username if user else ""
    services = slo.participants(session.get("saml_sps", []))
    ask = slo.LogoutAsk(issuer=sp.entity_id, nameid=logout.nameid,
                        nameid_format=logout.nameid_format,
                        sp_name_qualifier=logout.sp_name_qualifier,
                        session_indexes=tuple(logout.session_indexes))
    reason = slo.refusal(services, session.get("saml_session", ""), ask)
    if reason is not None:
        audit.record(ctx, origin(DOOR), "saml.logout", "refused", username=username,
                     detail=f"{sp.entity_id}: {reason}")
        return redirect(answer(REQUESTER, UNKNOWN_PRINCIPAL))
    audit.record(ctx, origin(DOOR), "saml.logout", "ok", username=username,
                 detail=sp.entity_id)
    requester = slo.Requester(sp=sp.entity_id, request_id=logout.id,
                              relay_state=incoming.relay_state[:1024])
    return _sign_out(services, requester)


# --- the chain ------------------------------------------------------------------------------

def _sign_out(services: list[slo.Participant], requester: slo.Requester | None):
    """End our session, then sign the session's other services out, one after the other."""
    ctx = core.context()
    names = {}
    for service in services:
        found = sps.find(ctx, service.sp)
        names[service.sp] = found.name if found is not None else service.sp
    chain = slo.start(services, session.get("saml_session", ""), names, requester)
    end_session(DOOR)  # the session is empty from here on; the chain goes into the new one
    return _next(chain)


def _next(chain: slo.Chain):
    """Send the browser to the next service that can be asked, or finish. Bounded: each turn
    takes one step out of WAITING."""
    ctx = core.context()
    while (step := chain.next_waiting()) is not None:
        sp = sps.find(ctx, step.sp)
        if sp is None or not sp.slo_url:
            step.unreachable()
            continue
        url, request_id = logout_request_url(
            OutgoingLogout(issuer=entity_id(), destination=sp.slo_url, nameid=step.nameid,
                           nameid_format=step.format, sp_name_qualifier=step.sp,
                           session_index=chain.session_index),
            now=ctx.now(), lifetime=REQUEST_LIFETIME, key=signing_keys()[-1])
        step.sent(request_id)
        session[CHAIN] = chain.to_dict()
        return redirect(url)
    session.pop(CHAIN, None)
    return _finish(chain)


def _finish(chain: slo.Chain):
    """The end of the chain: back to the SP that asked (straight away when it was the only
    service), or the "Signed out" page with each service and whether it confirmed."""
    ctx = core.context()
    requester = chain.requester
    sp = sps.find(ctx, requester.sp) if requester is not None else None
    continue_url = ""
    if requester is not None and sp is not None and sp.slo_url:
        partial = chain.outcome() is slo.Outcome.PARTIAL
        continue_url = logout_response_url(
            issuer=entity_id(), destination=sp.slo_url, in_response_to=requester.request_id,
            relay_state=requester.relay_state, now=ctx.now(), key=signing_keys()[-1],
            sub_status=PARTIAL_LOGOUT if partial else "")
        if not chain.steps:
            return redirect(continue_url)
    return render_template("sso/signed_out.html", services=chain.steps,
                           all_confirmed=chain.outcome() is slo.Outcome.SUCCESS,
                           continue_url=continue_url)


# --- an SP's LogoutResponse to ours -------------------------------------------------------

def _logout_response():
    ctx = core.context()
    chain = _chain()
    try:
        if chain is None or chain.pending() is None:
            raise SamlError(N_("There is no sign-out in progress."))
        incoming = from_redirect(_raw_query(), request.args, "SAMLResponse")
        answer = parse_logout_response(incoming.xml)
        if slo.answer_refusal(chain, answer.issuer, answer.in_response_to) is not None:
            raise SamlError(N_("This answer is not from the service being signed out."))
        _check_answer(ctx, incoming, answer.issuer, answer.destination)
    except SamlError as exc:
        audit.record(ctx, origin(DOOR), "saml.logout_response", "refused",
                     detail=str(exc)[:200])
        return _problem(exc)
    slo.record_answer(chain, answer.success)
    audit.record(ctx, origin(DOOR), "saml.logout_response",
                 "ok" if answer.success else "not_confirmed",
                 detail=f"{answer.issuer} {answer.status} {answer.sub_status}".strip())
    return _next(chain)


def _check_answer(ctx, incoming: Incoming, issuer: str, destination: str) -> None:
    """The answering SP is registered, signed its answer when it has a signing certificate,
    and sent it to us."""
    sp = sps.find(ctx, issuer)
    if sp is None:
        raise SamlError(N_("This service is no longer registered."))
    if sps.certs(sp):
        try:
            verify_signature(incoming, sps.certs(sp))
        except SamlError as exc:
            raise SamlError(N_("The service's answer is not signed as its metadata requires.")) \
                from exc
    if destination and destination != base_url() + url_for("sso.single_logout"):
        raise SamlError(N_("The answer was meant for another sign-in service."))
