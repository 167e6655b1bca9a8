"""`um2fa push`: push requests on the command line. `um2fa push purge` deletes the ones older
than a cutoff, a batch at a time (app/core/push/retention.py); run it from cron like
`um2fa audit purge` (docs/operations.md, "Retention")."""

from __future__ import annotations

import click

from app.cli.retention import purge_command
from app.core.push.retention import PUSHES


@click.group("push")
def push_group() -> None:
    """Push requests (one per "Send me a Push"): `um2fa push purge --older-than 90d`."""


push_group.add_command(purge_command(PUSHES, """Delete push requests older than a cutoff
(at least 8 days: the dashboard's fraud reports read the last week), oldest first, BATCH-SIZE per
short transaction, while the service runs. Their outcomes stay in the audit (push.start,
push.answer). The purge is itself audited (push.purge, with the cutoff and the count)."""))
