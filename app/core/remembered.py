"""Remember me: a browser that may skip the second factor at the SSO door for a while.

The browser holds a random token; the server holds its keyed hash, who it is for, until when,
and a label ("Firefox on Windows", from where) to list it in "My Settings & Devices", where the
user can "Forget" it. Forgetting, sign-out in that browser and "This wasn't me" delete the
record, so a copied cookie stops working too.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from app.core import audit
from app.core.context import Context, Origin
from app.models import RememberedBrowser, User

MAX_PER_USER = 20  # the oldest are forgotten beyond this


def _hash(ctx: Context, token: str) -> bytes:
    return ctx.keys.keyed_hash("remembered browser", token)


def remember(ctx: Context, origin: Origin, user: User, label: str) -> str:
    """A new remembered browser for `remember_days`; returns the token for its cookie."""
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    ctx.db.add(RememberedBrowser(
        user_id=user.id, token_hash=_hash(ctx, token), label=label[:120],
        address=origin.client_addr[:64], created_at=now,
        expires_at=now + timedelta(days=ctx.settings.remember_days)))
    ctx.db.flush()
    stale = listed(ctx, user)[MAX_PER_USER:]
    if stale:
        ctx.db.execute(delete(RememberedBrowser).where(
            RememberedBrowser.id.in_([b.id for b in stale])))
    audit.record(ctx, origin, "remember", "ok", username=user.username, detail=label[:120])
    return token


def recognise(ctx: Context, token: str, user_id: int) -> RememberedBrowser | None:
    """The record behind this browser's token, if it is the user's and still valid."""
    if not token or not ctx.settings.remember_days or len(token) > 64:
        return None
    row = ctx.db.scalar(select(RememberedBrowser).where(
        RememberedBrowser.token_hash == _hash(ctx, token)))
    if row is None or row.user_id != user_id or row.expires_at <= ctx.now():
        return None
    row.last_used_at = ctx.now()
    return row


def listed(ctx: Context, user: User) -> list[RememberedBrowser]:
    return list(ctx.db.scalars(select(RememberedBrowser).where(
        RememberedBrowser.user_id == user.id, RememberedBrowser.expires_at > ctx.now())
        .order_by(RememberedBrowser.created_at.desc(), RememberedBrowser.id.desc())))


def forget(ctx: Context, origin: Origin, user: User, browser_id: int) -> bool:
    """ "Forget" in the settings: only the user's own records."""
    done = ctx.db.execute(delete(RememberedBrowser).where(
        RememberedBrowser.id == browser_id, RememberedBrowser.user_id == user.id)).rowcount
    if done:
        audit.record(ctx, origin, "remember.forget", "ok", username=user.username)
    return bool(done)


def forget_token(ctx: Context, token: str) -> None:
    """This browser signs out: its token stops working wherever it was copied to."""
    if token and len(token) <= 64:
        ctx.db.execute(delete(RememberedBrowser).where(
            RememberedBrowser.token_hash == _hash(ctx, token)))


def forget_all(ctx: Context, user_id: int) -> None:
    ctx.db.execute(delete(RememberedBrowser).where(RememberedBrowser.user_id == user_id))
