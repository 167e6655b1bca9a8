"""The help desk's pages about a person (docs/admin.md): find them (results as you type), their
state, devices, recovery passcodes, browsers and sessions, their timeline, and the actions
(unlock, remove a device, end all sessions, issue a recovery passcode, disable / enable).

Each action is a POST with CSRF and a reason; app/core/helpdesk.py decides (the reason is
required there) and audits it with the console user as the actor. After an action: a flash
message and back to the person (POST, redirect, GET); bad input re-renders the person's page
with the message and what was typed, status 400. A recovery passcode is shown once, on its own
page that no cache keeps.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from app.core import audit, audit_search, helpdesk, support
from app.extensions import core, htmx
from app.i18n import N_, _
from app.i18n.refusal import said
from app.web.admin.base import bp, console_origin, menu, requires
from app.web.forms import EmptyForm

RECENT_TIMELINE = 10
TIMELINE_PAGE = support.TIMELINE_PAGE
ID_CHECK = "id_checked"


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return min(int(raw), 10_000) if raw.isascii() and raw.isdigit() and raw != "0" else 1


menu("admin.users", N_("Find a person"), "users.read")


@bp.get("/users")
@requires("users.read")
def users():
    """Find a person by UMPASS ID, name or email: the page, or (htmx) just its results."""
    text = request.args.get("q", "")[:100]
    page = _page_number()
    found, more = support.find_users(core.context(), text, page)
    template = "admin/_user_results.html" if htmx else "admin/users.html"
    return render_template(template, q=text, page=page, found=found, more=more)


@bp.get("/users/<username>")
@requires("users.read")
def person(username: str):
    return _person(username)


def _person(username: str, *, failed: str = "", error: str = "", status: int = 200):
    """The person's page; `failed`: the action whose form comes back with `error` and what
    was typed in it (request.form)."""
    ctx = core.context()
    try:
        view = support.user_view(ctx, username)
        recent, _older = support.timeline(ctx, username, limit=RECENT_TIMELINE)
    except support.NotFound:
        abort(404)
    return render_template("admin/person.html", view=view, recent=recent, form=EmptyForm(),
                           failed=failed, error=error,
                           typed=request.form if failed else {}), status


def _act(username: str, action: str, do, done: str):
    """Run a help-desk action from its form: back to the person with `done`, or the page again
    with what went wrong."""
    if not EmptyForm().validate():
        return _person(username, failed=action, error=_("The form expired. Please try again."),
                       status=400)
    try:
        do(core.context(), console_origin(), request.form.get("reason", ""))
    except support.NotFound:
        abort(404)
    except helpdesk.HelpdeskError as exc:
        return _person(username, failed=action, error=said(exc), status=400)
    flash(done)
    return redirect(url_for("admin.person", username=username))


@bp.post("/users/<username>/unlock")
@requires("users.unlock")
def unlock(username: str):
    return _act(username, "unlock",
                lambda ctx, origin, reason: helpdesk.unlock(ctx, origin, username, reason),
                _("%(username)s is unlocked and was told so.", username=username))


@bp.post("/users/<username>/devices/<int:device_id>/remove")
@requires("devices.remove")
def remove_device(username: str, device_id: int):
    if request.form.get("confirm") != "yes" and EmptyForm().validate():
        return _person(username, failed=f"remove-{device_id}",
                       error=_("Tick the box to confirm removing the device."), status=400)
    return _act(username, f"remove-{device_id}",
                lambda ctx, origin, reason: helpdesk.remove_device(ctx, origin, username,
                                                                   device_id, reason),
                _("The device was removed; %(username)s was told so.", username=username))


@bp.post("/users/<username>/sessions/end")
@requires("sessions.end")
def end_sessions(username: str):
    return _act(username, "sessions",
                lambda ctx, origin, reason: helpdesk.end_sessions(ctx, origin, username, reason),
                _("%(username)s is signed out everywhere and was told so.",
                  username=username))


@bp.post("/users/<username>/disable")
@requires("users.disable")
def disable(username: str):
    return _act(username, "disable",
                lambda ctx, origin, reason: helpdesk.set_disabled(ctx, origin, username, True,
                                                                  reason),
                _("%(username)s is disabled and was told so.", username=username))


@bp.post("/users/<username>/enable")
@requires("users.disable")
def enable(username: str):
    return _act(username, "enable",
                lambda ctx, origin, reason: helpdesk.set_disabled(ctx, origin, username, False,
                                                                  reason),
                _("%(username)s is enabled again and was told so.", username=username))


@bp.post("/users/<username>/recovery")
@requires("recovery.issue")
def issue_recovery(username: str):
    """A recovery passcode after the help-desk person checked an identity document: shown on
    this answer only (no-store), never stored or logged."""
    if not EmptyForm().validate():
        return _person(username, failed="recovery", error=_("The form expired. Please try again."),
                       status=400)
    try:
        code, _row = helpdesk.issue_recovery(core.context(), console_origin(), username,
                                          request.form.get("reason", ""),
                                          id_checked=request.form.get(ID_CHECK) == "yes")
    except support.NotFound:
        abort(404)
    except helpdesk.HelpdeskError as exc:
        return _person(username, failed="recovery", error=said(exc), status=400)
    response = render_template("admin/recovery_issued.html", username=username, code=code)
    return response, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.get("/users/<username>/timeline")
@requires("users.read")
def timeline(username: str):
    """Every audit record about the person, newest first, by door and outcome (the ones
    app/core/audit.py lists; another is a 400 page with the message); "Older" pages back with
    the cursor `before`."""
    door = request.args.get("door", "")
    result = request.args.get("result", "")
    rows, older, error = [], None, ""
    try:
        rows, older = support.timeline(core.context(), username, door=door, result=result,
                                       before=request.args.get("before", ""),
                                       limit=TIMELINE_PAGE)
    except support.NotFound:
        abort(404)
    except audit_search.AuditSearchError as exc:
        error = said(exc)
    page = render_template("admin/timeline.html", username=username, rows=rows, older=older,
                           door=door, result=result, doors=audit.DOORS,
                           results=audit.RESULTS, error=error)
    return page, 400 if error else 200
