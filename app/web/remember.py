""" "Remember me" in the browser: the cookie holds a random token; app/core/remembered.py keeps
the record behind it (listed in "My Settings & Devices", where "Forget" ends it)."""

from __future__ import annotations

import re

from flask import Response, after_this_request, current_app, request

from app.core import remembered
from app.extensions import core
from app.i18n import N_, _
from app.models import User
from app.web.request_info import is_secure, origin

COOKIE = "um2fa_remember"
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


A_BROWSER = N_("A browser")
_LABEL = re.compile(r"(?P<browser>.+) on (?P<system>\S+)")


def browser_label(user_agent: str) -> str:
    """ "Firefox on Windows": enough to tell one's browsers apart, nothing more kept. The
    record keeps these English words; `browser_words` shows them in the page's language."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), A_BROWSER)
    system = next((name for mark, name in _SYSTEMS if re.search(re.escape(mark), user_agent)),
                  "")
    return f"{browser} on {system}" if system else browser


def browser_words(label: str | None) -> str:
    """A remembered browser's label as the page shows it: "Firefox on Windows" in the page's
    language ("A browser" for none)."""
    label = label or A_BROWSER
    found = _LABEL.fullmatch(label)
    if found is None:
        return _(label) if label == A_BROWSER else label
    browser = found["browser"]
    return _("%(browser)s on %(system)s", browser=_(browser) if browser == A_BROWSER else browser,
             system=found["system"])


def recognised(user_id: int) -> bool:
    token = request.cookies.get(COOKIE, "")
    return remembered.recognise(core.context(), token, user_id) is not None


def remember(response: Response, user: User) -> Response:
    ctx = core.context()
    label = browser_label(request.headers.get("User-Agent", ""))
    token = remembered.remember(ctx, origin(), user, label)
    response.set_cookie(COOKIE, token, max_age=ctx.settings.remember_days * 86400,
                        httponly=True, samesite="Lax", secure=is_secure(), path="/")
    return response


def forget_this_browser() -> None:
    """Sign-out: this browser's remembered record goes, and so does its cookie."""
    token = request.cookies.get(COOKIE, "")
    if token:
        remembered.forget_token(core.context(), token)

    @after_this_request
    def _delete(response: Response) -> Response:
        response.delete_cookie(COOKIE, path="/")
        response.delete_cookie(COOKIE, path="/sso")  # where earlier versions kept it
        return response


def offered() -> bool:
    return bool(current_app.config["UM2FA"].remember_days)
