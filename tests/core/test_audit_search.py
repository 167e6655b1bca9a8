"""Audit search (issue 15): filters, newest first, keyset pages, the CSV iterator's bound, and
the time expressions every door accepts (app/core/audit_search.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core import audit_search
from app.core.audit_search import AuditQuery, AuditSearchError
from app.models import AuditEvent

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def add_events(ctx, count: int, **fields) -> None:
    """`count` records a minute apart from T0 on (one second apart within a minute's worth)."""
    for i in range(count):
        values = {"username": "alice", "door": "portal", "action": "sign_in", "result": "ok",
                  "client_addr": "10.0.0.1", **fields}
        ctx.db.add(AuditEvent(at=T0 + timedelta(minutes=i), **values))
    ctx.db.flush()


def test_filters_each_narrow_the_result(ctx):
    add_events(ctx, 3)
    add_events(ctx, 2, username="bob", door="radius", action="radius.access", result="reject",
               client_addr="10.0.0.2", actor="")
    add_events(ctx, 1, username="bob", door="admin", action="user.unlock", actor="carol")
    search = lambda **f: audit_search.page(ctx, AuditQuery(**f)).rows  # noqa: E731
    assert len(search()) == 6
    assert {r.username for r in search(username="bob")} == {"bob"}
    assert [r.door for r in search(door="radius")] == ["radius", "radius"]
    assert len(search(action="radius.access", result="reject")) == 2
    assert len(search(address="10.0.0.2")) == 2
    assert [r.action for r in search(actor="carol")] == ["user.unlock"]
    # since <= at < until
    assert len(search(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2))) == 2


def test_newest_first_and_keyset_pages_cover_every_row_once(ctx):
    add_events(ctx, 7)
    add_events(ctx, 3)  # the same times again: ties on `at` are broken by id
    seen, cursor = [], None
    for _ in range(10):
        found = audit_search.page(ctx, AuditQuery(), size=3, after=cursor)
        seen.extend(found.rows)
        cursor = found.next_cursor
        if cursor is None:
            break
    assert len(seen) == 10 and len({r.id for r in seen}) == 10
    keys = [(r.at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=True)


def test_the_cursor_survives_a_round_trip_and_a_bad_one_is_refused(ctx):
    add_events(ctx, 3)
    first = audit_search.page(ctx, AuditQuery(), size=2)
    assert first.next_cursor and len(first.rows) == 2
    rest = audit_search.page(ctx, AuditQuery(), size=2,
                             after=audit_search.parse_cursor(str(first.next_cursor)))
    assert len(rest.rows) == 1 and rest.next_cursor is None
    for bad in ("x", "1-", "-1", "12.5-3", "1" * 40 + "-1"):
        with pytest.raises(AuditSearchError):
            audit_search.parse_cursor(bad)


def test_a_cursor_beyond_what_the_database_holds_is_refused():
    """An id past PostgreSQL's integer, or a time past year 9999, is a bad cursor (a 400), not
    a database error (a 500)."""
    assert audit_search.parse_cursor(f"1-{2**31 - 1}").id == 2**31 - 1
    for bad in ("1-9999999999", f"1-{2**31}", "1-" + "9" * 19, "9" * 20 + "-1",
                f"{253402300800 * 1_000_000}-1"):  # 10000-01-01
        with pytest.raises(AuditSearchError, match="cursor is not valid"):
            audit_search.parse_cursor(bad)


def test_page_size_is_capped(ctx):
    with pytest.raises(AuditSearchError, match="at most"):
        audit_search.page_size("100000")
    for bad in ("ten", "²", "0", "-1"):
        with pytest.raises(AuditSearchError):
            audit_search.page_size(bad)
    assert audit_search.page_size("") == audit_search.DEFAULT_PAGE
    assert audit_search.page_size("5") == 5


def test_everything_streams_newest_first_and_stops_at_its_limit(ctx):
    add_events(ctx, 25)
    every = list(audit_search.everything(ctx, AuditQuery(), limit=100, batch=4))
    assert len(every) == 25 and every[0].at > every[-1].at
    assert len(list(audit_search.everything(ctx, AuditQuery(), limit=10, batch=4))) == 10


def test_query_from_fields_reads_times_and_refuses_bad_ones():
    now = T0
    query = audit_search.query_from({"since": "7d", "until": "2026-12-01", "username": " Alice",
                                     "door": "radius"}, now)
    assert query.since == now - timedelta(days=7)
    assert query.until == datetime(2026, 12, 2, tzinfo=UTC)  # a date means the whole day
    assert query.username == "alice" and query.door == "radius"
    assert audit_search.query_from({"since": "2026-11-30T08:15"}, now).since == datetime(
        2026, 11, 30, 8, 15, tzinfo=UTC)
    for bad in ({"since": "yesterday"}, {"until": "2026-13-01"}, {"since": "99999d"},
                {"since": "2026-12-01", "until": "2026-11-01"}, {"username": "x" * 65},
                {"username": "alice\x00"}, {"door": "\x00"}, {"since": "7d\x00"}):
        with pytest.raises(AuditSearchError):
            audit_search.query_from(bad, now)


@pytest.mark.parametrize("fields", [
    {"until": "9999-12-31"}, {"since": "0001-01-01T00:00+01:00"},
    {"until": "9999-12-31T23:30-01:00"}, {"since": "9999-12-31T23:59:59.999999-00:01"},
])
def test_a_time_past_the_calendars_ends_is_a_clear_error(fields):
    with pytest.raises(AuditSearchError, match="out of range"):
        audit_search.query_from(fields, T0)

