"""Bearer tokens for the admin API: shown once when made, kept as a keyed hash, revocable."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select, update

from app.core import audit
from app.core.admins import ROLES, AdminError
from app.core.context import Context, Origin
from app.i18n import _
from app.models import ApiToken

PURPOSE = "api-token"
PREFIX = "um2fa_"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _hash(ctx: Context, token: str) -> bytes:
    return ctx.keys.keyed_hash(PURPOSE, token)


def add(ctx: Context, origin: Origin, name: str, role: str) -> str:
    """A new token for `name`; the token itself is returned once and never stored."""
    if not NAME_RE.fullmatch(name):
        raise AdminError(_("a token's name is 1-64 letters, digits, '.', '_' or '-'"))
    if role not in ROLES:
        raise AdminError(_("role must be one of %(choices)s", choices=", ".join(ROLES)))
    if ctx.db.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise AdminError(_("a token named %(name)s exists (remove it first)", name=name))
    token = PREFIX + secrets.token_urlsafe(32)
    ctx.db.add(ApiToken(name=name, role=role, token_hash=_hash(ctx, token),
                        created_at=ctx.now()))
    ctx.db.flush()
    audit.record(ctx, origin, "api_token.add", "ok", detail=f"{name} {role}")
    return token


def find(ctx: Context, name: str) -> ApiToken | None:
    return ctx.db.scalar(select(ApiToken).where(ApiToken.name == name))


def remove(ctx: Context, origin: Origin, name: str) -> None:
    row = find(ctx, name)
    if row is None:
        raise AdminError(_("no API token named %(name)s", name=name))
    ctx.db.delete(row)
    audit.record(ctx, origin, "api_token.remove", "ok", detail=name)


def all_tokens(ctx: Context) -> list[ApiToken]:
    return list(ctx.db.scalars(select(ApiToken).order_by(ApiToken.name)))


def authenticate(ctx: Context, token: str) -> ApiToken | None:
    """The token's row, its last use recorded; None for an unknown or removed token. The
    lookup is by keyed hash: an equality on a digest the caller cannot choose leaks nothing."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = ctx.db.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(ctx, token)))
    if row is not None:
        ctx.db.execute(update(ApiToken).where(ApiToken.id == row.id)
                       .values(last_used_at=ctx.now()))
    return row
