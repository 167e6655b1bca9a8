"""Browser sessions kept on the server: the cookie holds only a random id.

A copied cookie stops working the moment its session ends (sign-out, "This wasn't me", an
administrator's unlock...), its lifetime counts from sign-in and never slides, and nothing the
session holds (the step-up time, an activation code, a pending SAML request) travels in the
browser. The record is found by a keyed hash of the id and its contents are encrypted with the
instance key, so a database dump (or a Redis dump) opens no session.

The store (app/core/session_store.py) is the database, or Redis with `UM2FA_SESSION_STORE=redis`.
Ending a user's sessions happens in the caller's transaction (database) or after its commit
(Redis), so a rolled-back action ends nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.core.context import Context
from app.core.keys import Keys

if TYPE_CHECKING:
    from app.core.subjects import Subject


@dataclass
class Record:
    key: bytes          # keyed hash of the cookie's id
    user_id: int | None
    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    # the user and their devices, when the store read them with the session (the database):
    # as of this transaction, like any read in it
    subject: Subject | None = None


def new_id() -> str:
    return secrets.token_urlsafe(32)


def key_of(keys: Keys, session_id: str) -> bytes:
    return keys.keyed_hash("browser session", session_id)


def load(ctx: Context, session_id: str) -> Record | None:
    key = key_of(ctx.keys, session_id)
    found = ctx.sessions.load(ctx.db, key, ctx.now())
    if found is None:
        return None
    user_id, blob, created_at, expires_at, subject = found
    try:
        data = json.loads(ctx.keys.decrypt(blob))
    except ValueError:  # another instance key: the session is simply gone
        return None
    return Record(key, user_id, data, created_at, expires_at, subject)


def save(ctx: Context, session_id: str, data: dict[str, Any],
         created_at: datetime, *, new: bool, replaces: str | None = None) -> Record:
    """Write the session (and drop the one it replaces, when its id was changed)."""
    key = key_of(ctx.keys, session_id)
    user_id = data.get("uid") if isinstance(data.get("uid"), int) else None
    expires_at = created_at + timedelta(seconds=ctx.settings.session_lifetime_seconds)
    blob = ctx.keys.encrypt(json.dumps(data, separators=(",", ":")).encode())
    if replaces:
        ctx.sessions.replace(ctx.db, key_of(ctx.keys, replaces), key, user_id, blob,
                             created_at, expires_at, ctx.now())
    else:
        ctx.sessions.save(ctx.db, key, user_id, blob, created_at, expires_at, ctx.now(),
                          new=new)
    return Record(key, user_id, data, created_at, expires_at)


def end(ctx: Context, session_id: str) -> None:
    ctx.sessions.delete(ctx.db, key_of(ctx.keys, session_id))


def end_for_user(ctx: Context, user_id: int, *, keep: str | None = None) -> None:
    """End every session of the user (but `keep`, the id of the one asking, when given)."""
    ctx.sessions.end_for_user(ctx.db, user_id, key_of(ctx.keys, keep) if keep else None)
