"""Failed recovery verifications per UMPASS ID, and the lock they lead to.

The counter lives in the database (one row per ID as typed, keyed-hashed) so that every node sees
the same count; increments are single UPDATEs, so concurrent failures are all counted. IDs that do
not exist are counted and locked exactly like real ones: the lock reveals nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core import audit
from app.core.context import Context, Origin
from app.models import RecoveryGuard

PURPOSE = "recovery-subject"


def _subject(ctx: Context, username: str) -> bytes:
    return ctx.keys.keyed_hash(PURPOSE, username.strip().lower())


def locked_until(ctx: Context, username: str) -> datetime | None:
    until = ctx.db.scalar(select(RecoveryGuard.locked_until)
                          .where(RecoveryGuard.subject == _subject(ctx, username)))
    return until if until is not None and until > ctx.now() else None


def is_locked(ctx: Context, username: str) -> bool:
    return locked_until(ctx, username) is not None


def _ensure_row(ctx: Context, subject: bytes, now: datetime) -> None:
    """Create the guard row if it is missing; a row created meanwhile by another node is fine."""
    dialect = ctx.db.get_bind().dialect.name
    values = {"subject": subject, "failures": 0, "window_start": now}
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        ctx.db.execute(insert(RecoveryGuard).values(**values)
                       .on_conflict_do_nothing(index_elements=["subject"]))
        return
    if ctx.db.get(RecoveryGuard, subject) is None:
        try:
            with ctx.db.begin_nested():
                ctx.db.add(RecoveryGuard(**values))
        except IntegrityError:
            pass


def record_failure(ctx: Context, origin: Origin, username: str, *,
                   audit_name: str | None = None) -> bool:
    """Count one failed verification; true when this failure locks the ID (audited as
    `audit_name`: the known user's name; by default the keyed hash of the typed ID)."""
    settings = ctx.settings
    now = ctx.now()
    span = timedelta(seconds=settings.recovery_lock_seconds)
    subject = _subject(ctx, username)
    _ensure_row(ctx, subject, now)
    window_over = RecoveryGuard.window_start <= now - span
    ctx.db.execute(
        update(RecoveryGuard).where(RecoveryGuard.subject == subject)
        .values(failures=case((window_over, 1), else_=RecoveryGuard.failures + 1),
                window_start=case((window_over, now), else_=RecoveryGuard.window_start))
        .execution_options(synchronize_session=False))
    # Only one request wins the lock, however many fail at once.
    locked = ctx.db.execute(
        update(RecoveryGuard)
        .where(RecoveryGuard.subject == subject,
               RecoveryGuard.failures >= settings.recovery_max_failures,
               or_(RecoveryGuard.locked_until.is_(None), RecoveryGuard.locked_until <= now))
        .values(locked_until=now + span, failures=0, window_start=now)
        .execution_options(synchronize_session=False)).rowcount == 1
    if locked:
        if audit_name is None:
            audit_name = audit.unknown_username(ctx.keys, username)
        audit.record(ctx, origin, "recovery.lock", "locked", username=audit_name,
                     detail=f"{settings.recovery_max_failures} failed verifications; locked for "
                            f"{settings.recovery_lock_seconds} s")
    return locked
