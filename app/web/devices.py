""""Add a new device": type, platform, app, QR code, activation, name, "Continue to Login".

The same pages serve the portal (on campus) and, later, Settings in the SSO prompt.
"""

from __future__ import annotations

from collections.abc import Callable

import segno
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from app.core import devices, passcodes, push, security_keys
from app.core.context import Origin
from app.core.factors import Verdict
from app.core.subjects import Subject
from app.extensions import core, htmx
from app.i18n import _
from app.models import Device, User
from app.web import security_keys as keys_web
from app.web.auth import (
    login_required,
    mark_recovery,
    require_subject,
    require_user,
    second_factor_is_fresh,
    step_up_is_fresh,
)
from app.web.forms import (
    ActivationForm,
    DevicePasscodeForm,
    EmptyForm,
    NameForm,
    PlatformForm,
    parse_device_id,
)
from app.web.fresh import fresh_second_factor
from app.web.gate import campus_only
from app.web.limits import (
    account_limits,
    passcode_user_ceiling,
    passcode_user_key,
    passcode_user_limit,
)
from app.web.push_prompt import go_to
from app.web.request_info import origin

bp = Blueprint("devices", __name__, url_prefix="/devices/add")
bp.before_request(campus_only)

STAGES = ("type", "platform", "app", "activate", "name", "finished")


def _enrol() -> dict:
    return dict(session.get("enrol") or {})


def _save(**changes) -> None:
    session["enrol"] = {**_enrol(), **changes}


def _reached(stage: str) -> bool:
    current = _enrol().get("stage")
    return current in STAGES and STAGES.index(current) >= STAGES.index(stage)


def _back_to_current():
    stage = _enrol().get("stage")
    if stage not in STAGES:
        return redirect(url_for("devices.start"))
    return redirect(url_for(f"devices.{'device_type' if stage == 'type' else stage}"))


ACTIVATED_KEY = "activated"


def remember_activation(device: Device) -> None:
    """The device was activated with the code of its `last_step`: its first login in this
    session may use that code (app/core/passcodes.py: ActivationProof)."""
    if device.last_step is not None:
        session[ACTIVATED_KEY] = {"device_id": device.id, "step": device.last_step}


def activation_proof() -> passcodes.ActivationProof | None:
    """What `remember_activation` kept, for the prompt's passcode check."""
    kept = session.get(ACTIVATED_KEY)
    if not isinstance(kept, dict):
        return None
    try:
        return passcodes.ActivationProof(int(kept["device_id"]), int(kept["step"]))
    except (KeyError, TypeError, ValueError):
        return None


def verify_with_activation(origin_: Origin, user: User | Subject, code: str,
                           device_id: int | None) -> passcodes.PasscodeOutcome:
    """The prompts' passcode check (portal and SSO): the activation kept in this session
    covers its first login once."""
    outcome = passcodes.verify_passcode(core.context(), origin_, user, code,
                                        device_id=device_id, activation=activation_proof())
    if outcome.ok:
        session.pop(ACTIVATED_KEY, None)
    return outcome


def passcode_step(origin_: Origin, *,
                  again: Callable[[DevicePasscodeForm, str, int], ResponseReturnValue],
                  done: Callable[[int | None], ResponseReturnValue]) -> ResponseReturnValue:
    """The prompts' "Enter a Passcode" POST (portal and SSO): the form read, the passcode
    checked on the signed-in user as read with the session (auth.require_subject) with the
    activation kept in this session; then the prompt `again` with the error (400: a bad form,
    401: a wrong passcode), "Add a new device" after a recovery passcode (never a sign-in), or
    `done` with the device that verified."""
    form = DevicePasscodeForm()
    if not form.validate():
        return again(form, next(iter(form.errors.values()))[0], 400)
    outcome = verify_with_activation(origin_, require_subject(), form.passcode.data,
                                     parse_device_id(form.device.data))
    if not outcome.ok:
        return again(form, outcome.message, 401)
    if outcome.enrolment_only:
        return after_recovery()
    return done(outcome.device.id if outcome.device is not None else None)


def open_flow():
    """The step-up for "Add a new device" is done: its first step (the type)."""
    session["enrol"] = {"stage": "type"}
    return redirect(url_for("devices.device_type"))


def after_recovery():
    """A recovery passcode was typed (in the portal's prompt with any `next`, or in the SSO
    prompt): it opens "Add a new device" and nothing else (app/web/auth.py: mark_recovery)."""
    mark_recovery()
    flash(_(passcodes.RECOVERY_ADDS_A_DEVICE))
    return open_flow()


# Where each step's "Back" goes ("type": out of the wizard, as "Cancel" does).
BACK = {"platform": "devices.device_type", "app": "devices.platform", "activate": "devices.app"}


def _exit_url() -> str:
    """Where "Cancel" leaves to: the SSO prompt's settings during a SAML sign-in, else "My
    Settings & Devices" (or the portal's home after a recovery passcode, which opens nothing
    else)."""
    if session.get("saml_req") is not None:
        return url_for("sso.settings")
    return url_for("settings.index") if second_factor_is_fresh() else url_for("portal.index")


@bp.context_processor
def _wizard_links() -> dict:
    """ "Back" and "Cancel" on every step (templates/devices/_wizard_nav.html); the steps a
    security key skips, which the step bar does not mark done (templates/devices/_steps.html)."""
    skipped = ("platform", "app") if _enrol().get("kind") == security_keys.KIND else ()
    return {"wizard_back": lambda step: url_for(BACK[step]) if step in BACK else _exit_url(),
            "wizard_skipped": skipped}


@bp.post("/cancel")
@login_required
def cancel():
    """ "Cancel" on any step: leave the wizard; a device not yet activated is dropped."""
    if not EmptyForm().validate():
        return redirect(url_for("devices.start"))
    devices.cancel_enrolment(core.context(), origin(), require_user())
    session.pop("enrol", None)
    return redirect(_exit_url())


@bp.get("")
@login_required
def start():
    """ "Add a new device": authenticate first ("Enter a Passcode"), unless just done."""
    if step_up_is_fresh("add"):
        return open_flow()
    return redirect(url_for("prompt.index", next="add"))


@bp.route("/type", methods=["GET", "POST"])
@fresh_second_factor("add")
def device_type():
    if not _reached("type"):
        return _back_to_current()
    form = EmptyForm()
    if request.method == "POST" and form.validate():
        choice = request.form.get("device_type", "")
        if choice in ("mobile", "tablet"):
            _save(stage="platform", device_type=choice)
            return redirect(url_for("devices.platform"))
        if choice == security_keys.DEVICE_TYPE:  # no platform or app: registered in the browser
            _save(stage="activate", device_type=choice, platform=security_keys.PLATFORM,
                  kind=security_keys.KIND, device_id=None)
            return redirect(url_for("devices.activate"))
        return render_template("devices/type.html", form=form,
                               error=_("Choose a Mobile phone, a Tablet or a Security key or "
                                       "passkey.")), 400
    return render_template("devices/type.html", form=form)


@bp.route("/platform", methods=["GET", "POST"])
@fresh_second_factor("add")
def platform():
    if not _reached("platform"):
        return _back_to_current()
    form = PlatformForm(platform=_enrol().get("platform"))
    if request.method == "POST":
        if form.validate():
            _save(stage="app", platform=form.platform.data)
            return redirect(url_for("devices.app"))
        return render_template("devices/platform.html", form=form,
                               device_type=_enrol()["device_type"]), 400
    return render_template("devices/platform.html", form=form,
                           device_type=_enrol()["device_type"])


@bp.route("/app", methods=["GET", "POST"])
@fresh_second_factor("add")
def app():
    if not _reached("app"):
        return _back_to_current()
    form = EmptyForm()
    state = _enrol()
    if request.method == "POST" and form.validate():
        ctx = core.context()
        kind = "push" if request.form.get("app") == "push" else "totp"
        # authenticated by a device's second factor, or else by a recovery passcode
        via = "" if second_factor_is_fresh() else "recovery"
        device = devices.begin_enrolment(ctx, origin(), require_user(), state["device_type"],
                                         state["platform"], kind=kind, enrolled_via=via)
        _save(stage="activate", device_id=device.id, kind=kind)
        if kind == "push":
            _new_link(device)
        return redirect(url_for("devices.activate"))
    return render_template("devices/app.html", form=form, platform=state["platform"])


# --- the companion app: activation by link, noticed by polling -----------------------------

def _new_link(device: Device) -> None:
    """A fresh activation code; the session keeps it to show (the database keeps its hash)."""
    ctx = core.context()
    code = push.new_activation(ctx, device)
    _save(code=code, code_expires=int(ctx.clock()) + ctx.settings.activation_ttl_seconds)


def _push_device() -> Device | None:
    """The companion-app device being added, active or not."""
    device = core.context().db.get(Device, _enrol().get("device_id") or 0)
    if device is None or device.user_id != require_user().id or device.kind != push.KIND:
        return None
    return device


def _link_expired() -> bool:
    return core.context().clock() >= _enrol().get("code_expires", 0)


def _activate_push():
    device = _push_device()
    if device is None:
        session.pop("enrol", None)
        return redirect(url_for("devices.start"))
    if device.active:
        _save(stage="name")
        return redirect(url_for("devices.name"))
    error, status = "", 200
    if request.method == "POST":  # "Continue" without htmx: check the activation
        error, status = _("The app is not activated yet. Open the link on your phone, finish "
                          "there, then click Continue."), 409
    settings = current_app.config["UM2FA"]
    link = push.activation_link(settings.base_url or request.host_url, _enrol()["code"])
    return render_template("devices/activate_push.html", form=EmptyForm(), error=error,
                           link=link, expired=_link_expired(),
                           qr=segno.make(link, error="m").svg_data_uri(scale=5, border=2),
                           platform=_enrol()["platform"],
                           ttl_minutes=settings.activation_ttl_seconds // 60), status


@bp.post("/activate/new-link")
@fresh_second_factor("add")
def new_link():
    """ "Get a new link": a fresh code (the old one stops working)."""
    if _enrol().get("stage") != "activate" or _enrol().get("kind") != "push":
        return _back_to_current()
    device = _push_device()
    if device is not None and not device.active:
        _new_link(device)
    return redirect(url_for("devices.activate"))


@bp.get("/activate/status")
@fresh_second_factor("add")
def activation_status():
    """Polled every second by the activation page: moves on to naming once the phone has
    activated (204 while nothing changed; 286, which stops htmx polling, once the link expired)."""
    if _enrol().get("stage") != "activate" or _enrol().get("kind") != "push":
        return go_to(_back_to_current().location)
    device = _push_device()
    if device is None or device.active:
        return go_to(_activate_push().location)  # a redirect: to the name step, or the start
    if not htmx:
        return redirect(url_for("devices.activate"))
    if _link_expired():
        return render_template("devices/_activation_status.html", expired=True), 286
    return "", 204


@bp.route("/activate", methods=["GET", "POST"])
@fresh_second_factor("add")
@account_limits(passcode_user_limit, passcode_user_ceiling, passcode_user_key, methods=["POST"])
def activate():
    if not _reached("activate") or _reached("name"):
        return _back_to_current()
    if _enrol().get("kind") == "push":
        return _activate_push()
    if _enrol().get("kind") == security_keys.KIND:
        return render_template("devices/security_key.html")
    ctx, user = core.context(), require_user()
    try:
        device = devices.owned_device(ctx, user, _enrol()["device_id"], active=False)
    except devices.DeviceError:
        session.pop("enrol", None)
        return redirect(url_for("devices.start"))
    form = ActivationForm()
    error, status = "", 200
    if request.method == "POST":
        if not form.validate():
            error, status = form.passcode.errors[0], 400
        elif devices.activate(ctx, origin(), user, device.id, form.passcode.data) is Verdict.OK:
            remember_activation(device)
            _save(stage="name")
            return redirect(url_for("devices.name"))
        else:
            error, status = _("That code does not match. Check that you scanned this QR code "
                              "and type the code your app shows now."), 400
    uri = devices.provisioning_uri(ctx, user, device)
    secret = devices.secret_of(ctx, device)
    return render_template("devices/activate.html", form=form, error=error,
                           qr=segno.make(uri, error="m").svg_data_uri(scale=5, border=2),
                           secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                           uri=uri), status


# --- a security key or passkey: registered by the browser (static/js/webauthn.js) -----------

def _registering() -> bool:
    return _enrol().get("stage") == "activate" and _enrol().get("kind") == security_keys.KIND


@bp.post("/security-key/options")
@fresh_second_factor("add")
def security_key_options():
    """navigator.credentials.create's options; the challenge stays in the session."""
    if not _registering():
        return keys_web.refused(_("Start again from “Add a new device”."), 409)
    return keys_web.options(security_keys.registration_options(
        core.context(), require_user(), keys_web.relying_party()))


@bp.post("/security-key")
@fresh_second_factor("add")
@account_limits(passcode_user_limit, passcode_user_ceiling, passcode_user_key)
def security_key_register():
    """The browser's new credential: verified and added, then the name step."""
    if not _registering():
        return keys_web.refused(_("Start again from “Add a new device”."), 409)
    via = "" if second_factor_is_fresh() else "recovery"
    try:
        device = security_keys.register(core.context(), origin(), require_user(),
                                        keys_web.relying_party(), keys_web.credential(),
                                        keys_web.take_record(), enrolled_via=via)
    except devices.DeviceError as exc:
        return keys_web.refused(str(exc))
    _save(stage="name", device_id=device.id)
    return keys_web.go_to(redirect(url_for("devices.name")))


@bp.route("/name", methods=["GET", "POST"])
@fresh_second_factor("add")
def name():
    if not _reached("name") or _reached("finished"):
        return _back_to_current()
    ctx, user = core.context(), require_user()
    device_id = _enrol()["device_id"]
    try:  # the name suggested when the enrolment began (devices.suggested_name)
        suggested = devices.owned_device(ctx, user, device_id).name
    except devices.DeviceError:
        session.pop("enrol", None)
        return redirect(url_for("devices.start"))
    form = NameForm(name=suggested)
    if request.method == "POST" and form.validate():
        try:
            devices.rename(ctx, origin(), user, device_id, form.name.data)
        except devices.DeviceError as exc:
            return render_template("devices/name.html", form=form, error=str(exc)), 400
        _save(stage="finished")
        return redirect(url_for("devices.finished"))
    status = 400 if request.method == "POST" else 200
    return render_template("devices/name.html", form=form), status


@bp.get("/done")
@fresh_second_factor("add")
def finished():
    if not _reached("finished"):
        return _back_to_current()
    device_id = _enrol()["device_id"]
    device = devices.owned_device(core.context(), require_user(), device_id)
    return render_template("devices/added.html", device=device)
