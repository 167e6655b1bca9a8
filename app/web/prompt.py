"""The 2FA prompt in the portal: choose a device, "Send me a Push" or "Enter a Passcode".

It guards three destinations: finishing a login ("Continue to Login"), "My Settings & Devices",
and "Add a new device". A 9-digit recovery passcode, whatever the destination, opens "Add a new
device" only (app/web/devices.py: after_recovery).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from app.core import devices, push
from app.extensions import htmx
from app.i18n import N_, _
from app.web import devices as add_device
from app.web import push_prompt
from app.web import security_keys as keys_web
from app.web.auth import (
    login_required,
    mark_second_factor,
    require_user,
    second_factor_is_fresh,
)
from app.web.forms import DevicePasscodeForm
from app.web.gate import campus_only
from app.web.limits import passcode_limits
from app.web.request_info import origin

bp = Blueprint("prompt", __name__, url_prefix="/prompt")
bp.before_request(campus_only)

DOOR = "portal"
SERVICE = "2FA portal"

DESTINATIONS = {  # (endpoint, the prompt's heading: a msgid)
    "done": ("prompt.done", N_("Continue to Login")),
    "settings": ("settings.index", N_("My Settings & Devices")),
    "add": ("devices.device_type", N_("Add a new device")),
    "admin": ("admin.index", N_("Help-desk console")),
}


def _next() -> str:
    value = request.values.get("next", "done")
    return value if value in DESTINATIONS else "done"


def _links(next_step: str) -> push_prompt.Links:
    return push_prompt.Links(
        start=url_for("prompt.push_start"), status=url_for("prompt.push_status", next=next_step),
        methods=url_for("prompt.methods", next=next_step),
        passcode=url_for("prompt.index", next=next_step, method="passcode"),
        passcode_hx=url_for("prompt.passcode_form", next=next_step),
        key_options=url_for("prompt.key_options"),
        key_verify=url_for("prompt.key_verify", next=next_step))


def _render(form: DevicePasscodeForm, *, show_passcode: bool, error: str = "",
            status: int = 200, partial: bool = False,
            push_view: push_prompt.PushView | None = None):
    user = require_user()
    chosen = getattr(push_prompt.chosen_device(user, form.device.data), "id", None)
    template = "prompt/_passcode_form.html" if partial else "prompt/prompt.html"
    at_once = push_prompt.passcode_at_once(user)
    return render_template(template, user=user, devices=devices.active_devices(user),
                           chosen=chosen, form=form, next=_next(), error=error,
                           heading=_(DESTINATIONS[_next()][1]),
                           show_passcode=show_passcode or bool(error) or at_once,
                           passcode_at_once=at_once,
                           push_view=push_view,
                           push_ok=push_prompt.can_push(user, chosen),
                           key_ok=push_prompt.can_use_key(user, chosen),
                           push_links=_links(_next())), status


@bp.get("")
@login_required
def index():
    raw = request.args.get("device", "")
    form = DevicePasscodeForm(formdata=None, device=raw)
    if request.args.get("method") == "passcode":
        return _render(form, show_passcode=True)
    view = None
    if _next() != "add":  # people who lost their phone come to "Add a new device": no push
        view = push_prompt.send_at_once(DOOR, require_user(), raw, SERVICE, next=_next())
    if view is not None:
        form.device.data = view.state.get("device", raw)
    return _render(form, show_passcode=False, push_view=view)


@bp.get("/passcode-form")
@login_required
def passcode_form():
    """The "Enter a Passcode" fragment that htmx swaps into the prompt."""
    return _render(DevicePasscodeForm(formdata=None), show_passcode=True, partial=True)


@bp.post("")
@login_required
@passcode_limits()
def verify():
    return add_device.passcode_step(
        origin(), done=_second_factor_done,
        again=lambda form, error, status: _render(form, show_passcode=True, error=error,
                                                  status=status))


def _second_factor_done(device_id: int | None):
    mark_second_factor(device_id)
    if _next() == "add":
        return add_device.open_flow()
    return redirect(url_for(DESTINATIONS[_next()][0]))


@bp.post("/security-key/options")
@login_required
def key_options():
    """ "Use your security key": navigator.credentials.get's options (JSON)."""
    return keys_web.sign_in_options(require_user())


@bp.post("/security-key")
@login_required
@passcode_limits()
def key_verify():
    """The security key's answer (JSON): on success the page moves on, as after a passcode."""
    return keys_web.sign_in(DOOR, require_user(), _second_factor_done)


@bp.get("/methods")
@login_required
def methods():
    """The methods bar for the device just chosen (htmx): "Send me a Push" only if it can."""
    user = require_user()
    chosen = getattr(push_prompt.chosen_device(user, request.args.get("device")), "id", None)
    return render_template("_prompt_methods.html", chosen=chosen, push_links=_links(_next()),
                           push_ok=push_prompt.can_push(user, chosen),
                           key_ok=push_prompt.can_use_key(user, chosen))


@bp.post("/push")
@login_required
@passcode_limits()
def push_start():
    """ "Send me a Push": start it, then show its status (which the page polls)."""
    user = require_user()
    raw = request.form.get("device", "")
    try:
        push_prompt.start(DOOR, user, raw, SERVICE, next=_next(), device=raw)
    except push.PushError as exc:
        form = DevicePasscodeForm(formdata=None, device=raw)
        return _render(form, show_passcode=True, error=str(exc),
                       status=push_prompt.error_status(exc))
    return redirect(url_for("prompt.push_status", next=_next()), code=303)


@bp.get("/push")
@login_required
def push_status():
    """Asked while a push waits (when the stream says it moved, else every second); finishes
    the login once it is approved."""
    user = require_user()
    view = push_prompt.check(DOOR, user)
    if view.status == "done":
        mark_second_factor(view.state.get("device_id"))
        target = view.state.get("next", "done")
        target = target if target in DESTINATIONS else "done"
        if target == "add":
            return push_prompt.go_to(add_device.open_flow().location)
        return push_prompt.go_to(url_for(DESTINATIONS[target][0]))
    if htmx:
        return push_prompt.poll_response(view, _links(_next()))
    form = DevicePasscodeForm(formdata=None, device=view.state.get("device", ""))
    return _render(form, show_passcode=False, push_view=view)


@bp.get("/done")
@login_required
def done():
    if not second_factor_is_fresh():
        return redirect(url_for("prompt.index", next="done"))
    return render_template("prompt/done.html", user=require_user())
