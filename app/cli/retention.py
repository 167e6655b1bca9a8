"""`purge` for each kind of record kept for a while (`um2fa audit purge`, `um2fa push purge`):
the same options, messages and exit statuses, on app/core/retention.py."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli import progress
from app.cli.common import CLI, core_session
from app.core import retention
from app.core.retention import Kept, RetentionError


def purge_command(kept: Kept, help_text: str) -> click.Command:
    youngest = f"at least {kept.youngest()}"

    @click.command("purge", help=help_text)
    @click.option("--older-than", "older_than", default="", metavar="AGE",
                  help=f"Delete records older than this: 365d, 52w, 36h ({youngest}).")
    @click.option("--before", default="", metavar="DATE",
                  help="Or: delete records before this time, 2025-12-01 or 2025-12-01T08:00 "
                       f"(UTC unless an offset is given; {youngest} ago).")
    @click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
    @click.option("--batch-size", default=retention.BATCH, show_default=True,
                  type=click.IntRange(retention.MIN_BATCH, retention.MAX_BATCH),
                  help="Records deleted per transaction.")
    @with_appcontext
    def purge(older_than: str, before: str, dry_run: bool, batch_size: int) -> None:
        with core_session() as ctx:
            try:
                cutoff = retention.cutoff(kept, ctx.now(), older_than=older_than, before=before)
            except RetentionError as exc:
                raise click.UsageError(str(exc)) from None
            when = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
            if dry_run:
                n = retention.count(ctx, kept, cutoff)
                click.echo(f"would delete {n} {kept.name}(s) before {when} (dry run: nothing "
                           "deleted)")
                return
            done = retention.purge(ctx, CLI, kept, cutoff, batch=batch_size,
                                   progress=progress.terminal())
        click.echo(f"deleted {done.deleted} {kept.name}(s) before {when} in {done.batches} "
                   f"batch(es)")

    return purge
