"""Console pages for RADIUS clients (VPN concentrators), role admin: the list, adding one (its
shared secret shown once, on the answer to the POST, and never again), changing its login mode,
removing it. The rules are app/core/radius_clients.py's, as for `um2fa radius-clients`."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from app.core import radius_clients
from app.extensions import core
from app.web.admin.base import bp, confirm_then, console_origin, menu, requires

ACTION = "radius_clients.manage"

menu("admin.radius_clients", "RADIUS clients", ACTION)


def _form() -> dict[str, str]:
    return {key: request.form.get(key, "").strip()
            for key in ("name", "address", "mode", "secret")}


def _listing(form: dict[str, str] | None = None, error: str = "", status: int = 200):
    page = render_template("admin/radius_clients.html",
                           clients=radius_clients.list_all(core.context()),
                           modes=radius_clients.MODES, form=form or {"mode": "append"},
                           error=error)
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
                                    form["address"], secret, mode=form["mode"])
    except radius_clients.RadiusClientError as exc:
        return _listing(form, str(exc), 400)
    response = render_template("admin/radius_client_added.html", client=client, secret=secret,
                               generated=not form["secret"])
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/radius-clients/<name>/mode")
@requires(ACTION)
def radius_client_mode(name: str):
    ctx = core.context()
    if radius_clients.find(ctx, name) is None:
        abort(404, f"There is no RADIUS client named {name}.")
    try:
        radius_clients.set_mode(ctx, console_origin(), name, request.form.get("mode", ""))
    except radius_clients.RadiusClientError as exc:
        return _listing(error=str(exc), status=400)
    flash(f"{name} now uses {request.form['mode']} mode.")
    return redirect(url_for("admin.radius_clients"))


@bp.route("/radius-clients/<name>/remove", methods=["GET", "POST"])
@requires(ACTION)
def radius_client_remove(name: str):
    ctx = core.context()
    client = radius_clients.find(ctx, name)
    if client is None:
        abort(404, f"There is no RADIUS client named {name}.")
    return confirm_then(
        title=f"Remove the RADIUS client {name}?", back=url_for("admin.radius_clients"),
        question=f"{name} ({client.network}) will no longer be answered: VPN logins "
                 "through it stop within the RADIUS server's refresh interval.",
        act=lambda: radius_clients.remove(ctx, console_origin(), name),
        done=f"Removed the RADIUS client {name}.", then=url_for("admin.radius_clients"))
