"""The recovery portal: role -> identity -> "Get 2FA Passcode" -> UMPASS password -> passcode.

Reachable from anywhere (it is not behind the campus gate). Served under a path prefix
(UM2FA_RECOVERY_PREFIX, default /recovery) or, with UM2FA_RECOVERY_HOST, at the root of its
own host name. The steps and their verdicts are core's (app/core/recovery_flow.py); this door
keeps only the flow's random token in the browser's session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import PasswordField, StringField
from wtforms.validators import AnyOf, InputRequired, Length, Regexp

from app.config import Settings
from app.core import identity, recovery_flow, recovery_lock, users
from app.core.recovery_flow import Result, Stage
from app.extensions import core
from app.i18n import N_, _, _l, local_clock, local_iso, ngettext, zone
from app.web import language
from app.web.limits import (
    account_limits,
    address_limit,
    recovery_address_limit,
    typed_username,
)
from app.web.request_info import ON_RECOVERY_HOST, browser_path, on_recovery_host, origin

bp = Blueprint("recovery", __name__)

SESSION_KEY = "recovery_flow"
ON_HOST = ON_RECOVERY_HOST
DOOR = "recovery"


class IdentityForm(FlaskForm):
    username = StringField(_l("UMPASS ID"), validators=[InputRequired(_l("Enter your UMPASS ID.")),
                                                        Length(max=64)])
    dob = StringField(_l("Date of birth"), validators=[
        InputRequired(_l("Enter your date of birth.")),
        Regexp(r"^\s*\d{4}-\d{2}-\d{2}\s*$",
               message=_l("Enter your date of birth as YYYY-MM-DD, e.g. 2001-02-03."))])
    id_last4 = StringField(_l("Last 4 characters of ID/Passport Number"), validators=[
        InputRequired(_l("Enter the last 4 characters of your ID/passport number.")),
        Regexp(r"^\s*[A-Za-z0-9]{4}\s*$",
               message=_l("Enter the last 4 characters (letters or digits) of your "
                          "ID/passport number, e.g. 123A."))])


OPTIONS = {"passcode": N_("Get 2FA Passcode")}
ROLE_NAMES = {"student": N_("Student"), "staff": N_("Staff")}


class OptionForm(FlaskForm):
    option = StringField(_l("What do you need?"), validators=[
        InputRequired(_l("Select “Get 2FA Passcode”.")),
        AnyOf(list(OPTIONS), message=_l("Select “Get 2FA Passcode”."))])


class PasswordForm(FlaskForm):
    password = PasswordField(_l("UMPASS password"), validators=[
        InputRequired(_l("Enter your UMPASS password.")), Length(max=256)])


def _settings() -> Settings:
    return current_app.config["UM2FA"]


# --- host name and path prefix ----------------------------------------------------------------

def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


class RecoveryHost:
    """WSGI middleware: requests to the recovery host are the recovery portal at its root.

    "/x" on that host is routed as "<prefix>/x"; static files and the language switcher pass
    through; nothing else of the service (the 2FA portal, Settings) is reachable there.
    """

    def __init__(self, wsgi_app: Callable, host: str, prefix: str) -> None:
        self.wsgi_app, self.host, self.prefix = wsgi_app, host, prefix

    def matches(self, http_host: str) -> bool:
        if _hostname(self.host) != self.host:  # configured with a port: it must match too
            return http_host.strip().lower() == self.host
        return _hostname(http_host) == self.host

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        if self.matches(environ.get("HTTP_HOST", "")):
            environ[ON_HOST] = True
            path = environ.get("PATH_INFO", "") or "/"
            inside = path == self.prefix or path.startswith(self.prefix + "/")
            if not inside and not path.startswith("/static/") and path != language.PATH:
                environ["PATH_INFO"] = self.prefix + path
        return self.wsgi_app(environ, start_response)


def rurl(endpoint: str, **values: Any) -> str:
    """url_for, without the path prefix when the request came to the recovery host."""
    url = url_for(endpoint, **values)
    root = request.script_root
    if not endpoint.startswith("recovery.") or not url.startswith(root):
        return url
    return root + browser_path(url[len(root):])


def _portal_url() -> str:
    settings = _settings()
    if settings.base_url:
        return settings.base_url.rstrip("/") + "/"
    return url_for("portal.index")


@bp.before_request
def _only_on_recovery_host():
    if _settings().recovery_host and not on_recovery_host():
        abort(404)
    return None


@bp.context_processor
def _inject() -> dict:
    # (the language switcher's way back on the recovery host: app/web/language.py)
    return {"rurl": rurl, "portal_url": _portal_url()}


# --- rate limits ------------------------------------------------------------------------------

def _user_limit() -> str:
    return _settings().ratelimit_recovery_user


def _user_ceiling() -> str:
    return _settings().ratelimit_recovery_user_ceiling


def _typed_username_key() -> str:
    return "recovery:" + typed_username()


# one count per address across the recovery portal's forms
recovery_address = address_limit(recovery_address_limit, methods=["POST"],
                                 scope="recovery-address")


# --- the steps --------------------------------------------------------------------------------

def _token() -> str | None:
    value = session.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def _back_to_current(stage: Stage | None):
    """Where a request out of order goes: the flow's current step, or the start."""
    if stage is Stage.IDENTIFIED:
        return redirect(rurl("recovery.options"), 303)
    if stage is Stage.CHOSEN:
        return redirect(rurl("recovery.password"), 303)
    if session.pop(SESSION_KEY, None) is not None:
        flash(_("Your recovery session has ended or expired. Please start again."))
    return redirect(rurl("recovery.roles"), 303)


def _roles() -> dict[str, str]:
    """Each role and its name in the page's language (a role we have no name for: its key)."""
    return {role: _(ROLE_NAMES[role]) if role in ROLE_NAMES
            else role.replace("-", " ").replace("_", " ").title()
            for role in _settings().recovery_roles}


@bp.get("/")
def roles():
    return render_template("recovery/roles.html", roles=_roles())


@bp.route("/identify/<role>", methods=["GET", "POST"])
@recovery_address
@account_limits(_user_limit, _user_ceiling, _typed_username_key, methods=["POST"])
def identify(role: str):
    labels = _roles()
    if role not in labels:
        abort(404)
    form = IdentityForm()
    page = {"role": role, "role_label": labels[role], "form": form}
    if request.method == "GET":
        return render_template("recovery/identify.html", **page)
    if not form.validate():
        return render_template("recovery/identify.html", **page), 400
    try:
        answers = identity.normalise(role, form.username.data, form.dob.data,
                                     form.id_last4.data)
    except users.UserError as exc:
        return render_template("recovery/identify.html", error=str(exc), **page), 400
    ctx, where = core.context(), origin(DOOR)
    token = recovery_flow.start(ctx, where, answers, _token())
    if token is None:
        session.pop(SESSION_KEY, None)
        return _locked(recovery_lock.locked_until(ctx, answers.username, where.client_addr))
    session[SESSION_KEY] = token
    return redirect(rurl("recovery.options"), 303)


@bp.route("/options", methods=["GET", "POST"])
def options():
    ctx, token = core.context(), _token()
    stage = recovery_flow.stage(ctx, token)
    if stage is not Stage.IDENTIFIED:
        return _back_to_current(stage)
    form = OptionForm()
    if request.method == "GET":
        return render_template("recovery/options.html", form=form, options=OPTIONS)
    if not form.validate():
        return render_template("recovery/options.html", form=form, options=OPTIONS), 400
    if not recovery_flow.choose(ctx, token):
        return _back_to_current(recovery_flow.stage(ctx, token))
    return redirect(rurl("recovery.password"), 303)


@bp.route("/password", methods=["GET", "POST"])
@recovery_address
def password():
    ctx, token = core.context(), _token()
    form = PasswordForm()
    if request.method == "GET" or not form.validate():
        stage = recovery_flow.stage(ctx, token)
        if stage is not Stage.CHOSEN:
            return _back_to_current(stage)
        status = 400 if request.method == "POST" else 200
        return render_template("recovery/password.html", form=form), status
    outcome = recovery_flow.finish(ctx, origin(DOOR), token, form.password.data)
    if outcome.result is Result.ENDED:
        return _back_to_current(recovery_flow.stage(ctx, token))
    session.pop(SESSION_KEY, None)
    if outcome.result is Result.LOCKED:
        return _locked(outcome.locked_until)
    if outcome.result is Result.FAILED:
        return render_template("recovery/failed.html"), 401
    code = outcome.passcode
    return render_template("recovery/passcode.html", passcode=code,
                           grouped=" ".join(code[i:i + 3] for i in range(0, len(code), 3)),
                           expiry=_expiry(outcome.expires_at,
                                          _settings().recovery_ttl_seconds // 60))


def _expiry(expires_at: datetime, minutes: int) -> Markup:
    """ "It expires at <time>3:26 pm</time> Macao time (GMT+08:00), in 60 minutes.": the time
    of day in local time (the passcode lives within the hour), the zone named once. Built here:
    a template's ngettext takes no placeholder but the number."""
    clock = Markup('<time datetime="{}">{}</time>').format(local_iso(expires_at),
                                                         local_clock(expires_at))
    # The sentence with the number filled in and the other placeholders left as they are,
    # escaped; then the values (the <time> element is ours, the zone's name is escaped).
    sentence = ngettext("It expires at %(time)s %(zone)s, in %(num)d minute.",
                        "It expires at %(time)s %(zone)s, in %(num)d minutes.", minutes,
                        time="%(time)s", zone="%(zone)s")
    return escape(sentence) % {"time": clock, "zone": zone()}


def _locked(until: datetime | None):
    """ "Too many attempts", with how long the lock still holds."""
    left = (until - core.context().now()).total_seconds() if until is not None else 0
    minutes = max(1, math.ceil(left / 60)) if left > 0 else \
        max(1, _settings().recovery_lock_seconds // 60)
    return render_template("recovery/locked.html", minutes=minutes), 429


def init_app(app: Flask) -> None:
    settings: Settings = app.config["UM2FA"]
    app.register_blueprint(bp, url_prefix=settings.recovery_prefix)
    if settings.recovery_host:
        app.wsgi_app = RecoveryHost(app.wsgi_app, settings.recovery_host,
                                    settings.recovery_prefix)
