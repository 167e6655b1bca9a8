"""The web door's limits on guessing: passwords at sign-in, passcodes at a 2FA prompt.

Each guard is two flask-limiter limits on the view: one per client address (the limiter's
default key) and one per account (the typed username, or the signed-in user). The values
come from the settings (`ratelimit_*`), read at each request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import current_app, request, session

from app.extensions import limiter


def signin_address_limit() -> str:
    return current_app.config["UM2FA"].ratelimit_signin_address


def signin_user_limit() -> str:
    return current_app.config["UM2FA"].ratelimit_signin_user


def passcode_address_limit() -> str:
    return current_app.config["UM2FA"].ratelimit_passcode_address


def passcode_user_limit() -> str:
    return current_app.config["UM2FA"].ratelimit_passcode_user


def signin_user_key() -> str:
    """The per-account key at sign-in: the username as typed (the user may not exist)."""
    return "signin:" + (request.form.get("username") or "").strip().lower()[:64]


def passcode_user_key() -> str:
    """The per-account key at a prompt: the signed-in user."""
    return f"passcode:{session.get('uid', '-')}"


def _both(address: Callable[[], str], user: Callable[[], str], user_key: Callable[[], str],
          methods: Iterable[str] | None) -> Callable:
    methods = list(methods) if methods is not None else None

    def decorate(view: Callable) -> Callable:
        # Stacked as the views always had them: the address limit outermost.
        view = limiter.limit(user, key_func=user_key, methods=methods)(view)
        return limiter.limit(address, methods=methods)(view)
    return decorate


def signin_limits(methods: Iterable[str] | None = None) -> Callable:
    """Limit password guesses: per client address and per typed username. `methods`: only
    these (e.g. ["POST"] on a view that also shows the form on GET)."""
    return _both(signin_address_limit, signin_user_limit, signin_user_key, methods)


def passcode_limits(methods: Iterable[str] | None = None) -> Callable:
    """Limit passcode guesses (and push sends): per client address and per signed-in user."""
    return _both(passcode_address_limit, passcode_user_limit, passcode_user_key, methods)
