"""Audit search across all users (issue 15): the console, the API and `um2fa audit` ask here.

A query names any of: a time range (since <= at < until), the username, door, action, result,
client address and actor (exact matches). Results are newest first, by (at, id). A page is read
with keyset paging: the next page starts after the last row's (at, id), so a page deep in a large
table costs what the first one does (the `at` index), and rows written meanwhile do not shift it.
`everything` walks the same order in batches for the CSV export, up to a bound.

Filters on username and actor use their indexes; the others narrow rows read in `at` order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import and_, or_, select

from app.core import users
from app.core.context import Context
from app.i18n import N_, _
from app.models import AuditEvent

DEFAULT_PAGE = 50
MAX_PAGE = 500
EXPORT_LIMIT = 100_000  # the most rows one CSV export holds
EXPORT_BATCH = 1000
MAX_RELATIVE_DAYS = 3660
FIELDS = ("username", "door", "action", "result", "address", "actor")
# The longest value each filter can match (the columns' widths).
_WIDTHS = {"username": 64, "door": 16, "action": 48, "result": 16, "address": 64,
           "actor": 80}
_RELATIVE = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_CURSOR = re.compile(r"(\d{1,20})-(\d{1,19})")
MAX_ID = 2**31 - 1  # audit_events.id is an INTEGER: a larger one is a database error
_OUT_OF_RANGE = N_("%(name)s: %(text)s is out of range (times run from 0001-01-01T00:00 to "
                   "9999-12-31T23:59 UTC; a date as until ends at the next day's start)")


class AuditSearchError(ValueError):
    """A bad filter, page size or cursor; the message is safe to show."""


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    username: str = ""
    door: str = ""
    action: str = ""
    result: str = ""
    address: str = ""  # the client's (audit_events.client_addr)
    actor: str = ""


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last row's time and id (the next page starts after it)."""

    at: datetime
    id: int

    def __str__(self) -> str:
        micros = int(self.at.timestamp()) * 1_000_000 + self.at.microsecond
        return f"{micros}-{self.id}"


@dataclass(frozen=True)
class Page:
    rows: list[AuditEvent]
    next_cursor: Cursor | None


def page(ctx: Context, query: AuditQuery, *, size: int = DEFAULT_PAGE,
         after: Cursor | None = None) -> Page:
    """One page of matching records, newest first, and the cursor of the next (None: none)."""
    size = max(1, min(size, MAX_PAGE))
    rows = list(ctx.db.scalars(_select(query, after).limit(size + 1)))
    if len(rows) <= size:
        return Page(rows, None)
    rows = rows[:size]
    return Page(rows, Cursor(rows[-1].at, rows[-1].id))


def everything(ctx: Context, query: AuditQuery, *, limit: int = EXPORT_LIMIT,
               batch: int = EXPORT_BATCH) -> Iterator[AuditEvent]:
    """Every matching record, newest first, at most `limit`, read `batch` at a time."""
    after, left = None, limit
    while left > 0:  # bounded: each round yields at least one row or stops
        rows = list(ctx.db.scalars(_select(query, after).limit(min(batch, left))))
        yield from rows
        if len(rows) < min(batch, left):
            return
        left -= len(rows)
        after = Cursor(rows[-1].at, rows[-1].id)
        for row in rows:  # keep the session's memory to one batch
            ctx.db.expunge(row)


def _column(name: str):
    return AuditEvent.client_addr if name == "address" else getattr(AuditEvent, name)


def _select(query: AuditQuery, after: Cursor | None):
    e = AuditEvent
    conditions = [_column(name) == value for name in FIELDS
                  if (value := getattr(query, name))]
    if query.since is not None:
        conditions.append(e.at >= query.since)
    if query.until is not None:
        conditions.append(e.at < query.until)
    if after is not None:
        conditions.append(or_(e.at < after.at, and_(e.at == after.at, e.id < after.id)))
    return select(e).where(*conditions).order_by(e.at.desc(), e.id.desc())


# --- what the doors pass in --------------------------------------------------------------------

def query_from(fields: Mapping[str, str], now: datetime, *, zone: tzinfo = UTC) -> AuditQuery:
    """A query from text fields (a form, query parameters, command-line options): `since` and
    `until` as `parse_time` reads them (a time without an offset in `zone`: the console passes
    the university's), the others exact (the username case-folded)."""
    for name in (*FIELDS, "since", "until"):
        if users.NUL in (fields.get(name) or ""):  # PostgreSQL refuses it in a parameter
            raise AuditSearchError(_("%(name)s contains a NUL character", name=name))
    values: dict[str, str] = {}
    for name in FIELDS:
        value = (fields.get(name) or "").strip()
        if len(value) > _WIDTHS[name]:
            raise AuditSearchError(_("%(name)s is too long (at most %(num)s characters)",
                                     name=name, num=_WIDTHS[name]))
        values[name] = value.lower() if name == "username" else value
    since = parse_time(fields.get("since") or "", now, "since", zone=zone)
    until = parse_time(fields.get("until") or "", now, "until", end_of_day=True, zone=zone)
    if since is not None and until is not None and until <= since:
        raise AuditSearchError(_("until must be later than since"))
    return AuditQuery(since=since, until=until, **values)


def parse_time(text: str, now: datetime, name: str = "time", *, end_of_day: bool = False,
               zone: tzinfo = UTC) -> datetime | None:
    """A point in time: empty (none), a span back from now (`30m`, `12h`, `7d`), a date
    (`2026-12-01`: its start, or with `end_of_day` the next day's start, so that `until` takes
    the whole day) or an ISO date and time, both in `zone` (UTC by default) unless the text
    gives an offset; the answer is in UTC."""
    text = text.strip()
    if not text:
        return None
    relative = _RELATIVE.fullmatch(text)
    if relative:
        span = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        if span > timedelta(days=MAX_RELATIVE_DAYS):
            raise AuditSearchError(_("%(name)s: %(text)s is too far back", name=name, text=text))
        return now - span
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            if end_of_day:
                start = datetime.combine(day + timedelta(days=1), start.timetz())
            return start.astimezone(UTC)
        when = datetime.fromisoformat(text)
        return (when.replace(tzinfo=zone) if when.tzinfo is None else when).astimezone(UTC)
    except OverflowError:  # the day after 9999-12-31, or a time zone past either end
        raise AuditSearchError(_(_OUT_OF_RANGE, name=name, text=repr(text))) from None
    except ValueError:
        raise AuditSearchError(
            _("%(name)s: %(text)s is not a date (2026-12-01), a date and time "
              "(2026-12-01T08:00) or a span back from now (30m, 12h, 7d)",
              name=name, text=repr(text))) from None


def page_size(text: str) -> int:
    """A page size from text: empty is the default; 1 to MAX_PAGE."""
    text = text.strip()
    if not text:
        return DEFAULT_PAGE
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise AuditSearchError(_("the page size must be a number"))
    size = int(text)
    if not 1 <= size <= MAX_PAGE:
        raise AuditSearchError(_("the page size must be 1 to at most %(num)s", num=MAX_PAGE))
    return size


def parse_cursor(text: str) -> Cursor | None:
    """A cursor as `str(Cursor)` wrote it; empty is none. Its id and time are bounded by what
    the database holds (an id past MAX_ID, a time past year 9999: AuditSearchError)."""
    text = text.strip()
    if not text:
        return None
    invalid = AuditSearchError(_("the cursor is not valid (use next_cursor as given)"))
    match = _CURSOR.fullmatch(text)
    if not match:
        raise invalid
    micros, row_id = int(match.group(1)), int(match.group(2))
    if row_id > MAX_ID:
        raise invalid
    try:
        at = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000)
    except (ValueError, OverflowError, OSError):
        raise invalid from None
    return Cursor(at, row_id)
