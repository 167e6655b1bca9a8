"""The 2FA prompt in the portal: choose a device, "Enter a Passcode".

It guards three destinations: finishing a login ("Continue to Login"), "My Settings & Devices",
and "Add a new device" (which also takes a 9-digit recovery passcode).
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from app.core import devices, prompt
from app.extensions import core, limiter
from app.web.auth import (
    login_required,
    mark_second_factor,
    require_user,
    second_factor_is_fresh,
)
from app.web.forms import DevicePasscodeForm
from app.web.gate import campus_only
from app.web.request_info import origin

bp = Blueprint("prompt", __name__, url_prefix="/prompt")
bp.before_request(campus_only)

DESTINATIONS = {
    "done": ("prompt.done", "Continue to Login"),
    "settings": ("settings.index", "My Settings & Devices"),
    "add": ("devices.device_type", "Add a new device"),
}


def _passcode_user_key() -> str:
    return f"passcode:{session.get('uid', '-')}"


def _next() -> str:
    value = request.values.get("next", "done")
    return value if value in DESTINATIONS else "done"


def _device_id(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _render(form: DevicePasscodeForm, *, show_passcode: bool, error: str = "",
            status: int = 200, partial: bool = False):
    user = require_user()
    chosen = _device_id(form.device.data) or getattr(devices.default_device(user), "id", None)
    template = "prompt/_passcode_form.html" if partial else "prompt/prompt.html"
    return render_template(template, user=user, devices=devices.active_devices(user),
                           chosen=chosen, form=form, next=_next(), error=error,
                           heading=DESTINATIONS[_next()][1],
                           show_passcode=show_passcode or bool(error)), status


@bp.get("")
@login_required
def index():
    form = DevicePasscodeForm(formdata=None, device=request.args.get("device", ""))
    return _render(form, show_passcode=request.args.get("method") == "passcode")


@bp.get("/passcode-form")
@login_required
def passcode_form():
    """The "Enter a Passcode" fragment that htmx swaps into the prompt."""
    return _render(DevicePasscodeForm(formdata=None), show_passcode=True, partial=True)


@bp.post("")
@login_required
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_passcode_address)
@limiter.limit(lambda: current_app.config["UM2FA"].ratelimit_passcode_user,
               key_func=_passcode_user_key)
def verify():
    form = DevicePasscodeForm()
    if not form.validate():
        error = next(iter(form.errors.values()))[0]
        return _render(form, show_passcode=True, error=error, status=400)
    user = require_user()
    outcome = prompt.verify_passcode(core.context(), origin(), user, form.passcode.data,
                                     device_id=_device_id(form.device.data))
    if not outcome.ok:
        return _render(form, show_passcode=True, error=outcome.message, status=401)
    mark_second_factor()
    if _next() == "add":
        session["enrol"] = {"stage": "type"}
    return redirect(url_for(DESTINATIONS[_next()][0]))


@bp.get("/done")
@login_required
def done():
    if not second_factor_is_fresh():
        return redirect(url_for("prompt.index", next="done"))
    return render_template("prompt/done.html", user=require_user())
