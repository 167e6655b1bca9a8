"""What a user chose for themselves: their language (docs/languages.md) and "Automatically
send me a push" (a 2FA prompt sends the push as it opens).

Both are columns added by later migrations, deferred in the model: a login never loads them
with the user. They are read here, in a savepoint, so a node newer than its database's schema
(a migration not yet run, or being undone) keeps signing people in: a missing column reads as
"nothing chosen".
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from app.core import audit
from app.core.context import Context, Origin
from app.models import User

log = logging.getLogger("um2fa.preferences")


class Unavailable(RuntimeError):
    """The setting cannot be saved now (the database's schema does not have it yet)."""


def _read(ctx: Context, column: Any, user_id: int | None) -> Any:
    """One of the user's columns, or None (no user, or the schema still without the column)."""
    if user_id is None:
        return None
    # Records the request has audited so far are written outside the savepoint: its rollback
    # must not take them along.
    audit.flush(ctx.db)
    try:
        with ctx.db.begin_nested():
            return ctx.db.scalar(select(column).where(User.id == user_id))
    except SQLAlchemyError as exc:
        log.warning("could not read a user's %s (%s)", column.key, exc.__class__.__name__)
        return None


def language_of(ctx: Context, user_id: int | None) -> str | None:
    """The user's chosen language, or None (none chosen, or a schema still without the column:
    a node newer than its database keeps signing people in, in their browser's language)."""
    return _read(ctx, User.language, user_id)


def set_language(ctx: Context, user_id: int, language: str) -> None:
    ctx.db.execute(update(User).where(User.id == user_id).values(language=language))


def auto_push(ctx: Context, user_id: int | None) -> bool:
    """Whether the user asked for "Automatically send me a push". Off when never set (NULL) and
    while the schema does not have the column yet."""
    return bool(_read(ctx, User.auto_push, user_id))


def set_auto_push(ctx: Context, origin: Origin, user: User, on: bool) -> None:
    """Turn "Automatically send me a push" on or off, audited (settings.auto_push, on/off).
    Unavailable when the schema does not have the column yet (nothing changed)."""
    audit.flush(ctx.db)
    try:
        with ctx.db.begin_nested():
            ctx.db.execute(update(User).where(User.id == user.id).values(auto_push=on))
    except SQLAlchemyError as exc:
        log.warning("could not save a user's auto_push (%s)", exc.__class__.__name__)
        raise Unavailable from exc
    audit.record(ctx, origin, "settings.auto_push", "ok", username=user.username,
                 detail="on" if on else "off")
