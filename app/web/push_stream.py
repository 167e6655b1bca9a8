"""Where a login page waiting for its push listens: the push event stream's URL (with the
push's signed watch token) for the prompts' status region, and its origin for the page's CSP.

UM2FA_PUSH_EVENTS_URL decides: "off" (pages only poll), a path or an http(s) URL, or "" (the
default): `um2fa serve` runs the stream itself on a port of its own (it tells the app which,
in `app.config[SERVE_PORT]`) on the host the browser used; anywhere else (gunicorn) it is
/push/events on the page's own origin, where the proxy in front sends it to
`um2fa push-events` (deploy/nginx.conf). A stream that cannot be reached costs nothing but
speed: the page polls as before.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from flask import current_app, request

from app.core import push
from app.extensions import core
from app.models import PushRequest
from app.push_wait import STREAM_PATH

SERVE_PORT = "UM2FA_PUSH_EVENTS_PORT"  # app.config: the port of `um2fa serve`'s own stream


_HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


def _hostname(host: str) -> str:
    """The Host header's name without its port ("[::1]:8000" -> "[::1]"), or "" when it is no
    host name (it goes into the page and its CSP)."""
    if host.startswith("["):
        name = host[:host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name if _HOSTNAME.fullmatch(name) else ""


def base_url() -> str:
    """The stream's URL without its token, or "" when pages only poll."""
    setting = current_app.config["UM2FA"].push_events_url.strip()
    if setting == "off":
        return ""
    if setting:
        return setting.rstrip("/") or STREAM_PATH
    port = current_app.config.get(SERVE_PORT)
    if port:
        host = _hostname(request.host)
        return f"{request.scheme}://{host}:{port}{STREAM_PATH}" if host else ""
    return STREAM_PATH


def url_for_push(waiting: PushRequest) -> str:
    """The URL at which the page that sent `waiting` hears when it stops waiting ("" when
    pages only poll)."""
    base = base_url()
    if not base:
        return ""
    token = push.watch_token(core.services().keys, waiting)
    return f"{base}?{urlencode({'token': token})}"


def connect_source() -> str:
    """The stream's origin when it is not the page's own (the CSP's connect-src must name
    it), else ""."""
    base = base_url()
    if not base.startswith(("http://", "https://")):
        return ""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"
