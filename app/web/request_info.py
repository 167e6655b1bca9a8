"""What the doors need to know about the HTTP request, translated for core."""

from __future__ import annotations

from flask import current_app, g, request, session

from app.core.context import Origin
from app.web import addresses

# WSGI environ flag: the request came to UM2FA_RECOVERY_HOST (app/web/recovery.py RecoveryHost).
ON_RECOVERY_HOST = "um2fa.recovery_host"


def on_recovery_host() -> bool:
    return bool(request.environ.get(ON_RECOVERY_HOST))


def _recovery_prefix() -> str | None:
    """The recovery portal's path prefix when the request came to UM2FA_RECOVERY_HOST, where
    its pages are at the root ("/identify/staff" is routed as "/recovery/identify/staff")."""
    return current_app.config["UM2FA"].recovery_prefix if on_recovery_host() else None


def routed_path(path: str) -> str:
    """A path as the browser sees it, as the application routes it (on the recovery host: with
    the recovery prefix)."""
    prefix = _recovery_prefix()
    if prefix is None or path == prefix or path.startswith(prefix + "/"):
        return path
    return prefix + path


def browser_path(path: str) -> str:
    """A path (with its query, if any) as the application routes it, as the browser sees it
    (on the recovery host: without the recovery prefix)."""
    prefix = _recovery_prefix()
    if prefix is None or not (path == prefix or path.startswith((prefix + "/", prefix + "?"))):
        return path
    path = path[len(prefix):] or "/"
    return "/" + path if path.startswith("?") else path


def client_addr() -> str:
    if "client_addr" not in g:
        settings = current_app.config["UM2FA"]
        g.client_addr = addresses.client_address(request.remote_addr or "",
                                                 request.headers.get("X-Forwarded-For"),
                                                 settings.trusted_proxies)
    return g.client_addr


def on_campus() -> bool:
    return addresses.is_campus(client_addr(), current_app.config["UM2FA"].campus_networks)


def origin(door: str = "portal") -> Origin:
    return Origin(door=door, client_addr=client_addr(),
                  session_id=getattr(session, "sid", None) or "")


def is_secure() -> bool:
    """HTTPS, directly or as reported by a trusted proxy."""
    if request.is_secure:
        return True
    settings = current_app.config["UM2FA"]
    trusted = addresses.in_networks(request.remote_addr or "", settings.trusted_proxies)
    return trusted and request.headers.get("X-Forwarded-Proto", "").lower() == "https"
