"""Retention: what `um2fa audit purge` and `um2fa push purge` share.

A cutoff is an age (`365d`, `52w`, `36h`) or a point in time, never closer to now than the
kind of record allows (a typo such as `--older-than 1h` is refused, not obeyed). Rows go in
bounded batches, each its own short transaction, oldest first along an indexed column: no long
lock and no huge transaction, and the doors keep writing meanwhile (their new rows are far past
the cutoff, so no batch ever meets a row being written). Each batch starts where the previous
one stopped, so it does not walk again over the index entries of rows already gone."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Table, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.core import audit
from app.core.context import Context, Origin
from app.core.progress import Progress, silent

MAX_AGE = timedelta(days=36_600)  # about 100 years
BATCH = 20_000  # rows per transaction
MIN_BATCH, MAX_BATCH = 100, 100_000
_AGE = re.compile(r"(\d{1,6})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class RetentionError(ValueError):
    """A cutoff refused (too recent, unreadable); the message is safe to show."""


@dataclass(frozen=True)
class Purged:
    cutoff: datetime
    deleted: int
    batches: int


@dataclass(frozen=True)
class Kept:
    """One kind of record: its table, the time a record is aged by, the indexed column the
    batches go along (in the same order as the time, ties allowed), and how young a purge may
    go."""

    table: Table
    time: Column
    order: Column
    min_age: timedelta
    name: str  # "audit record", in messages
    action: str  # the purge's own audit record: "audit.purge"

    def youngest(self) -> str:
        """The youngest a purge may go, for a message: "1 day", "8 days"."""
        days = self.min_age.days
        return f"{days} day{'' if days == 1 else 's'}"


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


def cutoff(kept: Kept, now: datetime, *, older_than: str = "", before: str = "") -> datetime:
    """The time before which records go: now minus `older_than`, or `before`; exactly one of
    the two, and at least the kind's `min_age` ago."""
    if bool(older_than) == bool(before):
        raise RetentionError("give one of --older-than AGE or --before DATE")
    when = now - parse_age(older_than) if older_than else parse_before(before)
    if when > now - kept.min_age:
        raise RetentionError(f"refusing to purge {kept.name}s younger than {kept.youngest()}: "
                             f"the cutoff {when:%Y-%m-%dT%H:%M:%SZ} is too recent")
    return when


def count(ctx: Context, kept: Kept, before: datetime) -> int:
    """How many records are older than `before` (what a purge would delete now)."""
    return ctx.db.scalar(select(func.count()).select_from(kept.table)
                         .where(kept.time < before)) or 0


def purge(ctx: Context, origin: Origin, kept: Kept, before: datetime, *, batch: int = BATCH,
          progress: Progress = silent) -> Purged:
    """Delete every record older than `before`, `batch` rows per transaction, oldest first,
    then record the purge in the audit (`kept.action`, with the cutoff and the count). Commits
    as it goes (each batch, then the record). A purge stopped half-way (an error, Ctrl-C)
    records what it deleted so far, with result `fail`."""
    batch = max(MIN_BATCH, min(batch, MAX_BATCH))
    total = count(ctx, kept, before)
    ctx.db.commit()
    deleted = batches = 0
    low = None  # every record before it (in `kept.order`) is gone
    try:
        with progress("deleting", total) as phase:
            while True:  # bounded: each round deletes `batch` rows, or fewer and stops
                low, n = _one_batch(ctx, kept, before, low, batch)
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
                _record(ctx, origin, kept, before, deleted, finished=False)
        raise
    _record(ctx, origin, kept, before, deleted, finished=True)
    return Purged(before, deleted, batches)


def _record(ctx: Context, origin: Origin, kept: Kept, before: datetime, deleted: int, *,
            finished: bool) -> None:
    audit.record(ctx, origin, kept.action, "ok" if finished else "fail",
                 detail=f"before {before:%Y-%m-%dT%H:%M:%SZ}; deleted {deleted}"
                        + ("" if finished else "; stopped"))
    ctx.db.commit()


def _one_batch(ctx: Context, kept: Kept, before: datetime, low,
               batch: int) -> tuple[object, int]:
    """Delete the oldest `batch` records older than `before` (from `low` on); where the next
    batch starts, and how many went."""
    key = kept.table.primary_key.columns.values()[0]
    where = [kept.time < before] + ([kept.order >= low] if low is not None else [])
    oldest = select(key).where(*where).order_by(kept.order).limit(batch)
    # the batch's last value of `order`: no record before it is left once the batch is gone
    edge = ctx.db.scalar(select(kept.order).where(*where).order_by(kept.order)
                         .offset(batch - 1).limit(1))
    if edge is None:  # fewer than `batch` left: the last batch
        result = ctx.db.execute(delete(kept.table).where(*where))
        return low, result.rowcount
    result = ctx.db.execute(delete(kept.table).where(key.in_(oldest)))
    return edge, result.rowcount
