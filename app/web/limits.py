"""The web door's limits on guessing: passwords at sign-in, passcodes at a 2FA prompt, identity
answers in the recovery portal.

Each guard is three flask-limiter limits on the view: one per client address (the limiter's
default key); one per account *and* client address (the typed username, or the signed-in user),
so that an attacker's guesses from one address do not block the real person at another; and a
higher ceiling per account from every address, which still stops an attack spread over many
addresses. The values come from the settings (`ratelimit_*`), read at each request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import current_app, request, session

from app.extensions import limiter
from app.web.request_info import client_addr


def _setting(name: str) -> Callable[[], str]:
    def value() -> str:
        return getattr(current_app.config["UM2FA"], name)
    value.__name__ = name
    return value


signin_address_limit = _setting("ratelimit_signin_address")
signin_user_limit = _setting("ratelimit_signin_user")
signin_user_ceiling = _setting("ratelimit_signin_user_ceiling")
passcode_address_limit = _setting("ratelimit_passcode_address")
passcode_user_limit = _setting("ratelimit_passcode_user")
passcode_user_ceiling = _setting("ratelimit_passcode_user_ceiling")


def typed_username() -> str:
    """The username typed in the form (the user may not exist), as accounts are keyed."""
    return (request.form.get("username") or "").strip().lower()[:64]


def at_address(account_key: Callable[[], str]) -> Callable[[], str]:
    """The per-account key narrowed to the client's address."""
    def key() -> str:
        return f"{account_key()}@{client_addr()}"
    key.__name__ = f"{account_key.__name__}_at_address"
    return key


def signin_user_key() -> str:
    """The per-account key at sign-in: the username as typed."""
    return "signin:" + typed_username()


def passcode_user_key() -> str:
    """The per-account key at a prompt: the signed-in user."""
    return f"passcode:{session.get('uid', '-')}"


def account_limits(user: Callable[[], str], ceiling: Callable[[], str],
                   user_key: Callable[[], str], methods: Iterable[str] | None = None
                   ) -> Callable:
    """Per account and address (`user`), and per account from everywhere (`ceiling`)."""
    methods = list(methods) if methods is not None else None

    def decorate(view: Callable) -> Callable:
        view = limiter.limit(user, key_func=at_address(user_key), methods=methods)(view)
        return limiter.limit(ceiling, key_func=user_key, methods=methods)(view)
    return decorate


def _guard(address: Callable[[], str], user: Callable[[], str], ceiling: Callable[[], str],
           user_key: Callable[[], str], methods: Iterable[str] | None) -> Callable:
    methods = list(methods) if methods is not None else None

    def decorate(view: Callable) -> Callable:
        # The address limit outermost, as the views always had it.
        view = account_limits(user, ceiling, user_key, methods)(view)
        return limiter.limit(address, methods=methods)(view)
    return decorate


def signin_limits(methods: Iterable[str] | None = None) -> Callable:
    """Limit password guesses: per client address, per typed username and address, per typed
    username. `methods`: only these (e.g. ["POST"] on a view that also shows the form on GET)."""
    return _guard(signin_address_limit, signin_user_limit, signin_user_ceiling,
                  signin_user_key, methods)


def passcode_limits(methods: Iterable[str] | None = None) -> Callable:
    """Limit passcode guesses (and push sends): per client address, per signed-in user and
    address, per signed-in user."""
    return _guard(passcode_address_limit, passcode_user_limit, passcode_user_ceiling,
                  passcode_user_key, methods)
