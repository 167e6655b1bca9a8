"""Console pages for RADIUS clients (VPN concentrators), role admin: the list, adding one (its
shared secret shown once, on the answer to the POST, and never again; optionally a RADIUS
proxy), changing its login mode and the language of its Reply-Messages, removing it; a proxy's
NAS policies (adding, removing). The rules are app/core/radius_clients.py's and
app/core/radius_nas_policies.py's, as for `um2fa radius-clients`."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from app.core import radius_clients, radius_nas_policies
from app.extensions import core
from app.i18n import N_, _
from app.i18n import name as language_name
from app.i18n.refusal import said
from app.web.admin.base import bp, confirm_then, console_origin, menu, requires

ACTION = "radius_clients.manage"

menu("admin.radius_clients", N_("RADIUS clients"), ACTION)


def _form() -> dict[str, str]:
    return {key: request.form.get(key, "").strip()
            for key in ("name", "address", "mode", "secret", "language", "proxy")}


NAS_FIELDS = ("nas_name", "nas_identifier", "nas_network", "nas_mode", "nas_fail_mode",
              "nas_push_timeout", "nas_language")


def proxy_wait_text(push_timeout: int) -> str:
    """What a FreeRADIUS proxy waits, against a push timeout (core's thresholds), in words;
    "" when a stock proxy waits long enough."""
    fit = radius_clients.proxy_wait(push_timeout)
    if fit is radius_clients.ProxyWait.TOO_LONG:
        return _("A push login waits up to %(seconds)s s here, but a FreeRADIUS proxy waits at "
                 "most %(cap)s s for the answer: use a push timeout of at most %(most)s s.",
                 seconds=push_timeout, cap=radius_clients.PROXY_WAIT_CAP,
                 most=radius_clients.PROXY_PUSH_TIMEOUT_MAX)
    if fit is radius_clients.ProxyWait.NEEDS_CONFIGURED_PROXY:
        return _("A push login waits up to %(seconds)s s here, longer than a stock FreeRADIUS "
                 "proxy waits (%(stock)s s): raise response_window and max_request_time on the "
                 "proxy (docs/radius.md).", seconds=push_timeout,
                 stock=radius_clients.STOCK_PROXY_WAIT)
    return ""


def language_choices() -> list[tuple[str, str]]:
    """The Reply-Messages' languages to choose from: ("", the default) then each offered
    language by its own name."""
    settings = current_app.config["UM2FA"]
    default = _("Default (%(language)s)", language=language_name(settings.default_language))
    return [("", default), *((lang, language_name(lang)) for lang in settings.languages)]


def _language(value: str) -> str | None:
    """The form's choice: None for the default (the core refuses a language not offered)."""
    return value or None


def _proxies(ctx, clients) -> list[dict]:
    """Each proxy with its NAS policies as the page shows them (the settings they get, and
    which are the proxy's), and what a FreeRADIUS proxy waits against its push timeouts."""
    policies = radius_nas_policies.by_client(ctx)
    shown = []
    for client in clients:
        if not client.proxy:
            continue
        rows = []
        for row in policies.get(client.id, []):
            settings = radius_clients.effective(client, row)
            rows.append({"row": row, "settings": settings,
                         "wait": proxy_wait_text(settings["push_timeout"])})
        shown.append({"client": client, "policies": rows,
                      "wait": proxy_wait_text(client.push_timeout)})
    return shown


def _listing(form: dict[str, str] | None = None, error: str = "", status: int = 200,
             nas_form: dict[str, str] | None = None):
    ctx = core.context()
    clients = radius_clients.list_all(ctx)
    languages = language_choices()
    page = render_template("admin/radius_clients.html", clients=clients,
                           proxies=_proxies(ctx, clients), modes=radius_clients.MODES,
                           fail_modes=radius_clients.FAIL_MODES, languages=languages,
                           language_names=dict(languages),
                           form=form or {"mode": "append"}, error=error,
                           nas_form=nas_form or {})
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
                                    language=_language(form["language"]),
                                    proxy=form["proxy"] == "on")
    except radius_clients.RadiusClientError as exc:
        return _listing(form, said(exc), 400)
    response = render_template("admin/radius_client_added.html", client=client, secret=secret,
                               generated=not form["secret"],
                               wait=proxy_wait_text(client.push_timeout) if client.proxy else "")
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


def _seconds(value: str) -> int | None:
    if value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 6):
        raise radius_clients.RadiusClientError(_("the push timeout must be a whole number of "
                                                 "seconds"))
    return int(value)


@bp.post("/radius-clients/<name>/nas")
@requires(ACTION)
def radius_nas_policy_add(name: str):
    """A policy for one NAS behind the proxy `name`; an empty setting is the proxy's."""
    ctx = _existing(name)
    form = {key: request.form.get(key, "").strip() for key in NAS_FIELDS}
    try:
        new = radius_nas_policies.NewPolicy(
            name=form["nas_name"], nas_identifier=form["nas_identifier"] or None,
            nas_address=form["nas_network"] or None, mode=form["nas_mode"] or None,
            fail_mode=form["nas_fail_mode"] or None,
            push_timeout=_seconds(form["nas_push_timeout"]),
            language=form["nas_language"] or None)
        radius_nas_policies.add(ctx, console_origin(), name, new)
    except radius_clients.RadiusClientError as exc:
        return _listing(error=said(exc), status=400, nas_form={**form, "proxy": name})
    flash(_("Added the NAS policy %(name)s to %(proxy)s.", name=form["nas_name"], proxy=name))
    return redirect(url_for("admin.radius_clients") + f"#nas-{name}")


@bp.route("/radius-clients/<name>/nas/<policy>/remove", methods=["GET", "POST"])
@requires(ACTION)
def radius_nas_policy_remove(name: str, policy: str):
    ctx = _existing(name)
    return confirm_then(
        title=_("Remove the NAS policy %(name)s?", name=policy),
        back=url_for("admin.radius_clients"),
        question=_("The NAS it matches get the settings of %(proxy)s within the RADIUS "
                   "server's refresh interval.", proxy=name),
        act=lambda: radius_nas_policies.remove(ctx, console_origin(), name, policy),
        done=_("Removed the NAS policy %(name)s.", name=policy),
        then=url_for("admin.radius_clients"),
        refused=(radius_clients.RadiusClientError,))
