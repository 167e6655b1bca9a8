"""What the doors need to know about the HTTP request, translated for core."""

from __future__ import annotations

from flask import current_app, g, request, session

from app.core.context import Origin
from app.web import addresses

# WSGI environ flag: the request came to UM2FA_RECOVERY_HOST (app/web/recovery.py RecoveryHost).
ON_RECOVERY_HOST = "um2fa.recovery_host"


def on_recovery_host() -> bool:
    return bool(request.environ.get(ON_RECOVERY_HOST))


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
