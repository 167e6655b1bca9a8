"""What a user chose for themselves: for now, their language (docs/languages.md)."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from app.core.context import Context
from app.models import User

log = logging.getLogger("um2fa.preferences")


def language_of(ctx: Context, user_id: int | None) -> str | None:
    """The user's chosen language, or None (none chosen, or a schema still without the column:
    a node newer than its database keeps signing people in, in their browser's language)."""
    if user_id is None:
        return None
    try:
        with ctx.db.begin_nested():
            return ctx.db.scalar(select(User.language).where(User.id == user_id))
    except SQLAlchemyError as exc:
        log.warning("could not read a user's language (%s)", exc.__class__.__name__)
        return None


def set_language(ctx: Context, user_id: int, language: str) -> None:
    ctx.db.execute(update(User).where(User.id == user_id).values(language=language))
