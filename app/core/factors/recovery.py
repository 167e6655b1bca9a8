"""9-digit one-time recovery passcodes: random, single use, expiring, stored as keyed hashes."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from app.core.factors.base import Check, Verdict
from app.models import RecoveryPasscode

if TYPE_CHECKING:
    from app.core.context import Context
    from app.core.subjects import Subject
    from app.models import Device, User

DIGITS = 9
PURPOSE = "recovery-passcode"


def _hash(ctx: Context, user: User | Subject, code: str) -> bytes:
    return ctx.keys.keyed_hash(PURPOSE, f"{user.id}:{code}")


def issue(ctx: Context, user: User) -> tuple[str, RecoveryPasscode]:
    """A new passcode for `user`; every earlier unused one is revoked."""
    now = ctx.now()
    ctx.db.execute(
        update(RecoveryPasscode)
        .where(RecoveryPasscode.user_id == user.id, RecoveryPasscode.used_at.is_(None),
               RecoveryPasscode.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    row = RecoveryPasscode(user_id=user.id, code_hash=_hash(ctx, user, code), created_at=now,
                           expires_at=now + timedelta(seconds=ctx.settings.recovery_ttl_seconds))
    ctx.db.add(row)
    ctx.db.flush()
    return code, row


class RecoveryFactor:
    name = "recovery"

    def accepts(self, response: str) -> bool:
        return len(response) == DIGITS and response.isdigit()


    def verify(self, ctx: Context, user: User | Subject, device: Device | None,
               response: str) -> Check:
        return Check(self._verdict(ctx, user, response))

    def _verdict(self, ctx: Context, user: User | Subject, response: str) -> Verdict:
        now = ctx.now()
        rows = ctx.db.scalars(
            select(RecoveryPasscode).where(RecoveryPasscode.user_id == user.id,
                                           RecoveryPasscode.revoked_at.is_(None))
        ).all()
        digest = _hash(ctx, user, response)
        match = None
        for row in rows:
            if secrets.compare_digest(row.code_hash, digest):
                match = row
        if match is None:
            return Verdict.WRONG
        if match.used_at is not None:
            return Verdict.REPLAY
        if match.expires_at <= now:
            return Verdict.EXPIRED
        # Single use even when two requests race: only one UPDATE finds used_at still NULL.
        claimed = ctx.db.execute(
            update(RecoveryPasscode)
            .where(RecoveryPasscode.id == match.id, RecoveryPasscode.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        return Verdict.OK if claimed == 1 else Verdict.REPLAY
