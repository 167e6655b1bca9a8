"""Console pages for RADIUS clients (VPN concentrators), role admin: the list, adding one (its
shared secret shown once, on the answer to the POST, and never again), changing its login mode
and the language of its Reply-Messages, removing it. The rules are app/core/radius_clients.py's,
as for `um2fa radius-clients`."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from app.core import radius_clients
from app.extensions import core
from app.i18n import N_, _
from app.i18n import name as language_name
from app.i18n.refusal import said
from app.web.admin.base import bp, confirm_then, console_origin, menu, requires

ACTION = "radius_clients.manage"

menu("admin.radius_clients", N_("RADIUS clients"), ACTION)


def _form() -> dict[str, str]:
    return {key: request.form.get(key, "").strip()
            for key in ("name", "address", "mode", "secret", "language")}


def language_choices() -> list[tuple[str, str]]:
    """The Reply-Messages' languages to choose from: ("", the default) then each offered
    language by its own name."""
    settings = current_app.config["UM2FA"]
    default = _("Default (%(language)s)", language=language_name(settings.default_language))
    return [("", default), *((lang, language_name(lang)) for lang in settings.languages)]


def _language(value: str) -> str | None:
    """The form's choice: None for the default (the core refuses a language not offered)."""
    return value or None


def _listing(form: dict[str, str] | None = None, error: str = "", status: int = 200):
    page = render_template("admin/radius_clients.html",
                           clients=radius_clients.list_all(core.context()),
                           modes=radius_clients.MODES, languages=language_choices(),
                           form=form or {"mode": "append"}, error=error)
    return page, status


@bp.get("/radius-clients", endpoint="radius_clients")
@requires(ACTION)
def radius_clients_page():
    return _listing()


@bp.post("/radius-clients")
@requires(ACTION)
def radius_client_add():
    """Add a client; a left-out secret is generated. The secret is in this answer only."""
    form = _form()
    secret = form["secret"] or radius_clients.generate_secret()
    try:
        client = radius_clients.add(core.context(), console_origin(), form["name"],
                                    form["address"], secret, mode=form["mode"],
                                    language=_language(form["language"]))
    except radius_clients.RadiusClientError as exc:
        return _listing(form, said(exc), 400)
    response = render_template("admin/radius_client_added.html", client=client, secret=secret,
                               generated=not form["secret"])
    return response, 200, {"Cache-Control": "no-store"}


def _existing(client_name: str):
    ctx = core.context()
    if radius_clients.find(ctx, client_name) is None:
        abort(404, _("There is no RADIUS client named %(name)s.", name=client_name))
    return ctx


@bp.post("/radius-clients/<name>/mode")
@requires(ACTION)
def radius_client_mode(name: str):
    ctx = _existing(name)
    try:
        radius_clients.set_mode(ctx, console_origin(), name, request.form.get("mode", ""))
    except radius_clients.RadiusClientError as exc:
        return _listing(error=said(exc), status=400)
    flash(_("%(name)s now uses %(mode)s mode.", name=name, mode=request.form["mode"]))
    return redirect(url_for("admin.radius_clients"))


@bp.post("/radius-clients/<name>/language")
@requires(ACTION)
def radius_client_language(name: str):
    """The language of the client's Reply-Messages (empty: the default language)."""
    ctx = _existing(name)
    language = _language(request.form.get("language", "").strip())
    try:
        radius_clients.set_language(ctx, console_origin(), name, language)
    except radius_clients.RadiusClientError as exc:
        return _listing(error=said(exc), status=400)
    shown = dict(language_choices()).get(language or "", language)
    flash(_("%(name)s now answers in %(language)s.", name=name, language=shown))
    return redirect(url_for("admin.radius_clients"))


@bp.route("/radius-clients/<name>/remove", methods=["GET", "POST"])
@requires(ACTION)
def radius_client_remove(name: str):
    ctx = core.context()
    client = radius_clients.find(ctx, name)
    if client is None:
        abort(404, _("There is no RADIUS client named %(name)s.", name=name))
    return confirm_then(
        title=_("Remove the RADIUS client %(name)s?", name=name),
        back=url_for("admin.radius_clients"),
        question=_("%(name)s (%(network)s) will no longer be answered: VPN logins through it "
                   "stop within the RADIUS server's refresh interval.",
                   name=name, network=client.network),
        act=lambda: radius_clients.remove(ctx, console_origin(), name),
        done=_("Removed the RADIUS client %(name)s.", name=name),
        then=url_for("admin.radius_clients"))
