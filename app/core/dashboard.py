"""The administrators' dashboard (issue 15): a few figures, each one SQL query (GROUP BY), on
SQLite and PostgreSQL alike. The console draws them (app/web/admin/dashboard_pages.py), the API
returns them (app/web/api/audit_api.py).

- sign-ins per hour for the last 24 hours by door and outcome: audit records whose action is a
  sign-in step or second-factor decision (`audit.LOGIN_ACTIONS`, what /metrics counts too);
- current lockouts: users a lock holds now or an administrator disabled (`lockout.locked_now`);
- fraud reports: pushes the person reported as fraud, answered in the last day and week;
- enrolment coverage: users with at least one active device, of all users; devices by kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, and_, case, distinct, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from app.core import lockout
from app.core.audit import LOGIN_ACTIONS
from app.core.context import Context
from app.models import AuditEvent, Device, PushRequest, User

HOURS = 24
LISTED_LOCKOUTS = 50  # the most locked usernames listed (the counts are exact)


class epoch_hour(FunctionElement):  # noqa: N801 - an SQL function's name
    """The hour since the epoch (UTC) that a timestamp column falls in, as an integer."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_hour)
def _epoch_hour(element, compiler, **kw):
    column = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 3600) AS BIGINT)"


@compiles(epoch_hour, "sqlite")
def _epoch_hour_sqlite(element, compiler, **kw):
    # SQLite keeps UTC times as text; strftime('%s') reads them as UTC.
    column = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"


@dataclass(frozen=True)
class SignIns:
    """Counts per hour (oldest first; `hours` are the hours' starts) for each (door, outcome)."""

    hours: list[datetime]
    series: dict[tuple[str, str], list[int]]

    @property
    def totals(self) -> list[int]:
        return [sum(counts[i] for counts in self.series.values()) for i in range(len(self.hours))]


@dataclass(frozen=True)
class Lockouts:
    locked: int  # by failed second factors, not lifted yet
    disabled: int  # by an administrator
    usernames: list[str]  # the first LISTED_LOCKOUTS of both, by name


@dataclass(frozen=True)
class FraudReports:
    last_day: int
    last_week: int


@dataclass(frozen=True)
class Coverage:
    users: int
    enrolled: int  # with at least one active device

    @property
    def percent(self) -> float:
        return round(100.0 * self.enrolled / self.users, 1) if self.users else 0.0


@dataclass(frozen=True)
class Figures:
    at: datetime
    sign_ins: SignIns
    lockouts: Lockouts
    fraud: FraudReports
    coverage: Coverage
    devices_by_kind: dict[str, int]


def figures(ctx: Context, now: datetime | None = None) -> Figures:
    now = now or ctx.now()
    return Figures(at=now, sign_ins=sign_ins_per_hour(ctx, now), lockouts=lockouts(ctx, now),
                   fraud=fraud_reports(ctx, now), coverage=coverage(ctx),
                   devices_by_kind=devices_by_kind(ctx))


def sign_ins_per_hour(ctx: Context, now: datetime) -> SignIns:
    """The last HOURS hours, the current one last."""
    current = int(now.timestamp()) // 3600
    first = current - HOURS + 1
    start = datetime.fromtimestamp(first * 3600, UTC)
    e = AuditEvent
    hour = epoch_hour(e.at)
    rows = ctx.db.execute(
        select(hour, e.door, e.result, func.count())
        .where(e.at >= start, e.at <= now, e.action.in_(LOGIN_ACTIONS))
        .group_by(hour, e.door, e.result))
    series: dict[tuple[str, str], list[int]] = {}
    for bucket, door, result, count in rows:
        index = int(bucket) - first
        if 0 <= index < HOURS:
            series.setdefault((door, result), [0] * HOURS)[index] += count
    hours = [start + timedelta(hours=i) for i in range(HOURS)]
    return SignIns(hours, dict(sorted(series.items())))


def lockouts(ctx: Context, now: datetime) -> Lockouts:
    held = lockout.locked_now(now)
    counts = dict(ctx.db.execute(
        select(User.disabled, func.count()).where(held).group_by(User.disabled)).all())
    names = list(ctx.db.scalars(
        select(User.username).where(held).order_by(User.username).limit(LISTED_LOCKOUTS)))
    return Lockouts(locked=counts.get(False, 0), disabled=counts.get(True, 0), usernames=names)


def fraud_reports(ctx: Context, now: datetime) -> FraudReports:
    p = PushRequest
    day = now - timedelta(days=1)
    last_day, last_week = ctx.db.execute(
        select(func.coalesce(func.sum(case((p.answered_at >= day, 1), else_=0)), 0),
               func.count())
        .where(p.status == "fraud", p.answered_at >= now - timedelta(days=7),
               p.answered_at <= now)).one()
    return FraudReports(last_day=int(last_day), last_week=int(last_week))


def coverage(ctx: Context) -> Coverage:
    users, enrolled = ctx.db.execute(
        select(func.count(distinct(User.id)), func.count(distinct(Device.user_id)))
        .select_from(User)
        .outerjoin(Device, and_(Device.user_id == User.id, Device.active.is_(True)))).one()
    return Coverage(users=int(users), enrolled=int(enrolled))


def devices_by_kind(ctx: Context) -> dict[str, int]:
    """Active devices by kind (totp, push)."""
    rows = ctx.db.execute(select(Device.kind, func.count())
                          .where(Device.active.is_(True)).group_by(Device.kind).order_by(
                              Device.kind))
    return {kind: int(count) for kind, count in rows}
