"""Second-factor lockout: the one failure counter every door and every factor shares.

A wrong passcode (web or VPN), a recovery passcode that does not match and a Verified Push
number typed wrong on the phone all count here; `lockout_threshold` consecutive failures lock
the user. A lock lifts by itself after `lockout_seconds`; each further lock without a good
second factor in between lasts `lockout_backoff_factor` times longer, at most
`lockout_max_seconds` (`backoff_seconds`, also the recovery portal's lock). A lock set by an
administrator (`um2fa users lock`: `disabled`) never lifts by itself; `um2fa users unlock` lifts
both. A good second factor resets the count and the backoff.

The counter and the lock are plain conditional UPDATEs, so two nodes (or two requests in one
RADIUS batch) counting at once add up and lock once. While a lock holds, failures are not
counted (nothing is verified then anyway); the first failure after a lock has lifted starts a
new count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, and_, bindparam, case, or_, update

from app.config import Settings
from app.core import audit, notices
from app.core.context import Context, Origin
from app.i18n import N_, ngettext
from app.models import User

# msgids: shown with `_(LOCKED_MESSAGE)` when the message is built
LOCKED_MESSAGE = N_("Your account is temporarily locked after too many failed attempts. "
                    "Please try again later, or contact the IT help desk.")
# What "Send me a Push" says to a locked user.
LOCKED_PUSH_MESSAGE = N_("Your account is temporarily locked. Please try again later, or "
                         "contact the IT help desk.")
# Failures left before the lock at which the person is warned ("2 attempts left").
WARN_AT = 2


class Lockable(Protocol):
    """An ORM User or a subjects.Subject: what the lockout rules read."""

    id: int
    username: str
    disabled: bool
    locked_at: datetime | None
    locked_until: datetime | None


@dataclass(frozen=True)
class Failure:
    """One counted failure: whether it locked the user, and how many failures are left before
    the lock (None when the failure was not counted: the user was locked already)."""

    locked: bool
    attempts_left: int | None = None


def backoff_seconds(base: int, level: int, settings: Settings) -> int:
    """How long the `level`-th lock in a row lasts (level 1: `base` seconds), growing by
    `lockout_backoff_factor` per level up to `lockout_max_seconds` (never below `base`)."""
    cap = max(base, settings.lockout_max_seconds)
    factor = max(1, settings.lockout_backoff_factor)
    seconds = base
    for _ in range(max(0, level - 1)):
        seconds *= factor
        if seconds >= cap:
            return cap
    return min(seconds, cap)


_U = User.__table__
# Not locked now: no lock, or a lock that has lifted. A lock without an end (locked_until NULL:
# set by hand in the database) holds until unlocked.
_NOT_LOCKED = or_(_U.c.locked_at.is_(None),
                  and_(_U.c.locked_until.is_not(None), _U.c.locked_until <= bindparam("now")))
# The first failure after a lock lifted starts a new count (and clears the old lock's start).
_LIFTED = _U.c.locked_at.is_not(None)
_FAILED = (update(_U).where(_U.c.id == bindparam("user_id"), _NOT_LOCKED)
           .values(failed_factor_count=case((_LIFTED, 1), else_=_U.c.failed_factor_count + 1),
                   locked_at=None)
           .returning(_U.c.failed_factor_count, _U.c.lockout_level))
_LOCK = (update(_U).where(_U.c.id == bindparam("user_id"), _U.c.locked_at.is_(None),
                          _U.c.failed_factor_count >= bindparam("threshold"))
         .values(locked_at=bindparam("now"), locked_until=bindparam("until"),
                 lockout_level=_U.c.lockout_level + 1))
_RESET = (update(_U).where(_U.c.id == bindparam("user_id"),
                           or_(_U.c.failed_factor_count != 0, _U.c.lockout_level != 0))
          .values(failed_factor_count=0, lockout_level=0))


def locked_until(user: Lockable, now: datetime) -> datetime | None:
    """The end of the user's lockout if one holds at `now` (datetime.max: until unlocked)."""
    if user.locked_at is None:
        return None
    until = getattr(user, "locked_until", None)
    if until is None:
        return datetime.max.replace(tzinfo=UTC)
    return until if until > now else None


def is_locked(user: Lockable, now: datetime | None = None) -> bool:
    """Disabled by an administrator (until unlocked), or locked out by failures (until the lock
    lifts): no second factor admits them. `now`: the context's clock (ctx.now()); the wall
    clock when not given."""
    if user.disabled:
        return True
    return locked_until(user, now if now is not None else datetime.now(UTC)) is not None


def locked_now(now: datetime) -> ColumnElement[bool]:
    """`is_locked` as a condition on the users table (to count or list locked users)."""
    return or_(User.disabled.is_(True),
               and_(User.locked_at.is_not(None),
                    or_(User.locked_until.is_(None), User.locked_until > now)))


def register_failure(ctx: Context, origin: Origin, user: Lockable) -> bool:
    """Count one failed second factor; true when this failure locks the user."""
    return count_failure(ctx, origin, user).locked


def count_failure(ctx: Context, origin: Origin, user: Lockable) -> Failure:
    """Count one failed second factor: whether it locked the user, and the failures left."""
    settings = ctx.settings
    now = ctx.now()
    conn = ctx.db.connection()
    row = conn.execute(_FAILED, {"user_id": user.id, "now": now}).one_or_none()
    if row is None:  # locked already: not counted
        return Failure(locked=False)
    count, level = row[0], row[1] or 0
    threshold = settings.lockout_threshold
    if count < threshold:
        return Failure(locked=False, attempts_left=threshold - count)
    seconds = backoff_seconds(settings.lockout_seconds, level + 1, settings)
    until = now + timedelta(seconds=seconds)
    locked = conn.execute(_LOCK, {"user_id": user.id, "now": now, "until": until,
                                  "threshold": threshold}).rowcount == 1
    if locked:
        audit.record(ctx, origin, "lockout", "locked", username=user.username,
                     detail=f"{count} consecutive second-factor failures; locked for "
                            f"{seconds} s (lock {level + 1} in a row)")
        _tell_locked(ctx, origin, user)
    return Failure(locked=locked, attempts_left=0)


def _tell_locked(ctx: Context, origin: Origin, user: Lockable) -> None:
    """The user hears of the lock (email, companion app) once the failure is committed."""
    row = user if isinstance(user, User) else ctx.db.get(User, user.id)
    if row is not None:
        notices.tell(ctx, origin, row, notices.ACCOUNT_LOCKED)


def reset(ctx: Context, user: Lockable) -> None:
    """A good second factor: the count and the backoff start again from zero (no write when
    both are zero)."""
    ctx.db.connection().execute(_RESET, {"user_id": user.id})


def unlock(user: User) -> None:
    """Lift a lockout (the caller audits who did it and why)."""
    user.locked_at = None
    user.locked_until = None
    user.failed_factor_count = 0
    user.lockout_level = 0


def attempts_left_warning(attempts_left: int | None) -> str:
    """What a wrong second factor adds when the lock is near ("2 attempts left"), else ""."""
    if attempts_left is None or not 0 < attempts_left <= WARN_AT:
        return ""
    return ngettext("%(num)d attempt left before your account is temporarily locked.",
                    "%(num)d attempts left before your account is temporarily locked.",
                    attempts_left)
