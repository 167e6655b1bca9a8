"""Prometheus metrics read from the shared database, so that every web worker on every node
reports the same totals (docs/deploy.md, "Metrics").

Nothing here counts in process memory what another process does. Each process keeps a cache
of totals over the *settled* rows (older than a short settle time) and a watermark id; a scrape
adds the settled rows above the watermark (a primary-key range scan of the rows written since
the previous scrape) and counts the unsettled rest afresh. The first scrape in a process reads
the whole history once. Rows only ever get added to these tables, so the totals only grow.

What is counted (documented in docs/deploy.md):
- um2fa_logins_total{door,action,result}: audit_events whose action is a sign-in step or a
  second-factor decision (app/core/audit.py: LOGIN_ACTIONS).
- um2fa_push_answer_seconds: histogram of answered_at - created_at over every answered push,
  cumulative since the database began.
- um2fa_push_requests_total{status}: pushes by final status, counted once final.
- um2fa_push_pending: pushes waiting for an answer now (a gauge).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from app.core.audit import LOGIN_ACTIONS
from app.models import AuditEvent, PushRequest

PUSH_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
# Statuses that never change again; "pending" past its expiry counts as "expired".
FINAL_PUSH = ("used", "denied", "fraud", "mismatch", "expired")
# An audit row is settled once this old (its transaction has long committed).
AUDIT_SETTLE = timedelta(seconds=60)
# A push is settled once no answer or use can change it: the longest push timeout (600 s)
# and a margin. An approved push never used is then counted as "approved".
PUSH_SETTLE = timedelta(seconds=900)


@dataclass
class _Tally:
    """Totals over the rows with id <= mark."""

    mark: int = 0
    counts: Counter = field(default_factory=Counter)


def _observe(counts: Counter, seconds: float) -> None:
    """One latency into per-bucket (non-cumulative) counts, keyed by bucket index (len(PUSH_
    BUCKETS) is +Inf), and the sum."""
    seconds = max(seconds, 0.0)
    index = next((i for i, b in enumerate(PUSH_BUCKETS) if seconds <= b), len(PUSH_BUCKETS))
    counts[("bucket", index)] += 1
    counts["sum"] += seconds


class DatabaseMetrics(Collector):
    """A prometheus_client collector over one database. Thread-safe; one per process."""

    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self.engine, self.now = engine, now
        self._lock = threading.Lock()
        self._logins = _Tally()
        self._pushes = _Tally()

    # --- logins ---------------------------------------------------------------------------

    @staticmethod
    def _login_counts(conn, low: int, high: int | None) -> Counter:
        t = AuditEvent.__table__.c
        query = (select(t.door, t.action, t.result, func.count())
                 .where(t.id > low, t.action.in_(LOGIN_ACTIONS))
                 .group_by(t.door, t.action, t.result))
        if high is not None:
            query = query.where(t.id <= high)
        return Counter({(d, a, r): n for d, a, r, n in conn.execute(query)})

    def _logins_now(self, conn, now: datetime) -> Counter:
        t = AuditEvent.__table__.c
        tally = self._logins
        settled = conn.execute(select(func.max(t.id)).where(
            t.id > tally.mark, t.at <= now - AUDIT_SETTLE)).scalar()
        if settled is not None:
            tally.counts.update(self._login_counts(conn, tally.mark, settled))
            tally.mark = settled
        return tally.counts + self._login_counts(conn, tally.mark, None)

    # --- pushes ---------------------------------------------------------------------------

    @staticmethod
    def _push_counts(conn, low: int, high: int | None, now: datetime) -> Counter:
        """Latency buckets of the answered pushes, and statuses of the final ones (all of them
        when `high` is given: those rows are settled)."""
        t = PushRequest.__table__.c
        query = (select(t.status, t.created_at, t.answered_at, t.expires_at)
                 .where(t.id > low).execution_options(yield_per=5000))
        if high is not None:
            query = query.where(t.id <= high)
        counts: Counter = Counter()
        for status, created, answered, expires in conn.execute(query):
            if answered is not None and created is not None:
                _observe(counts, (_aware(answered) - _aware(created)).total_seconds())
            if status == "pending" and _aware(expires) <= now:
                status = "expired"
            if high is not None or status in FINAL_PUSH:
                counts[("status", status)] += 1
        return counts

    def _pushes_now(self, conn, now: datetime) -> Counter:
        t = PushRequest.__table__.c
        tally = self._pushes
        settled = conn.execute(select(func.max(t.id)).where(
            t.id > tally.mark, t.created_at <= now - PUSH_SETTLE)).scalar()
        if settled is not None:
            tally.counts.update(self._push_counts(conn, tally.mark, settled, now))
            tally.mark = settled
        return tally.counts + self._push_counts(conn, tally.mark, None, now)

    @staticmethod
    def _pending(conn, now: datetime) -> int:
        t = PushRequest.__table__.c
        return conn.execute(select(func.count()).where(
            t.status == "pending", t.expires_at > now)).scalar() or 0

    # --- the collector --------------------------------------------------------------------

    def collect(self) -> Iterator:
        now = self.now()
        with self._lock, self.engine.connect() as conn:
            logins = self._logins_now(conn, now)
            pushes = self._pushes_now(conn, now)
            pending = self._pending(conn, now)
        yield _logins_family(logins)
        yield from _push_families(pushes, pending)


def _logins_family(counts: Counter) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "um2fa_logins", "Sign-in steps and second-factor decisions, from the audit records",
        labels=["door", "action", "result"])
    for (door, action, result), n in sorted(counts.items()):
        family.add_metric([door, action, result], n)
    return family


def _push_families(counts: Counter, pending: int) -> Iterator:
    buckets, total = [], 0
    for index, bound in enumerate((*PUSH_BUCKETS, float("inf"))):
        total += counts[("bucket", index)]
        buckets.append(("+Inf" if bound == float("inf") else str(bound), total))
    yield HistogramMetricFamily(
        "um2fa_push_answer_seconds", "Seconds from sending a push to its answer on the phone",
        buckets=buckets, sum_value=counts["sum"])
    statuses = CounterMetricFamily("um2fa_push_requests", "Pushes by final status",
                                   labels=["status"])
    for key, n in sorted(counts.items(), key=str):
        if isinstance(key, tuple) and key[0] == "status":
            statuses.add_metric([key[1]], n)
    yield statuses
    yield GaugeMetricFamily("um2fa_push_pending", "Pushes waiting for an answer now",
                            value=pending)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def registry_for(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
