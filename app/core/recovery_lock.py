"""Failed recovery verifications, and the locks they lead to.

Two counters per failure, each a row keyed by a keyed hash (so IDs that do not exist are counted
and locked exactly like real ones: the lock reveals nothing):

- per UMPASS ID **and client address**: `recovery_max_failures` failures lock recovery for that
  ID from that address only, so an attacker at one address does not lock the real person out
  everywhere;
- per UMPASS ID from every address: a higher ceiling, `recovery_max_failures_per_id` (never
  below `recovery_max_failures`), stops an attack spread over many addresses (and then locks the
  ID for everyone).

A lock lifts by itself after `recovery_lock_seconds`; each further lock of the same key lasts
longer, by the second-factor lockout's backoff (`lockout.backoff_seconds`). Failures count within
a window of `recovery_lock_seconds`. The rows live in the database so that every node sees the
same counts; increments are single UPDATEs, so concurrent failures are all counted, and one
conditional UPDATE wins each lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core import audit, lockout
from app.core.context import Context, Origin
from app.models import RecoveryGuard

PURPOSE = "recovery-subject"


def _subject(ctx: Context, username: str) -> bytes:
    """The per-ID key (from every address)."""
    return ctx.keys.keyed_hash(PURPOSE, username.strip().lower())


def _subject_at(ctx: Context, username: str, address: str) -> bytes:
    """The per-ID-and-address key."""
    return ctx.keys.keyed_hash(PURPOSE, f"{username.strip().lower()}\n{address}")


def _keys(ctx: Context, username: str, address: str) -> list[tuple[bytes, int, str]]:
    """(key, failures that lock it, what it is) for both counters."""
    settings = ctx.settings
    per_id = max(settings.recovery_max_failures_per_id, settings.recovery_max_failures)
    return [(_subject_at(ctx, username, address), settings.recovery_max_failures,
             "from this address"),
            (_subject(ctx, username), per_id, "from all addresses")]


def locked_until(ctx: Context, username: str, address: str) -> datetime | None:
    """When recovery for this UMPASS ID, asked from `address`, unlocks (None: not locked)."""
    now = ctx.now()
    subjects = [key for key, _, _ in _keys(ctx, username, address)]
    ends = [until for until in ctx.db.scalars(
        select(RecoveryGuard.locked_until).where(RecoveryGuard.subject.in_(subjects)))
        if until is not None and until > now]
    return max(ends) if ends else None


def is_locked(ctx: Context, username: str, address: str) -> bool:
    return locked_until(ctx, username, address) is not None


def _ensure_row(ctx: Context, subject: bytes, now: datetime) -> None:
    """Create the guard row if it is missing; a row created meanwhile by another node is fine."""
    dialect = ctx.db.get_bind().dialect.name
    values = {"subject": subject, "failures": 0, "window_start": now, "level": 0}
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


def _count(ctx: Context, subject: bytes, limit: int, now: datetime) -> int | None:
    """Count one failure on `subject`; the lock's length in seconds when this one locks it."""
    settings = ctx.settings
    span = timedelta(seconds=settings.recovery_lock_seconds)
    _ensure_row(ctx, subject, now)
    window_over = RecoveryGuard.window_start <= now - span
    ctx.db.execute(
        update(RecoveryGuard).where(RecoveryGuard.subject == subject)
        .values(failures=case((window_over, 1), else_=RecoveryGuard.failures + 1),
                window_start=case((window_over, now), else_=RecoveryGuard.window_start))
        .execution_options(synchronize_session=False))
    failures, level = ctx.db.execute(
        select(RecoveryGuard.failures, RecoveryGuard.level)
        .where(RecoveryGuard.subject == subject)).one()
    if failures < limit:
        return None
    seconds = lockout.backoff_seconds(settings.recovery_lock_seconds, (level or 0) + 1, settings)
    # Only one request wins the lock, however many fail at once.
    won = ctx.db.execute(
        update(RecoveryGuard)
        .where(RecoveryGuard.subject == subject, RecoveryGuard.failures >= limit,
               RecoveryGuard.level == (level or 0),
               or_(RecoveryGuard.locked_until.is_(None), RecoveryGuard.locked_until <= now))
        .values(locked_until=now + timedelta(seconds=seconds), failures=0, window_start=now,
                level=RecoveryGuard.level + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    return seconds if won else None


def record_failure(ctx: Context, origin: Origin, username: str, *,
                   audit_name: str | None = None) -> bool:
    """Count one failed verification, from `origin`'s client address; true when this failure
    locks recovery for the ID (from that address, or everywhere), audited as `audit_name`: the
    known user's name; by default the keyed hash of the typed ID."""
    now = ctx.now()
    locked = False
    for subject, limit, scope in _keys(ctx, username, origin.client_addr):
        seconds = _count(ctx, subject, limit, now)
        if seconds is None:
            continue
        locked = True
        if audit_name is None:
            audit_name = audit.unknown_username(ctx.keys, username)
        audit.record(ctx, origin, "recovery.lock", "locked", username=audit_name,
                     detail=f"{limit} failed verifications {scope}; locked for {seconds} s")
    return locked


def prune_condition(ctx: Context, now: datetime):
    """Guard rows that may go: no failures counting and no lock for long enough that the
    backoff is forgotten too."""
    settings = ctx.settings
    span = timedelta(seconds=settings.recovery_lock_seconds)
    memory = timedelta(seconds=max(settings.recovery_lock_seconds,
                                   settings.lockout_max_seconds))
    return (RecoveryGuard.window_start < now - 2 * span) & or_(
        RecoveryGuard.locked_until.is_(None), RecoveryGuard.locked_until < now - memory)
