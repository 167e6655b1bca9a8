"""`um2fa audit purge` (issue 18, point 7): audit records older than a cutoff deleted in bounded
batches, never younger than a day, the purge itself audited (app/core/audit_retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.core import audit_retention, retention
from app.core.context import Origin
from app.models import AuditEvent
from tests.conftest import committed


def now(clock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def add_rows(app, at: datetime, n: int, action: str = "sign_in") -> None:
    with committed(app) as c:
        c.db.add_all(AuditEvent(at=at, username=f"u{i % 7}", door="portal", action=action,
                                result="ok", client_addr="10.0.0.9", detail="x" * 60)
                     for i in range(n))


def ages(app, clock) -> list[int]:
    """Each record's age in whole days, oldest first (the purge's own record excluded)."""
    with committed(app) as c:
        rows = c.db.scalars(select(AuditEvent.at).where(AuditEvent.action != "audit.purge")
                            .order_by(AuditEvent.at))
        return [(now(clock) - at).days for at in rows]


def purge_records(app) -> list[AuditEvent]:
    with committed(app) as c:
        return list(c.db.scalars(select(AuditEvent).where(AuditEvent.action == "audit.purge")))


def test_purge_deletes_only_the_older_records_in_batches(app, runner, clock):
    t = now(clock)
    # ties on one time larger than a batch: the batches must not skip or repeat them
    add_rows(app, t - timedelta(days=400), 150)
    add_rows(app, t - timedelta(days=380, hours=5), 120)
    add_rows(app, t - timedelta(days=365, minutes=1), 3)
    add_rows(app, t - timedelta(days=364, hours=23), 4)
    add_rows(app, t - timedelta(days=10), 5)
    result = runner.invoke(args=["audit", "purge", "--older-than", "365d", "--batch-size", "100"])
    assert result.exit_code == 0, result.output
    assert "deleted 273 audit record(s) before" in result.output
    assert "in 3 batch(es)" in result.output
    assert ages(app, clock) == [364] * 4 + [10] * 5
    [own] = purge_records(app)
    cutoff = (t - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (own.door, own.result, own.username) == ("cli", "ok", "")
    assert own.detail == f"before {cutoff}; deleted 273"
    assert own.at == t


def test_before_a_date_and_nothing_to_delete(app, runner, clock):
    t = now(clock)
    add_rows(app, datetime(2020, 1, 1, tzinfo=UTC), 2)
    add_rows(app, t - timedelta(days=2), 1)
    result = runner.invoke(args=["audit", "purge", "--before", "2020-01-02"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 audit record(s) before 2020-01-02T00:00:00Z" in result.output
    again = runner.invoke(args=["audit", "purge", "--before", "2020-01-02T08:00+08:00"])
    assert "deleted 0 audit record(s) before 2020-01-02T00:00:00Z" in again.output
    assert ages(app, clock) == [2]
    assert [r.detail.split(";")[1] for r in purge_records(app)] == [" deleted 2",
                                                                   " deleted 0"]


def test_a_dry_run_counts_and_deletes_nothing(app, runner, clock):
    t = now(clock)
    add_rows(app, t - timedelta(days=100), 6)
    add_rows(app, t - timedelta(days=30), 2)
    result = runner.invoke(args=["audit", "purge", "--older-than", "90d", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 6 audit record(s) before" in result.output
    assert "nothing deleted" in result.output
    assert ages(app, clock) == [100] * 6 + [30] * 2
    assert purge_records(app) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--older-than", "12h"], "younger than 1 day"),
    (["--older-than", "0d"], "younger than 1 day"),
    (["--before", "2999-01-01"], "younger than 1 day"),
    (["--older-than", "1y"], "is not an age"),
    (["--older-than", "-5d"], "is not an age"),
    (["--older-than", "999999w"], "too long"),
    (["--before", "last year"], "is not a date"),
    (["--older-than", "365d", "--before", "2020-01-01"], "give one of"),
    ([], "give one of"),
])
def test_a_bad_or_too_recent_cutoff_is_refused(app, runner, clock, args, message):
    add_rows(app, now(clock) - timedelta(hours=30), 2)
    result = runner.invoke(args=["audit", "purge", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(ages(app, clock)) == 2 and purge_records(app) == []


def test_the_users_records_keep_their_command(app, runner, clock):
    """`um2fa audit USER` is `um2fa audit show USER`; a user called purge is shown by `show`."""
    with committed(app) as c:
        c.db.add(AuditEvent(at=now(clock), username="purge", door="portal", action="sign_in",
                            result="ok"))
    shown = runner.invoke(args=["audit", "show", "purge"])
    assert shown.exit_code == 0 and "\tsign_in\tok\t" in shown.output
    options_first = runner.invoke(args=["audit", "--since", "1d", "purge"])
    assert options_first.exit_code == 0 and "\tsign_in\tok\t" in options_first.output
    nobody = runner.invoke(args=["audit", "--limit", "1", "show"])  # a user called show
    assert nobody.exit_code == 0 and "no audit records for show" in nobody.output


def test_a_purge_stopped_half_way_records_what_it_deleted(app, clock):
    add_rows(app, now(clock) - timedelta(days=50), 250)

    class Stop(Exception):
        pass

    class StopAfterOne:
        def update(self, n_steps: int) -> None:
            raise Stop

    from contextlib import contextmanager

    @contextmanager
    def progress(label: str, total: int):
        assert total == 250
        yield StopAfterOne()

    with committed(app) as c, pytest.raises(Stop):
        retention.purge(c, Origin(door="cli", client_addr="local"), audit_retention.AUDIT,
                        now(clock) - timedelta(days=30), batch=100, progress=progress)
    assert len(ages(app, clock)) == 150
    [own] = purge_records(app)
    assert own.result == "fail" and own.detail.endswith("; deleted 100; stopped")
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(AuditEvent)) == 151
