from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import redirect, url_for

from app.extensions import htmx
from app.web.auth import current_user, step_up_is_fresh


def fresh_second_factor(next_step: str) -> Callable:
    """The view needs the step-up `next_step` asks for (app/web/auth.py: step_up_is_fresh)
    done within the step-up window; else back to the prompt.

    htmx requests get an HX-Redirect so the whole page moves, not just the fragment.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if current_user() is None:
                target = url_for("portal.index")
            elif not step_up_is_fresh(next_step):
                target = url_for("prompt.index", next=next_step)
            else:
                return view(*args, **kwargs)
            if htmx:
                return "", 204, {"HX-Redirect": target}
            return redirect(target)

        return wrapped

    return decorator
