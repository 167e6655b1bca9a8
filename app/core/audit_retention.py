"""Audit retention: `um2fa audit purge` deletes audit records older than a cutoff
(app/core/retention.py: bounded batches along the `at` index, the purge itself audited).

The audit is the security record, so the cutoff is never closer than `MIN_AGE` to now."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core import retention
from app.core.context import Context, Origin
from app.core.progress import Progress, silent
from app.core.retention import BATCH, MAX_BATCH, MIN_BATCH, Purged, RetentionError
from app.models import AuditEvent

__all__ = ["BATCH", "MAX_BATCH", "MIN_BATCH", "Purged", "RetentionError", "count", "cutoff",
           "purge"]

ACTION = "audit.purge"
MIN_AGE = timedelta(days=1)
_E = AuditEvent.__table__.c
AUDIT = retention.Kept(table=AuditEvent.__table__, time=_E.at, order=_E.at, min_age=MIN_AGE,
                       name="audit record", action=ACTION)


def cutoff(now: datetime, *, older_than: str = "", before: str = "") -> datetime:
    return retention.cutoff(AUDIT, now, older_than=older_than, before=before)


def count(ctx: Context, before: datetime) -> int:
    return retention.count(ctx, AUDIT, before)


def purge(ctx: Context, origin: Origin, before: datetime, *, batch: int = BATCH,
          progress: Progress = silent) -> Purged:
    return retention.purge(ctx, origin, AUDIT, before, batch=batch, progress=progress)
