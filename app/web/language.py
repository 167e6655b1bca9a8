"""The page's language: chosen by the switcher on every page (remembered in a cookie and, once
signed in, on the user), else the browser's Accept-Language, else UM2FA_DEFAULT_LANGUAGE
(docs/languages.md). Flask-Babel asks `chosen` for the request's locale."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import Babel
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from app import i18n
from app.config import Settings
from app.core import preferences
from app.extensions import core
from app.i18n import languages, text, times
from app.web.request_info import browser_path, routed_path

bp = Blueprint("language", __name__)
COOKIE = "um2fa_lang"
PATH = "/language"
COOKIE_DAYS = 365
babel = Babel()


def _settings() -> Settings:
    return current_app.config["UM2FA"]


def _session_language() -> str | None:
    try:
        return session.get("lang")
    except Exception:  # noqa: BLE001 - a session store that is down: its page still speaks
        return None


def chosen() -> str:
    """The request's language, decided once per request."""
    if "language" not in g:
        offered = _settings().languages
        g.language = (languages.supported(_session_language(), offered)
                      or languages.supported(request.cookies.get(COOKIE), offered)
                      or languages.from_accept_language(
                          (value for value, _q in request.accept_languages), offered)
                      or _settings().default_language)
    return g.language


def _request_language() -> str | None:
    return chosen() if has_request_context() else None


def signed_in(user_id: int) -> None:
    """At sign-in: the user's own language, if they chose one, speaks from now on; if they
    never chose but chose on this browser, that choice becomes theirs."""
    ctx = core.context()
    stored = languages.supported(preferences.language_of(ctx, user_id), _settings().languages)
    if stored:
        session["lang"] = stored
        g.language = stored
    elif languages.supported(request.cookies.get(COOKIE), _settings().languages):
        preferences.set_language(ctx, user_id, chosen())


def _back_to(target: str | None) -> str:
    """`next` if it is a page of ours that answers GET, else the portal (on the recovery host:
    the recovery portal's start, its root)."""
    fallback = url_for("portal.index")
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    if any(ord(c) < 0x20 or c.isspace() for c in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(routed_path(parts.path), method="GET")
    except RequestRedirect:
        return target
    except (NotFound, MethodNotAllowed):
        return fallback
    return target


@bp.post(PATH)
def switch():
    wanted = languages.supported(request.form.get("language"), _settings().languages)
    answer = redirect(_back_to(request.form.get("next")), code=303)
    if wanted is None:
        return answer
    answer.set_cookie(COOKIE, wanted, max_age=COOKIE_DAYS * 86400, samesite="Lax",
                      secure=request.is_secure, httponly=True)
    user_id = session.get("uid")
    if user_id is not None:
        session["lang"] = wanted
        preferences.set_language(core.context(), user_id, wanted)
    return answer


def _this_page() -> str:
    """Where the switcher comes back to: this page's address as the browser sees it."""
    return browser_path((request.full_path if request.method == "GET" else request.path)
                        .rstrip("?"))


def _template_values() -> dict[str, Any]:
    offered = _settings().languages
    return {"page_language": chosen(), "html_lang": languages.html_tag(chosen()),
            "language_choices": [(lang, languages.name(lang), languages.html_tag(lang))
                                 for lang in offered],
            "language_next": _this_page(), "local_time_zone": times.zone}


def init_app(app: Flask) -> None:
    settings: Settings = app.config["UM2FA"]
    text.configure(settings.default_language, _request_language)  # (the rest: app/bootstrap.py)
    babel.init_app(app, locale_selector=chosen, timezone_selector=lambda: settings.timezone,
                   default_translation_directories=str(text.CATALOGS))
    # Every template speaks through app.i18n, the same texts the core and the RADIUS door use.
    # (Jinja's newstyle gettext fills the placeholders itself, after escaping the values.)
    app.jinja_env.install_gettext_callables(i18n.gettext, text.plural_text, newstyle=True)
    app.jinja_env.globals.update(pgettext=i18n.pgettext)
    app.jinja_env.filters.update(local=i18n.local, local_date=i18n.local_date,
                                 local_clock=i18n.local_clock, local_iso=i18n.local_iso)
    app.context_processor(_template_values)
    app.register_blueprint(bp)

    @app.after_request
    def _content_language(response):
        if "language" in g:
            response.headers.setdefault("Content-Language", languages.html_tag(g.language))
            response.vary.add("Accept-Language")
            response.vary.add("Cookie")
        return response
