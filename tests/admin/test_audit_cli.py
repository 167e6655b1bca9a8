"""`um2fa audit USER [--since] [--limit]` (issue 15): one line per record, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import AuditEvent
from tests.conftest import committed


def add_events(app) -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with committed(app) as c:
        for i, (user, action) in enumerate([("alice", "sign_in"), ("bob", "sign_in"),
                                            ("alice", "factor"), ("alice", "user.unlock")]):
            c.db.add(AuditEvent(at=start + timedelta(days=i), username=user, door="portal",
                                action=action, result="ok", client_addr="10.0.0.9",
                                actor="carol" if action == "user.unlock" else "",
                                detail="reason: called\tthe desk"))


def test_a_users_records_newest_first(app, runner):
    add_events(app)
    result = runner.invoke(args=["audit", "Alice"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["user.unlock", "factor", "sign_in"]
    assert lines[0].split("\t") == ["2026-12-04T08:00:00Z", "portal", "user.unlock", "ok",
                                    "10.0.0.9", "-", "carol", "reason: called the desk"]


def test_since_and_limit(app, runner):
    add_events(app)
    since = runner.invoke(args=["audit", "alice", "--since", "2026-12-03"])
    assert [line.split("\t")[2] for line in since.output.splitlines()] == ["user.unlock",
                                                                          "factor"]
    limited = runner.invoke(args=["audit", "alice", "--limit", "1"])
    assert len(limited.output.splitlines()) == 1


def test_a_bad_since_is_a_clear_message_and_nothing_found_says_so(app, runner):
    bad = runner.invoke(args=["audit", "alice", "--since", "last week"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
    assert "Traceback" not in bad.output
    early = runner.invoke(args=["audit", "alice", "--since", "0001-01-01T00:00+01:00"])
    assert early.exit_code == 2 and "out of range" in early.output
    assert "Traceback" not in early.output
    none = runner.invoke(args=["audit", "nobody", "--since", "7d"])
    assert none.exit_code == 0 and "no audit records for nobody since" in none.output
