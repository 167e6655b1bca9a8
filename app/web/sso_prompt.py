"""The SSO door's sign-in and 2FA prompt: password, then passcode or push, and "Settings".

A recovery passcode typed here opens "Add a new device" only (app/web/devices.py:
after_recovery); the sign-in to the SP is finished with the new device, back at this prompt.

Routes on the SSO blueprint (app/web/sso_base.py; app/web/sso.py answers the SP once the
prompt is done):
/sso/sign-in, /sso/prompt (with its methods bar and "Send me a Push"), /sso/settings.
"""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for

from app.core import devices, push, security_keys, signin
from app.extensions import core, htmx
from app.i18n import _
from app.web import devices as add_device
from app.web import push_prompt, remember
from app.web import security_keys as keys_web
from app.web.auth import (
    current_subject,
    current_user,
    mark_second_factor,
    start_session,
)
from app.web.forms import DevicePasscodeForm, SignInForm
from app.web.limits import passcode_limits, signin_limits
from app.web.request_info import origin
from app.web.sso_base import (
    DOOR,
    bp,
    no_sign_in,
    pending_request,
    sp_name,
)


@bp.route("/sso/sign-in", methods=["GET", "POST"])
@signin_limits(methods=["POST"])
def sign_in():
    if current_app.config["UM2FA"].sso_upstream_metadata:
        return redirect(url_for("sso_upstream.login"))  # IdP-proxy: the upstream asks
    pending = pending_request()
    if pending is None:
        return no_sign_in()
    form = SignInForm()
    if request.method == "GET":
        return render_template("sso/sign_in.html", form=form, sp_name=sp_name(pending))
    if not form.validate():
        return render_template("sso/sign_in.html", form=form, sp_name=sp_name(pending)), 400
    user = signin.sign_in(core.context(), origin(DOOR), form.username.data, form.password.data)
    if user is None:
        return render_template("sso/sign_in.html", form=form, sp_name=sp_name(pending),
                               error=signin.SIGN_IN_FAILED), 401
    before = session.get("reauth") or {}
    start_session(user, via="sso")
    session["saml_req"] = pending
    if before.get("uid") == user.id and before.get("index"):  # ForceAuthn, the same person
        session["saml_sps"], session["saml_session"] = before["sps"], before["index"]
    return redirect(url_for("sso.resume"))


def _push_links() -> push_prompt.Links:
    return push_prompt.Links(
        start=url_for("sso.push_start"), status=url_for("sso.push_status"),
        methods=url_for("sso.methods"), passcode=url_for("sso.prompt", method="passcode"),
        passcode_hx=url_for("prompt.passcode_form", next="done"),
        remember=remember.offered(), key_options=url_for("sso.key_options"),
        key_verify=url_for("sso.key_verify"))


def _prompt_page(form: DevicePasscodeForm, *, show_passcode: bool = False, error: str = "",
                 status: int = 200, push_view: push_prompt.PushView | None = None):
    user = current_user()
    pending = pending_request()
    chosen = form.device.data or request.args.get("device", "")
    chosen_id = getattr(push_prompt.chosen_device(user, chosen), "id", None)
    at_once = push_prompt.passcode_at_once(user)
    return render_template(
        "sso/prompt.html", user=user, devices=devices.active_devices(user), chosen=chosen_id,
        form=form, error=error, next="login",
        show_passcode=show_passcode or bool(error) or at_once, passcode_at_once=at_once,
        sp_name=sp_name(pending), remember_days=current_app.config["UM2FA"].remember_days,
        new_user=current_app.config["UM2FA"].new_user, push_view=push_view,
        push_ok=push_prompt.can_push(user, chosen_id),
        key_ok=push_prompt.can_use_key(user, chosen_id), push_links=_push_links()), status


def _second_factor_done(user, wanted: bool, device_id: int | None):
    """A good second factor (passcode or push) for the pending SAML request: note it and go
    on to answer the SP; "Remember me" sets its cookie."""
    mark_second_factor(device_id)
    pending = dict(pending_request() or {})
    pending["mfa"] = True
    session["saml_req"] = pending
    response = push_prompt.go_to(url_for("sso.resume"))
    if wanted and remember.offered():
        response = remember.remember(current_app.make_response(response), user)
    return response


@bp.route("/sso/prompt", methods=["GET", "POST"], endpoint="prompt")
@passcode_limits(methods=["POST"])
def prompt_view():
    if pending_request() is None:
        return no_sign_in()
    if request.method == "POST":
        return _verify()
    user = current_user()
    if user is None:
        return redirect(url_for("sso.sign_in"))
    form = DevicePasscodeForm(formdata=None)
    if request.args.get("method") == "passcode":
        return _prompt_page(form, show_passcode=True)
    _forget_push_of_another_sign_in()
    raw = request.args.get("device", "")
    view = push_prompt.send_at_once(DOOR, user, raw, sp_name(pending_request()),
                                    sp=pending_request()["sp"])
    if view is not None:
        form.device.data = view.state.get("device", raw)
    return _prompt_page(form, push_view=view)


def _verify():
    """ "Enter a Passcode": checked on the user read with the session (auth.current_subject,
    no ORM), as the portal's prompt does; the ORM user only to draw the page again or for
    "Remember me"."""
    if current_subject() is None:
        return redirect(url_for("sso.sign_in"))
    wanted = request.form.get("remember") == "yes"
    return add_device.passcode_step(
        origin(DOOR),
        again=lambda form, error, status: _prompt_page(form, error=error, status=status),
        done=lambda device_id: _second_factor_done(current_user() if wanted else None, wanted,
                                                   device_id))


def _prompt_gate():
    """The prompt's pages need a pending SAML request and a signed-in user."""
    if pending_request() is None:
        return no_sign_in()
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
                           push_ok=push_prompt.can_push(user, chosen),
                           key_ok=push_prompt.can_use_key(user, chosen))


@bp.post("/sso/prompt/security-key/options")
def key_options():
    """ "Use your security key": navigator.credentials.get's options (JSON)."""
    if _prompt_gate() is not None:
        return keys_web.refused(_(security_keys.EXPIRED), 409)
    return keys_web.sign_in_options(current_user())


@bp.post("/sso/prompt/security-key")
@passcode_limits()
def key_verify():
    """The security key's answer (JSON): on success the SP is answered (REFEDS MFA)."""
    if _prompt_gate() is not None:
        return keys_web.refused(_(security_keys.EXPIRED), 409)
    user = current_user()
    body = request.get_json(silent=True)
    wanted = isinstance(body, dict) and body.get("remember") is True
    return keys_web.sign_in(DOOR, user,
                            lambda device_id: _second_factor_done(user, wanted, device_id))


@bp.post("/sso/prompt/push")
@passcode_limits()
def push_start():
    """ "Send me a Push" for the service being signed in to."""
    if (stop := _prompt_gate()) is not None:
        return stop
    raw = request.form.get("device", "")
    try:
        push_prompt.start(DOOR, current_user(), raw, sp_name(pending_request()), device=raw,
                          sp=pending_request()["sp"])
    except push.PushError as exc:
        form = DevicePasscodeForm(formdata=None, device=raw)
        return _prompt_page(form, error=str(exc), status=push_prompt.error_status(exc))
    return redirect(url_for("sso.push_status"), code=303)


def _forget_push_of_another_sign_in() -> None:
    """A push this session sent for another SP than the one now pending is not this
    sign-in's."""
    state = session.get(push_prompt.SESSION_KEY) or {}
    if state.get("door") == DOOR and state.get("sp") != pending_request()["sp"]:
        push_prompt.forget()


@bp.get("/sso/prompt/push")
def push_status():
    """Asked while the push waits (when the stream says it moved, else every second); an
    approval answers the SP."""
    if (stop := _prompt_gate()) is not None:
        return push_prompt.go_to(url_for("sso.resume")) if htmx else stop
    user = current_user()
    _forget_push_of_another_sign_in()
    view = push_prompt.check(DOOR, user)
    if view.status == "done":
        return _second_factor_done(user, request.args.get("remember") == "yes",
                                   view.state.get("device_id"))
    if htmx:
        return push_prompt.poll_response(view, _push_links())
    form = DevicePasscodeForm(formdata=None, device=view.state.get("device", ""))
    return _prompt_page(form, push_view=view)


@bp.get("/sso/settings")
def settings():
    """ "Settings" in the prompt: the device pages, reached from off campus."""
    if pending_request() is None or current_user() is None:
        return no_sign_in()
    return render_template("sso/settings.html", sp_name=sp_name(pending_request()))


def pending_login_url(device_id: int | None = None) -> str | None:
    """Where "Continue to Login" goes while a SAML sign-in is pending (used by device pages)."""
    if session.get("saml_req") is None:
        return None
    return url_for("sso.prompt", device=device_id) if device_id else url_for("sso.prompt")

