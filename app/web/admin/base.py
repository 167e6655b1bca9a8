"""The help-desk console at /admin/ (docs/admin.md): its blueprint, whose every page is guarded.

Who gets in: a person with a console role (app/core/admins.py: the admins table or a directory
group), from UM2FA_ADMIN_NETWORKS (default: the campus networks), whose session began with the
password and a real second factor (the portal's prompt; a recovery passcode never counts), and
has not been idle longer than UM2FA_ADMIN_IDLE_SECONDS. Every view says which console action it
takes (`requires`); a role without it gets 403. The pages of each area are in this package's
other modules, on this blueprint; app/web/admin/__init__.py registers them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.core import admins, signin
from app.extensions import core
from app.i18n import N_, _
from app.i18n.refusal import said
from app.web import addresses
from app.web.auth import current_user, end_session, start_session
from app.web.console_actions import guarded, public, requested_view_is_public
from app.web.forms import SignInForm
from app.web.limits import signin_limits
from app.web.request_info import client_addr, origin

bp = Blueprint("admin", __name__, url_prefix="/admin")
DOOR = "admin"
# The console's menu: (endpoint, label, action), in order; each area module adds its pages with
# `menu(...)`, and a person sees the entries their role may open.
MENU: list[tuple[str, str, str]] = []


# How the console names a role and a recovery passcode's status (the stored values stay English).
ROLE_NAMES = {admins.ADMIN: N_("admin"), admins.HELPDESK: N_("helpdesk")}
PASSCODE_STATUSES = {"used": N_("used"), "revoked": N_("revoked"), "expired": N_("expired"),
                     "unused": N_("unused")}


# The order of the menu, whatever the order the area modules are imported in.
MENU_ORDER = ("admin.index", "admin.users", "admin.dashboard", "admin.audit",
              "admin.radius_clients", "admin.service_providers", "admin.admins",
              "admin.api_tokens", "admin.settings")


def menu(endpoint: str, label: str, action: str) -> None:
    """`label`: marked with N_, translated where the menu is shown."""
    if endpoint not in [item[0] for item in MENU]:
        MENU.append((endpoint, label, action))
        MENU.sort(key=lambda item: (MENU_ORDER.index(item[0]) if item[0] in MENU_ORDER
                                    else len(MENU_ORDER)))


def requires(action: str) -> Callable:
    """The console action this view takes; a role that may not take it gets 403."""
    return guarded(action, lambda: g.get("console_role"), _forbidden)


def _forbidden(role: str | None):
    abort(403)


def confirm_then(*, title: str, question: str, back: str, act: Callable[[], None],
                 done: str, then: str, refused: tuple[type[Exception], ...] = ()):
    """A removal: GET asks (the confirmation page), POST does `act()`, then flashes `done`
    and goes to `then`; an error of `refused` is the page again with its message (400)."""
    if request.method == "GET":
        return render_template("admin/confirm.html", title=title, question=question,
                               action=request.path, button=_("Remove"), back=back)
    try:
        act()
    except refused as exc:
        return render_template("admin/confirm.html", title=title, question="", error=said(exc),
                               action="", back=back), 400
    flash(done)
    return redirect(then)


def console_origin():
    """The origin of a console action: the door "admin" and the acting person."""
    found = origin(DOOR)
    found.actor, found.actor_role = g.console_user.username, g.console_role
    return found


def in_admin_networks() -> bool:
    settings = current_app.config["UM2FA"]
    return addresses.in_networks(client_addr(),
                                 settings.admin_networks or settings.campus_networks)


@bp.before_request
def guard():
    if not in_admin_networks():
        return render_template("off_campus.html"), 403
    if requested_view_is_public():
        return None
    user = current_user()
    if user is None:
        return redirect(url_for("admin.sign_in"))
    if not session.get("mfa_at"):
        return redirect(url_for("prompt.index", next="admin"))
    now = int(time.time())
    idle = current_app.config["UM2FA"].admin_idle_seconds
    # idle since the last console page, or since the second factor for a first visit
    if now - session.get("admin_seen", session["mfa_at"]) > idle:
        end_session(DOOR)
        flash(_("Your console session was idle too long. Please sign in again."))
        return redirect(url_for("admin.sign_in"))
    role = admins.role_of(core.context(), user)
    if role is None:
        abort(403)
    session["admin_seen"] = now
    g.console_user, g.console_role = user, role
    return None


@bp.app_context_processor
def console_helpers():
    def can(action: str) -> bool:
        return admins.can(g.get("console_role"), action)

    return {"console_can": can,
            "console_menu": lambda: [(e, label) for e, label, action in MENU if can(action)],
            "console_role_name": role_name, "passcode_status_name": passcode_status_name}


def role_name(role: str | None) -> str:
    return _(ROLE_NAMES[role]) if role in ROLE_NAMES else (role or "")


def passcode_status_name(status: str) -> str:
    return _(PASSCODE_STATUSES[status]) if status in PASSCODE_STATUSES else status


@bp.route("/sign-in", methods=["GET", "POST"])
@public
@signin_limits()
def sign_in():
    """The console's own sign-in: the password here, then the portal's 2FA prompt."""
    form = SignInForm()
    if not form.is_submitted():
        return render_template("admin/sign_in.html", form=form)
    if not form.validate():
        return render_template("admin/sign_in.html", form=form), 400
    user = signin.sign_in(core.context(), origin(DOOR), form.username.data, form.password.data)
    if user is None:
        return render_template("admin/sign_in.html", form=form,
                               error=signin.SIGN_IN_FAILED), 401
    start_session(user, via=DOOR)
    return redirect(url_for("prompt.index", next="admin"))


menu("admin.index", N_("Console home"), "users.read")


@bp.get("/")
@requires("users.read")
def index():
    return render_template("admin/home.html")
