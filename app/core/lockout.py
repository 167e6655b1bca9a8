"""Second-factor lockout: the one failure counter every door and every factor shares.

A wrong passcode (web or VPN), a recovery passcode that does not match and a Verified Push
number typed wrong on the phone all count here; `lockout_threshold` consecutive failures lock
the user until the help desk unlocks them. A good second factor resets the count. The counter
and the lock are plain conditional UPDATEs, so two nodes (or two requests in one RADIUS batch)
counting at once add up and lock once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import bindparam, update

from app.core import audit
from app.core.context import Context, Origin
from app.models import User

LOCKED_MESSAGE = ("Your account is locked after too many failed attempts. "
                  "Please contact the IT help desk.")
# What "Send me a Push" says to a locked user.
LOCKED_PUSH_MESSAGE = "Your account is locked. Please contact the IT help desk."


class Lockable(Protocol):
    """An ORM User or a users.Subject: what the lockout rules read."""

    id: int
    username: str
    disabled: bool
    locked_at: datetime | None


_U = User.__table__
_FAILED = (update(_U).where(_U.c.id == bindparam("user_id"))
           .values(failed_factor_count=_U.c.failed_factor_count + 1)
           .returning(_U.c.failed_factor_count, _U.c.locked_at))
_LOCK = (update(_U).where(_U.c.id == bindparam("user_id"), _U.c.locked_at.is_(None))
         .values(locked_at=bindparam("now")))
_RESET = (update(_U).where(_U.c.id == bindparam("user_id"), _U.c.failed_factor_count != 0)
          .values(failed_factor_count=0))


def is_locked(user: Lockable) -> bool:
    """Locked out by failures, or disabled by an administrator: no second factor admits them."""
    return bool(user.disabled) or user.locked_at is not None


def register_failure(ctx: Context, origin: Origin, user: Lockable) -> bool:
    """Count one failed second factor; true when this failure locks the user."""
    conn = ctx.db.connection()
    count, locked_at = conn.execute(_FAILED, {"user_id": user.id}).one()
    if count < ctx.settings.lockout_threshold or locked_at is not None:
        return False
    locked = conn.execute(_LOCK, {"user_id": user.id, "now": ctx.now()}).rowcount == 1
    if locked:
        audit.record(ctx, origin, "lockout", "locked", username=user.username,
                     detail=f"{count} consecutive second-factor failures")
    return locked


def reset(ctx: Context, user: Lockable) -> None:
    """A good second factor: the count starts again from zero (no write when it is zero)."""
    ctx.db.connection().execute(_RESET, {"user_id": user.id})


def unlock(user: User) -> None:
    """Lift a lockout (the caller audits who did it and why)."""
    user.locked_at = None
    user.failed_factor_count = 0
