"""Audit retention: `um2fa audit purge` deletes audit records older than a cutoff.

The audit is the security record, so the cutoff is never closer than `MIN_AGE` to now (a typo
such as `--older-than 1h` is refused, not obeyed). Rows go in bounded batches, each its own
short transaction, oldest first along the `at` index: no long lock and no huge transaction, and
the doors keep writing their records meanwhile (they write `at` = now, far past the cutoff, so
no batch ever meets a row being written). Each batch starts at the time where the previous one
stopped, so it does not walk again over the index entries of rows already gone.

The purge records itself (`audit.purge`, the cutoff and the count), after its last batch; a purge
stopped half-way (an error, Ctrl-C) records what it deleted so far, with result `fail`."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.core import audit
from app.core.context import Context, Origin
from app.core.progress import Progress, silent
from app.models import AuditEvent

ACTION = "audit.purge"
MIN_AGE = timedelta(days=1)
MAX_AGE = timedelta(days=36_600)  # about 100 years
BATCH = 20_000  # rows per transaction
MIN_BATCH, MAX_BATCH = 100, 100_000
_AGE = re.compile(r"(\d{1,6})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_E = AuditEvent.__table__.c


class RetentionError(ValueError):
    """A cutoff refused (too recent, unreadable); the message is safe to show."""


@dataclass(frozen=True)
class Purged:
    cutoff: datetime
    deleted: int
    batches: int


def parse_age(text: str) -> timedelta:
    """An age such as `365d`, `52w` or `36h` (hours, days, weeks)."""
    match = _AGE.fullmatch(text.strip().lower())
    if not match:
        raise RetentionError(f"{text!r} is not an age: a number and a unit, h (hours), "
                             "d (days) or w (weeks), e.g. 365d")
    age = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if age > MAX_AGE:
        raise RetentionError(f"{text!r} is too long (at most {MAX_AGE.days} days)")
    return age


def parse_before(text: str) -> datetime:
    """A point in time: `2025-12-01` (its start) or `2025-12-01T08:00`, UTC unless it gives an
    offset."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RetentionError(f"{text!r} is not a date (2025-12-01) or a date and time "
                             "(2025-12-01T08:00)") from None
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).astimezone(UTC)


def cutoff(now: datetime, *, older_than: str = "", before: str = "") -> datetime:
    """The time before which records go: now minus `older_than`, or `before`; exactly one of
    the two, and at least `MIN_AGE` ago."""
    if bool(older_than) == bool(before):
        raise RetentionError("give one of --older-than AGE or --before DATE")
    when = now - parse_age(older_than) if older_than else parse_before(before)
    if when > now - MIN_AGE:
        raise RetentionError(f"refusing to purge audit records younger than {_days(MIN_AGE)}: "
                             f"the cutoff {when:%Y-%m-%dT%H:%M:%SZ} is too recent")
    return when


def count(ctx: Context, before: datetime) -> int:
    """How many records are older than `before` (what a purge would delete now)."""
    return ctx.db.scalar(select(func.count()).select_from(AuditEvent.__table__)
                         .where(_E.at < before)) or 0


def purge(ctx: Context, origin: Origin, before: datetime, *, batch: int = BATCH,
          progress: Progress = silent) -> Purged:
    """Delete every record older than `before`, `batch` rows per transaction, oldest first,
    then record the purge. Commits as it goes (each batch, then the record)."""
    batch = max(MIN_BATCH, min(batch, MAX_BATCH))
    total = count(ctx, before)
    ctx.db.commit()
    deleted = batches = 0
    low: datetime | None = None  # every record before it is gone
    try:
        with progress("deleting", total) as phase:
            while True:  # bounded: each round deletes `batch` rows, or fewer and stops
                low, n = _one_batch(ctx, before, low, batch)
                ctx.db.commit()
                deleted += n
                batches += 1
                phase.update(n)
                if n < batch:
                    break
    except BaseException:
        ctx.db.rollback()
        if deleted:  # what went is recorded, unless the database cannot take it either
            with suppress(SQLAlchemyError):
                _record(ctx, origin, before, deleted, finished=False)
        raise
    _record(ctx, origin, before, deleted, finished=True)
    return Purged(before, deleted, batches)


def _record(ctx: Context, origin: Origin, before: datetime, deleted: int, *,
            finished: bool) -> None:
    audit.record(ctx, origin, ACTION, "ok" if finished else "fail",
                 detail=f"before {before:%Y-%m-%dT%H:%M:%SZ}; deleted {deleted}"
                        + ("" if finished else "; stopped"))
    ctx.db.commit()


def _one_batch(ctx: Context, before: datetime, low: datetime | None,
               batch: int) -> tuple[datetime | None, int]:
    """Delete the oldest `batch` records older than `before` (from `low` on); where the next
    batch starts, and how many went."""
    where = [_E.at < before] + ([_E.at >= low] if low is not None else [])
    oldest = select(_E.id).where(*where).order_by(_E.at).limit(batch)
    # the time of the batch's last record: no record before it is left once the batch is gone
    edge = ctx.db.scalar(select(_E.at).where(*where).order_by(_E.at).offset(batch - 1)
                         .limit(1))
    if edge is None:  # fewer than `batch` left: the last batch
        result = ctx.db.execute(delete(AuditEvent.__table__).where(*where))
        return low, result.rowcount
    result = ctx.db.execute(delete(AuditEvent.__table__).where(_E.id.in_(oldest)))
    return edge, result.rowcount


def _days(age: timedelta) -> str:
    return f"{age.days} day" + ("" if age.days == 1 else "s")
