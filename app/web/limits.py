"""The web door's limits on guessing: passwords at sign-in, passcodes at a 2FA prompt, identity
answers in the recovery portal, and a few links and APIs an attacker could hammer.

Each guard is a few rules on the view: one per client address; one per account *and* client
address (the typed username, or the signed-in user), so that an attacker's guesses from one
address do not block the real person at another; and a higher ceiling per account from every
address, which still stops an attack spread over many addresses. The values come from the
settings (`ratelimit_*`, "10 per minute"), read at each request. Every request counts, whatever
its outcome; past any one limit it is refused (429) before the view runs, and is not counted
against the wider limits (the narrowest is counted first).

A request's rules are counted together, in one round trip to the counters
(app/core/hit_counters.py: Redis, or the node's memory). Guards stacked on one view are merged
into one check. A counter is named by the rule's scope (the view, unless the rule says
otherwise), its key as a keyed hash (a typed "username" may be a password typed in the wrong
field) and its limit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask, current_app, request, session
from limits import RateLimitItem, parse
from werkzeug.exceptions import TooManyRequests

from app.core.hit_counters import HitCounters, make_hit_counters
from app.extensions import core
from app.web.request_info import client_addr

log = logging.getLogger("um2fa.limits")

PURPOSE = "rate limit"
EXTENSION = "um2fa.limits"


class TooManyAttempts(TooManyRequests):
    """Past a limit: the "Too many attempts" page (or JSON under /api/)."""


def init_app(app: Flask) -> None:
    settings = app.config["UM2FA"]
    app.extensions[EXTENSION] = make_hit_counters(settings.redis_url,
                                                  settings.ratelimit_key_prefix)


def counters() -> HitCounters:
    return current_app.extensions[EXTENSION]


@functools.lru_cache(maxsize=64)
def limit_of(text: str) -> RateLimitItem:
    """ "10 per minute" (one limit; the settings are checked at start, app/config/checks.py)."""
    return parse(text)


@dataclass(frozen=True)
class Rule:
    limit: Callable[[], str]              # the setting's text, read at each request
    key: Callable[[], str] = client_addr  # whose hits count together ("" skips the rule)
    methods: frozenset[str] | None = None  # None: every method
    scope: str | None = None              # counted across the views that share it; else per view

    def applies(self) -> bool:
        return self.methods is None or request.method in self.methods


def check(rules: Iterable[Rule]) -> None:
    """Count one hit for this request on each rule that applies; refuse it past any limit."""
    keyed_hash = core.services().keys.keyed_hash
    counted = []  # (window, limit, counter's name)
    for rule in rules:
        if not rule.applies():
            continue
        key = rule.key()
        if not key:
            continue
        item = limit_of(rule.limit())
        scope = rule.scope or request.endpoint or request.path
        window = item.get_expiry()
        counted.append((window, item.amount,
                        f"{scope}:{item.amount}/{window}:{keyed_hash(PURPOSE, key).hex()[:32]}"))
    if not counted:
        return
    counted.sort()  # the narrowest limit first
    windows, amounts, names = zip(*counted, strict=True)
    if not counters().hit(names, windows, amounts):
        log.info("rate limit exceeded at %s", request.endpoint)
        raise TooManyAttempts()


def limited(*rules: Rule) -> Callable:
    """Guard a view with `rules`. On a view guarded already, the rules join its guard: one
    check, one round trip."""
    def decorate(view: Callable) -> Callable:
        inner = getattr(view, "__guarded__", None)
        if inner is not None:
            view, rules_ = inner, (*rules, *view.__guard_rules__)
        else:
            rules_ = rules

        @functools.wraps(view)
        def guarded(*args, **kwargs):
            check(rules_)
            return view(*args, **kwargs)
        guarded.__guarded__ = view  # type: ignore[attr-defined]
        guarded.__guard_rules__ = rules_  # type: ignore[attr-defined]
        return guarded
    return decorate


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
recovery_address_limit = _setting("ratelimit_recovery_address")
activate_address_limit = _setting("ratelimit_activate_address")


def typed_username() -> str:
    """The username typed in the form (the user may not exist), as accounts are keyed."""
    return (request.form.get("username") or "").strip().lower()[:64]


def at_address(account_key: Callable[[], str]) -> Callable[[], str]:
    """The per-account key narrowed to the client's address."""
    def key() -> str:
        account = account_key()
        return f"{account}@{client_addr()}" if account else ""
    key.__name__ = f"{account_key.__name__}_at_address"
    return key


def signin_user_key() -> str:
    """The per-account key at sign-in: the username as typed."""
    return "signin:" + typed_username()


def passcode_user_key() -> str:
    """The per-account key at a prompt: the signed-in user."""
    return f"passcode:{session.get('uid', '-')}"


def _methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    return frozenset(methods) if methods is not None else None


def account_rules(user: Callable[[], str], ceiling: Callable[[], str],
                  user_key: Callable[[], str],
                  methods: Iterable[str] | None = None) -> tuple[Rule, Rule]:
    """Per account and address (`user`), and per account from everywhere (`ceiling`)."""
    only = _methods(methods)
    return Rule(user, at_address(user_key), only), Rule(ceiling, user_key, only)


def account_limits(user: Callable[[], str], ceiling: Callable[[], str],
                   user_key: Callable[[], str], methods: Iterable[str] | None = None
                   ) -> Callable:
    return limited(*account_rules(user, ceiling, user_key, methods))


def address_limit(limit: Callable[[], str], methods: Iterable[str] | None = None,
                  scope: str | None = None) -> Callable:
    """Per client address only."""
    return limited(Rule(limit, client_addr, _methods(methods), scope))


def _guard(address: Callable[[], str], user: Callable[[], str], ceiling: Callable[[], str],
           user_key: Callable[[], str], methods: Iterable[str] | None) -> Callable:
    return limited(Rule(address, client_addr, _methods(methods)),
                   *account_rules(user, ceiling, user_key, methods))


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
