"""Console pages for who may use the console and the API, role admin: administrators and
help-desk people (add, change role, remove; nobody takes away their own admin role, a rule of
app/core/admins.py) and API tokens (add, the token shown once; remove)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from app.core import admins, api_tokens
from app.extensions import core
from app.i18n import N_, _
from app.i18n.refusal import said
from app.web.admin.base import bp, confirm_then, console_origin, menu, requires, role_name

ADMINS, TOKENS = "admins.manage", "api_tokens.manage"
NO_STORE = {"Cache-Control": "no-store"}

menu("admin.admins", N_("Administrators"), ADMINS)
menu("admin.api_tokens", N_("API tokens"), TOKENS)


def _field(name: str) -> str:
    return request.form.get(name, "").strip()[:200]


def _admins_page(form: dict[str, str] | None = None, error: str = "", status: int = 200):
    page = render_template("admin/admins.html", rows=admins.all_admins(core.context()),
                           roles=admins.ROLES, form=form or {"role": admins.HELPDESK},
                           me=g.console_user.username, error=error)
    return page, status


@bp.get("/admins", endpoint="admins")
@requires(ADMINS)
def admins_page():
    return _admins_page()


@bp.post("/admins")
@requires(ADMINS)
def admin_add():
    form = {"username": _field("username"), "role": _field("role")}
    try:
        row = admins.add(core.context(), console_origin(), form["username"], form["role"])
    except admins.AdminError as exc:
        return _admins_page(form, said(exc), 400)
    flash(_("%(username)s is now %(role)s.", username=row.username, role=role_name(row.role)))
    return redirect(url_for("admin.admins"))


@bp.post("/admins/<username>/role")
@requires(ADMINS)
def admin_role(username: str):
    ctx = core.context()
    if admins.find(ctx, username) is None:
        abort(404, _("%(username)s has no console role.", username=username))
    try:
        row = admins.add(ctx, console_origin(), username, _field("role"))
    except admins.AdminError as exc:
        return _admins_page(error=said(exc), status=400)
    flash(_("%(username)s is now %(role)s.", username=row.username, role=role_name(row.role)))
    return redirect(url_for("admin.admins"))


@bp.route("/admins/<username>/remove", methods=["GET", "POST"])
@requires(ADMINS)
def admin_remove(username: str):
    ctx = core.context()
    row = admins.find(ctx, username)
    if row is None:
        abort(404, _("%(username)s has no console role.", username=username))
    return confirm_then(
        title=_("Remove %(username)s's console role?", username=row.username),
        back=url_for("admin.admins"),
        question=_("%(username)s (%(role)s) will no longer get into the console. A role from a "
                   "directory group stays.", username=row.username, role=role_name(row.role)),
        act=lambda: admins.remove(ctx, console_origin(), row.username),
        done=_("%(username)s no longer has a console role.", username=row.username),
        then=url_for("admin.admins"),
        refused=(admins.AdminError,))


def _tokens_page(form: dict[str, str] | None = None, error: str = "", status: int = 200):
    page = render_template("admin/api_tokens.html", rows=api_tokens.all_tokens(core.context()),
                           roles=admins.ROLES, form=form or {"role": admins.HELPDESK},
                           error=error)
    return page, status


@bp.get("/api-tokens", endpoint="api_tokens")
@requires(TOKENS)
def api_tokens_page():
    return _tokens_page()


@bp.post("/api-tokens")
@requires(TOKENS)
def api_token_add():
    """Make a token: it is in this answer only (kept as a keyed hash)."""
    form = {"name": _field("name"), "role": _field("role")}
    try:
        token = api_tokens.add(core.context(), console_origin(), form["name"], form["role"])
    except admins.AdminError as exc:
        return _tokens_page(form, said(exc), 400)
    return render_template("admin/api_token_added.html", name=form["name"], role=form["role"],
                           token=token), 200, NO_STORE


@bp.route("/api-tokens/<name>/remove", methods=["GET", "POST"])
@requires(TOKENS)
def api_token_remove(name: str):
    ctx = core.context()
    if api_tokens.find(ctx, name) is None:
        abort(404, _("There is no API token named %(name)s.", name=name))
    return confirm_then(
        title=_("Remove the API token %(name)s?", name=name),
        question=_("Calls with it are refused at once."),
        back=url_for("admin.api_tokens"),
        act=lambda: api_tokens.remove(ctx, console_origin(), name),
        done=_("Removed the API token %(name)s.", name=name), then=url_for("admin.api_tokens"))
