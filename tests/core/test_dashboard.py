"""The dashboard's figures (issue 15) from known rows: sign-ins per hour by door and outcome,
current lockouts, fraud reports, enrolment coverage and devices by kind (app/core/dashboard.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core import dashboard, users
from app.models import AuditEvent, Device, PushRequest
from tests.conftest import add_totp_device, committed, make_user

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)


def audit(ctx, at: datetime, door: str, action: str, result: str) -> None:
    ctx.db.add(AuditEvent(at=at, username="alice", door=door, action=action, result=result))


def test_sign_ins_per_hour_by_door_and_outcome(ctx):
    audit(ctx, NOW - timedelta(minutes=5), "portal", "factor", "ok")  # this hour (10:00)
    audit(ctx, NOW - timedelta(minutes=10), "portal", "factor", "ok")
    audit(ctx, NOW - timedelta(minutes=40), "radius", "radius.access", "reject")  # 09:00
    audit(ctx, NOW - timedelta(hours=23), "sso", "sign_in", "fail")  # 11:00 yesterday
    audit(ctx, NOW - timedelta(hours=25), "sso", "sign_in", "ok")  # before the window
    audit(ctx, NOW - timedelta(minutes=1), "admin", "user.unlock", "ok")  # not a sign-in
    ctx.db.flush()
    figures = dashboard.sign_ins_per_hour(ctx, NOW)
    assert len(figures.hours) == 24
    assert figures.hours[-1] == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert figures.hours[0] == datetime(2026, 12, 5, 11, tzinfo=UTC)
    assert figures.series[("portal", "ok")][-1] == 2
    assert figures.series[("radius", "reject")][-2] == 1
    assert figures.series[("sso", "fail")][0] == 1
    assert ("sso", "ok") not in figures.series
    assert figures.totals == [1] + [0] * 21 + [1, 2]
    assert sum(figures.totals) == 4


def test_current_lockouts_count_locks_that_hold_and_disabled_users(app):
    for name in ("ann", "ben", "cat", "dan"):
        make_user(app, name)
    with committed(app) as c:
        users.get(c, "ann").locked_at = NOW - timedelta(minutes=5)
        users.get(c, "ann").locked_until = NOW + timedelta(minutes=10)  # holds
        users.get(c, "ben").locked_at = NOW - timedelta(hours=2)
        users.get(c, "ben").locked_until = NOW - timedelta(hours=1)  # lifted
        users.get(c, "cat").disabled = True
    with committed(app) as c:
        found = dashboard.lockouts(c, NOW)
    assert (found.locked, found.disabled) == (1, 1)
    assert found.usernames == ["ann", "cat"]


def test_fraud_reports_in_the_last_day_and_week(app):
    make_user(app)
    device_id, _ = add_totp_device(app)
    with committed(app) as c:
        user_id = users.get(c, "alice").id
        for n, (status, ago) in enumerate([("fraud", timedelta(hours=2)),
                                           ("fraud", timedelta(days=3)),
                                           ("fraud", timedelta(days=9)),
                                           ("denied", timedelta(hours=1))]):
            c.db.add(PushRequest(public_id=f"p{n}", user_id=user_id, device_id=device_id,
                                 status=status, door="portal", created_at=NOW - ago,
                                 expires_at=NOW - ago + timedelta(seconds=60),
                                 answered_at=NOW - ago + timedelta(seconds=5)))
    with committed(app) as c:
        found = dashboard.fraud_reports(c, NOW)
    assert (found.last_day, found.last_week) == (1, 2)


def test_enrolment_coverage_and_devices_by_kind(app):
    for name in ("ann", "ben", "cat", "dan"):
        make_user(app, name)
    add_totp_device(app, "ann", "One")
    add_totp_device(app, "ann", "Two")
    add_totp_device(app, "ben")
    with committed(app) as c:
        ben = users.get(c, "ben")
        c.db.add(Device(user_id=ben.id, name="Companion", kind="push", secret_enc=b"x",
                        active=True))
        c.db.add(Device(user_id=users.get(c, "cat").id, name="Never activated", kind="push",
                        secret_enc=b"x", active=False))
    with committed(app) as c:
        for device in c.db.query(Device).filter(Device.kind == "totp"):
            device.active = True
    with committed(app) as c:
        coverage = dashboard.coverage(c)
        kinds = dashboard.devices_by_kind(c)
    assert (coverage.enrolled, coverage.users) == (2, 4)
    assert coverage.percent == 50.0
    assert kinds == {"push": 1, "totp": 3}


def test_the_whole_dashboard_on_an_empty_database(app):
    with committed(app) as c:
        figures = dashboard.figures(c, NOW)
    assert sum(figures.sign_ins.totals) == 0 and figures.sign_ins.series == {}
    assert figures.coverage.percent == 0.0 and figures.devices_by_kind == {}
