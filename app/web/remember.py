""" "Remember me" in the browser: the cookie holds a random token; app/core/remembered.py keeps
the record behind it (listed in "My Settings & Devices", where "Forget" ends it)."""

from __future__ import annotations

import re

from flask import Response, after_this_request, current_app, request

from app.core import remembered
from app.extensions import core
from app.models import User
from app.web.request_info import is_secure, origin

COOKIE = "um2fa_remember"
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


def browser_label(user_agent: str) -> str:
    """ "Firefox on Windows": enough to tell one's browsers apart, nothing more kept."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "A browser")
    system = next((name for mark, name in _SYSTEMS if re.search(re.escape(mark), user_agent)),
                  "")
    return f"{browser} on {system}" if system else browser


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
