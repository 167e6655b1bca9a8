"""What the help-desk console and the admin API share about their routes: each declares the
console action it takes (app/core/admins.py), or that it is public (the console's sign-in, the
OpenAPI document); the caller's role is checked before the view runs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, request

from app.core import admins

PUBLIC = "public"


def guarded(action: str, role: Callable[[], str | None],
            refuse: Callable[[str | None], Any]) -> Callable:
    """A decorator: the view takes `action`; when `role()` may not, `refuse(role)` answers."""
    admins.can(admins.ADMIN, action)  # an unknown action fails at import, not at request

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            current = role()
            if not admins.can(current, action):
                return refuse(current)
            return view(*args, **kwargs)

        wrapped.console_action = action
        return wrapped

    return decorate


def public(view: Callable) -> Callable:
    view.console_action = PUBLIC
    return view


def requested_view_is_public() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "console_action", None) == PUBLIC
