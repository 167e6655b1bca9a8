"""Audit retention: `um2fa audit purge` deletes audit records older than a cutoff
(app/core/retention.py: bounded batches along the `at` index, the purge itself audited).

The audit is the security record, so the cutoff is never closer than `MIN_AGE` to now."""

from __future__ import annotations

from datetime import timedelta

from app.core.retention import Kept
from app.models import AuditEvent

MIN_AGE = timedelta(days=1)
_E = AuditEvent.__table__.c
AUDIT = Kept(table=AuditEvent.__table__, time=_E.at, order=_E.at, min_age=MIN_AGE,
             name="audit record", action="audit.purge")
