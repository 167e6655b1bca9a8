"""The SSO door: our SAML IdP. It translates SAML into core calls and renders the 2FA prompt.

Flow: /saml/sso (AuthnRequest) -> /sso/continue decides -> /sso/sign-in (password) ->
/sso/prompt (second factor, with "Settings") -> /sso/continue posts the Response to the SP.
"""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.core import audit, devices, prompt, push, sso
from app.core import service_providers as sps
from app.extensions import core, csrf, htmx, limiter
from app.web import push_prompt
from app.web.auth import current_user, mark_second_factor, start_session
from app.web.csp import CSP
from app.web.forms import DevicePasscodeForm, SignInForm
from app.web.request_info import origin
from saml import keys as saml_keys
from saml.requests import (
    from_post,
    from_redirect,
    parse_authn_request,
    parse_logout_request,
    verify_signature,
)
from saml.response import Assertion, build_response, idp_metadata, logout_response_url
from saml.xml import SamlError

bp = Blueprint("sso", __name__)
REMEMBER_COOKIE = "um2fa_remember"
DOOR = "sso"


# --- helpers --------------------------------------------------------------------------------

def base_url() -> str:
    return (current_app.config["UM2FA"].base_url or request.url_root).rstrip("/")


def entity_id() -> str:
    return base_url() + "/saml/metadata"


def signing_keys() -> list[saml_keys.SigningKey]:
    app = current_app._get_current_object()
    if "saml_keys" not in app.extensions:
        instance = app.config["UM2FA"].instance_dir
        try:
            app.extensions["saml_keys"] = saml_keys.load_all(instance, entity_id())
        except FileExistsError:  # another process generated the first key at the same moment
            app.extensions["saml_keys"] = saml_keys.load_all(instance, entity_id())
    return app.extensions["saml_keys"]


def error_page(message: str, status: int = 400):
    return render_template("sso/error.html", message=message), status


def _remember_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="um2fa-remember")


def _remembered(user_id: int) -> bool:
    days = current_app.config["UM2FA"].remember_days
    token = request.cookies.get(REMEMBER_COOKIE)
    if not days or not token:
        return False
    try:
        data = _remember_serializer().loads(token, max_age=days * 86400)
    except BadSignature:
        return False
    return data.get("uid") == user_id


def _state() -> sso.SecondFactorState:
    pending = session.get("saml_req") or {}
    return sso.SecondFactorState(in_session=bool(session.get("mfa_at")),
                                 for_this_request=bool(pending.get("mfa")),
                                 remembered=_remembered(session.get("uid", -1)))


def _pending() -> dict | None:
    return session.get("saml_req")


def _sp_name(pending: dict) -> str:
    sp = sps.find(core.context(), pending["sp"])
    return sp.name if sp else pending["sp"]


# --- metadata -------------------------------------------------------------------------------

@bp.get("/saml/metadata")
def metadata():
    settings = current_app.config["UM2FA"]
    keys = signing_keys()
    signed = settings.saml_sign_metadata and request.args.get("signed", "1") != "0"
    xml = idp_metadata(entity_id=entity_id(), sso_url=base_url() + url_for("sso.single_sign_on"),
                       slo_url=base_url() + url_for("sso.single_logout"), keys=keys,
                       sign_with=keys[-1] if signed else None)
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
    pending = _pending()
    if pending is None:
        return error_page("There is no sign-in in progress. Start again from the service you "
                          "want to use.")
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
                          now=ctx.now(),
                          lifetime=current_app.config["UM2FA"].saml_assertion_lifetime)
    xml = build_response(assertion, signing_keys()[-1])
    audit.record(ctx, origin(DOOR), "saml.response", "ok", username=user.username,
                 detail=f"{sp.entity_id} {'mfa' if mfa else 'password'}")
    session.pop("saml_req", None)
    services = set(session.get("saml_sps", []))
    services.add(sp.entity_id)
    session["saml_sps"] = sorted(services)
    page = render_template("sso/post.html", acs=pending["acs"], relay=pending["relay"],
                           saml_response=base64.b64encode(xml.encode()).decode(),
                           sp_name=sp.name)
    response = current_app.make_response(page)
    # The one page whose form leaves our origin: allow exactly the SP's ACS as a form target.
    acs = urlsplit(pending["acs"])
    response.headers["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", f"form-action 'self' {acs.scheme}://{acs.netloc}")
    return response


# --- sign-in and prompt ---------------------------------------------------------------------

def _signin_username() -> str:
    return "signin:" + (request.form.get("username") or "").strip().lower()[:64]


@bp.route("/sso/sign-in", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_signin_address, methods=["POST"])
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_signin_user,
               key_func=_signin_username, methods=["POST"])
def sign_in():
    if current_app.config["UM2FA"].sso_upstream_metadata:
        return redirect(url_for("sso_upstream.login"))  # IdP-proxy: the upstream asks
    pending = _pending()
    if pending is None:
        return error_page("There is no sign-in in progress. Start again from the service you "
                          "want to use.")
    form = SignInForm()
    if request.method == "GET":
        return render_template("sso/sign_in.html", form=form, sp_name=_sp_name(pending))
    if not form.validate():
        return render_template("sso/sign_in.html", form=form, sp_name=_sp_name(pending)), 400
    user = prompt.sign_in(core.context(), origin(DOOR), form.username.data, form.password.data)
    if user is None:
        return render_template("sso/sign_in.html", form=form, sp_name=_sp_name(pending),
                               error=prompt.SIGN_IN_FAILED), 401
    start_session(user, via="sso")
    session["saml_req"] = pending
    return redirect(url_for("sso.resume"))


def _push_links() -> push_prompt.Links:
    return push_prompt.Links(
        start=url_for("sso.push_start"), status=url_for("sso.push_status"),
        methods=url_for("sso.methods"), passcode=url_for("sso.prompt", method="passcode"),
        passcode_hx=url_for("prompt.passcode_form", next="done"),
        remember=bool(current_app.config["UM2FA"].remember_days))


def _prompt_page(form: DevicePasscodeForm, *, show_passcode: bool = False, error: str = "",
                 status: int = 200, push_view: push_prompt.PushView | None = None):
    user = current_user()
    pending = _pending()
    chosen = form.device.data or request.args.get("device", "")
    chosen_id = getattr(push_prompt.chosen_device(user, chosen), "id", None)
    return render_template(
        "sso/prompt.html", user=user, devices=devices.active_devices(user), chosen=chosen_id,
        form=form, error=error, show_passcode=show_passcode or bool(error), next="login",
        sp_name=_sp_name(pending), remember_days=current_app.config["UM2FA"].remember_days,
        new_user=current_app.config["UM2FA"].new_user, push_view=push_view,
        push_ok=push_prompt.can_push(user, chosen_id), push_links=_push_links()), status


def _second_factor_done(user, remember: bool):
    """A good second factor (passcode or push) for the pending SAML request: note it and go
    on to answer the SP; "Remember me" sets its cookie."""
    mark_second_factor()
    pending = dict(_pending() or {})
    pending["mfa"] = True
    session["saml_req"] = pending
    response = push_prompt.go_to(url_for("sso.resume"))
    days = current_app.config["UM2FA"].remember_days
    if days and remember:
        response = current_app.make_response(response)
        response.set_cookie(REMEMBER_COOKIE, _remember_serializer().dumps({"uid": user.id}),
                            max_age=days * 86400, httponly=True, samesite="Lax",
                            secure=request.is_secure, path="/sso")
    return response


def _passcode_user_key() -> str:
    return f"passcode:{session.get('uid', '-')}"


@bp.route("/sso/prompt", methods=["GET", "POST"], endpoint="prompt")
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_passcode_address, methods=["POST"])
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_passcode_user,
               key_func=_passcode_user_key, methods=["POST"])
def prompt_view():
    if _pending() is None:
        return error_page("There is no sign-in in progress. Start again from the service you "
                          "want to use.")
    user = current_user()
    if user is None:
        return redirect(url_for("sso.sign_in"))
    form = DevicePasscodeForm(formdata=request.form if request.method == "POST" else None)
    if request.method == "GET":
        return _prompt_page(form, show_passcode=request.args.get("method") == "passcode")
    if not form.validate():
        return _prompt_page(form, error=next(iter(form.errors.values()))[0], status=400)
    raw = form.device.data or ""
    device_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
    outcome = prompt.verify_passcode(core.context(), origin(DOOR), user, form.passcode.data,
                                     device_id=device_id)
    if not outcome.ok:
        return _prompt_page(form, error=outcome.message, status=401)
    return _second_factor_done(user, request.form.get("remember") == "yes")


def _prompt_gate():
    """The prompt's pages need a pending SAML request and a signed-in user."""
    if _pending() is None:
        return error_page("There is no sign-in in progress. Start again from the service you "
                          "want to use.")
    if current_user() is None:
        return redirect(url_for("sso.sign_in"))
    return None


@bp.get("/sso/prompt/methods")
def methods():
    """The methods bar for the device just chosen (htmx): "Send me a Push" only if it can."""
    if (stop := _prompt_gate()) is not None:
        return stop
    user = current_user()
    chosen = getattr(push_prompt.chosen_device(user, request.args.get("device")), "id", None)
    return render_template("_prompt_methods.html", chosen=chosen, push_links=_push_links(),
                           push_ok=push_prompt.can_push(user, chosen))


@bp.post("/sso/prompt/push")
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_passcode_address)
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_passcode_user,
               key_func=_passcode_user_key)
def push_start():
    """ "Send me a Push" for the service being signed in to."""
    if (stop := _prompt_gate()) is not None:
        return stop
    raw = request.form.get("device", "")
    try:
        push_prompt.start(DOOR, current_user(), raw, _sp_name(_pending()), device=raw,
                          sp=_pending()["sp"])
    except push.PushError as exc:
        form = DevicePasscodeForm(formdata=None, device=raw)
        return _prompt_page(form, error=str(exc), status=push_prompt.error_status(exc))
    return redirect(url_for("sso.push_status"), code=303)


@bp.get("/sso/prompt/push")
def push_status():
    """Polled every second while the push waits; an approval answers the SP."""
    if (stop := _prompt_gate()) is not None:
        return push_prompt.go_to(url_for("sso.resume")) if htmx else stop
    user = current_user()
    state = session.get(push_prompt.SESSION_KEY) or {}
    if state.get("door") == DOOR and state.get("sp") != _pending()["sp"]:
        push_prompt.forget()  # sent for another sign-in than the one now pending
    view = push_prompt.check(DOOR, user)
    if view.status == "done":
        return _second_factor_done(user, request.args.get("remember") == "yes")
    if htmx:
        return push_prompt.poll_response(view, _push_links())
    form = DevicePasscodeForm(formdata=None, device=view.state.get("device", ""))
    return _prompt_page(form, push_view=view)


@bp.get("/sso/settings")
def settings():
    """ "Settings" in the prompt: the device pages, reached from off campus."""
    if _pending() is None or current_user() is None:
        return error_page("There is no sign-in in progress. Start again from the service you "
                          "want to use.")
    return render_template("sso/settings.html", sp_name=_sp_name(_pending()))


# --- single logout --------------------------------------------------------------------------

@bp.route("/saml/slo", methods=["GET"])
def single_logout():
    """SP-initiated logout over HTTP-Redirect: end our session, answer with a LogoutResponse."""
    ctx = core.context()
    if "SAMLRequest" not in request.args:
        session.clear()
        return render_template("sso/signed_out.html")
    try:
        incoming = from_redirect(request.query_string.decode("latin-1"), request.args)
        logout = parse_logout_request(incoming.xml)
        sp = sps.find(ctx, logout.issuer)
        if sp is None or not sp.slo_url:
            raise SamlError("This service is not registered for single logout.")
        if sp.sign_requests:
            verify_signature(incoming, sps.certs(sp))
    except SamlError as exc:
        return error_page(str(exc))
    user = current_user()
    audit.record(ctx, origin(DOOR), "saml.logout", "ok",
                 username=user.username if user else "", detail=sp.entity_id)
    session.clear()
    url = logout_response_url(issuer=entity_id(), destination=sp.slo_url,
                              in_response_to=logout.id, relay_state=incoming.relay_state,
                              now=ctx.now(), key=signing_keys()[-1])
    response = redirect(url)
    response.delete_cookie(REMEMBER_COOKIE, path="/sso")
    return response


def pending_login_url(device_id: int | None = None) -> str | None:
    """Where "Continue to Login" goes while a SAML sign-in is pending (used by device pages)."""
    if session.get("saml_req") is None:
        return None
    return url_for("sso.prompt", device=device_id) if device_id else url_for("sso.prompt")

