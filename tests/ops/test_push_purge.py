"""`um2fa push purge`: push requests older than a cutoff deleted in bounded batches, never younger
than 8 days (the dashboard's fraud reports read the last week), the purge itself audited
(app/core/push/retention.py on app/core/retention.py, shared with `um2fa audit purge`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.core import dashboard, users
from app.models import AuditEvent, PushRequest
from tests.conftest import add_totp_device, committed, make_user


def now(clock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def add_pushes(app, started: list[datetime], status: str = "used") -> None:
    with committed(app) as c:
        alice = users.get(c, "alice")
        device_id = alice.devices[0].id
        known = len(c.db.scalars(select(PushRequest.id)).all())
        for n, at in enumerate(started, start=known):
            c.db.add(PushRequest(public_id=f"p{n}", user_id=alice.id, device_id=device_id,
                                 status=status, door="portal", created_at=at,
                                 expires_at=at + timedelta(seconds=60),
                                 answered_at=at + timedelta(seconds=5)))


def ages(app, clock) -> list[int]:
    with committed(app) as c:
        rows = c.db.scalars(select(PushRequest.created_at).order_by(PushRequest.id))
        return [(now(clock) - at).days for at in rows]


def purge_records(app) -> list[AuditEvent]:
    with committed(app) as c:
        return list(c.db.scalars(select(AuditEvent).where(AuditEvent.action == "push.purge")))


@pytest.fixture
def alice(app) -> None:
    make_user(app)
    add_totp_device(app)


def test_purge_deletes_only_the_older_pushes_in_batches(app, runner, clock, alice):
    t = now(clock)
    add_pushes(app, [t - timedelta(days=200, seconds=i) for i in range(230)])
    add_pushes(app, [t - timedelta(days=91)] * 3)
    add_pushes(app, [t - timedelta(days=89)] * 4)
    add_pushes(app, [t - timedelta(days=3)], status="fraud")
    result = runner.invoke(args=["push", "purge", "--older-than", "90d", "--batch-size", "100"])
    assert result.exit_code == 0, result.output
    assert "deleted 233 push request(s) before" in result.output
    assert "in 3 batch(es)" in result.output
    assert ages(app, clock) == [89] * 4 + [3]
    [own] = purge_records(app)
    cutoff = (t - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (own.door, own.result, own.username) == ("cli", "ok", "")
    assert own.detail == f"before {cutoff}; deleted 233"
    with committed(app) as c:  # what the help desk's dashboard reads is still there
        assert dashboard.fraud_reports(c, t).last_week == 1


def test_a_dry_run_counts_and_deletes_nothing(app, runner, clock, alice):
    add_pushes(app, [now(clock) - timedelta(days=40)] * 6)
    result = runner.invoke(args=["push", "purge", "--older-than", "30d", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 6 push request(s) before" in result.output
    assert len(ages(app, clock)) == 6 and purge_records(app) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--older-than", "7d"], "younger than 8 days"),
    (["--older-than", "1w"], "younger than 8 days"),
    (["--before", "2999-01-01"], "younger than 8 days"),
    (["--older-than", "soon"], "is not an age"),
    ([], "give one of"),
])
def test_a_bad_or_too_recent_cutoff_is_refused(app, runner, clock, alice, args, message):
    add_pushes(app, [now(clock) - timedelta(days=7, hours=12)] * 2)
    result = runner.invoke(args=["push", "purge", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(ages(app, clock)) == 2 and purge_records(app) == []
