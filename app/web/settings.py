""""My Settings & Devices": the device list, "Device Options", rename, default, "Remove",
"Automatically send me a push", remembered browsers, and Recent activity with "This wasn't
me"."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.core import devices, notices, preferences, push, remembered, support, wasnt_me
from app.extensions import core, htmx
from app.i18n import N_, _, local, local_iso
from app.models import Device, User
from app.web.auth import require_user
from app.web.forms import EmptyForm, NameForm
from app.web.fresh import fresh_second_factor
from app.web.gate import campus_only
from app.web.request_info import origin

bp = Blueprint("settings", __name__, url_prefix="/settings")
bp.before_request(campus_only)


def _list(*, options: int | None = None, confirm: int | None = None, error: str = "",
          notice: str = "", status: int = 200, name_form: NameForm | None = None,
          auto_error: str = ""):
    """The device list: the htmx fragment for htmx requests, else the whole page."""
    user = require_user()
    context = {"user": user, "devices": devices.list_for(core.context(), user),
               "options": options, "confirm": confirm, "error": error, "notice": notice,
               "form": EmptyForm(), "name_form": name_form or NameForm(formdata=None),
               "browsers": remembered.listed(core.context(), user),
               "activity": support.recent_activity(core.context(), user),
               **_auto_push_context(user, error=auto_error)}
    if not htmx:
        return render_template("settings/index.html", **context), status
    # the device list, and "Automatically send me a push" beside it (out of band): a device
    # removed or made the default changes what it says
    return (render_template("settings/_device_list.html", **context)
            + render_template("settings/_auto_push.html", oob=True, **context)), status


def _auto_push_context(user: User, *, notice: str = "", error: str = "") -> dict:
    default = devices.default_device(user)
    return {"auto_push": preferences.auto_push(core.context(), user.id),
            "push_devices": push.push_devices(user), "default_device": default,
            "default_pushes": push.can_push(default), "auto_notice": notice,
            "auto_error": error}


@bp.get("")
@fresh_second_factor("settings")
def index():
    return _list()


@bp.get("/devices/<int:device_id>/options")
@fresh_second_factor("settings")
def options(device_id: int):
    return _list(options=device_id)


@bp.post("/devices/<int:device_id>/rename")
@fresh_second_factor("settings")
def rename(device_id: int):
    form = NameForm()
    if not form.validate():
        return _list(options=device_id, error=form.name.errors[0], status=400, name_form=form)
    try:
        device = devices.rename(core.context(), origin(), require_user(), device_id,
                                form.name.data)
    except devices.DeviceError as exc:
        return _list(options=device_id, error=str(exc), status=400, name_form=form)
    return _done(_("Renamed to “%(name)s”.", name=device.name))


@bp.post("/devices/<int:device_id>/default")
@fresh_second_factor("settings")
def make_default(device_id: int):
    try:
        device = devices.make_default(core.context(), origin(), require_user(), device_id)
    except devices.DeviceError as exc:
        return _list(error=str(exc), status=404)
    return _done(_("“%(name)s” is now your default device.", name=device.name))


@bp.get("/devices/<int:device_id>/remove")
@fresh_second_factor("settings")
def confirm_remove(device_id: int):
    """ "Remove?" — or, while this session's device is held back, why not and until when."""
    ctx, user = core.context(), require_user()
    acting = ctx.db.get(Device, session.get("mfa_device") or 0)
    until = devices.hold_until(ctx, user, acting) if acting is not None \
        and acting.id != device_id else None
    return _list(confirm=device_id, error=devices.held_message(ctx, until) if until else "")


@bp.post("/devices/<int:device_id>/remove")
@fresh_second_factor("settings")
def remove(device_id: int):
    try:
        devices.remove(core.context(), origin(), require_user(), device_id,
                       last_confirmed=request.form.get("confirm_last") == "yes",
                       by_device_id=session.get("mfa_device"))
    except devices.HeldError as exc:  # said why and until when
        return _list(confirm=device_id, error=str(exc), status=403)
    except devices.LastDeviceError as exc:
        return _list(confirm=device_id, error=str(exc), status=400)
    except devices.DeviceError as exc:
        return _list(error=str(exc), status=404)
    return _done(_("The device was removed."))


@bp.post("/remembered/<int:browser_id>/forget")
@fresh_second_factor("settings")
def forget_browser(browser_id: int):
    """ "Forget": that browser is asked for a second factor again, wherever its cookie is."""
    if not remembered.forget(core.context(), origin(), require_user(), browser_id):
        return _list(error=_("That browser was not found."), status=404)
    flash(_("The browser was forgotten: it will be asked for a second factor again."))
    return redirect(url_for("settings.index"))


AUTO_PUSH_ON = N_("Saved: the 2FA prompt now sends a push as soon as it opens.")
AUTO_PUSH_OFF = N_("Saved: the 2FA prompt now waits until you click “Send me a Push”.")
AUTO_PUSH_UNAVAILABLE = N_("This setting cannot be saved right now. Please try again later.")


@bp.post("/auto-push")
@fresh_second_factor("settings")
def auto_push():
    """ "Automatically send me a push": on when the box is ticked, off when not."""
    user = require_user()
    on = request.form.get("auto_push") == "yes"
    try:
        preferences.set_auto_push(core.context(), origin(), user, on)
    except preferences.Unavailable:
        return _auto_push_answer(user, error=_(AUTO_PUSH_UNAVAILABLE), status=503)
    return _auto_push_answer(user, notice=_(AUTO_PUSH_ON if on else AUTO_PUSH_OFF))


def _auto_push_answer(user: User, *, notice: str = "", error: str = "", status: int = 200):
    """htmx: the section again, saying what happened; else back to the page (with a flash)."""
    if htmx:
        return render_template("settings/_auto_push.html", form=EmptyForm(),
                               **_auto_push_context(user, notice=notice, error=error)), status
    if error:
        return _list(auto_error=error, status=status)
    flash(notice)
    return redirect(url_for("settings.index"))


def _done(notice: str):
    if htmx:
        return _list(notice=notice)
    flash(notice)
    return redirect(url_for("settings.index"))


@bp.get("/activity/<int:event_id>/wasnt-me")
@fresh_second_factor("settings")
def activity_wasnt_me(event_id: int):
    """ "This wasn't me" on a row of Recent activity: what happened, and the button (a GET
    changes nothing)."""
    return _activity_page(event_id)


def _activity_page(event_id: int, status: int = 200):
    row = support.activity_row(core.context(), require_user(), event_id)
    if row is None:
        abort(404)
    return render_template(
        "wasnt_me/page.html", form=EmptyForm(), status=wasnt_me.DONE, done=False, undoes="",
        what=support.activity_words(row), when=local(row.at), when_iso=local_iso(row.at),
        where=notices.where_from(row.door, row.client_addr)), status


@bp.post("/activity/<int:event_id>/wasnt-me")
@fresh_second_factor("settings")
def report_activity(event_id: int):
    """The person did not do this: signed out everywhere, locked, the help desk alerted."""
    if not EmptyForm().validate():
        return _activity_page(event_id, 400)
    if not wasnt_me.by_activity(core.context(), origin(), require_user(), event_id):
        abort(404)
    session.clear()  # this browser is signed out too
    return render_template("wasnt_me/page.html", form=EmptyForm(), status=wasnt_me.DONE,
                           done=True, undoes="")
