"""How long push requests are kept: `um2fa push purge` deletes the older ones (app/core/
retention.py: bounded batches along the primary key, the purge itself audited as push.purge).

A push request is needed while its login waits (at most UM2FA_PUSH_TIMEOUT, 600 s), by the
metrics until it settles (15 minutes), and by the help desk's dashboard of fraud reports (the
last 7 days); its outcome stays in the audit (`push.start`, `push.answer`). So a purge never
goes younger than 8 days. Ids grow with the time a push starts, so the batches go along the
primary key rather than an index of their own on `created_at`."""

from __future__ import annotations

from datetime import timedelta

from app.core.retention import Kept
from app.models import PushRequest

MIN_AGE = timedelta(days=8)
_P = PushRequest.__table__.c
PUSHES = Kept(table=PushRequest.__table__, time=_P.created_at, order=_P.id, min_age=MIN_AGE,
              name="push request", action="push.purge")
