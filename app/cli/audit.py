"""`um2fa audit`: the audit on the command line.

`um2fa audit USER` (or `um2fa audit show USER`): a person's audit records, newest first (the
same search as the console's and the API's: app/core/audit_search.py). `um2fa audit purge`:
records older than a cutoff deleted, a batch at a time (app/core/audit_retention.py). A first
argument that names no subcommand is a username, so `um2fa audit USER` works as it always did;
a user called `purge` or `show` is `um2fa audit show purge`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.common import core_session
from app.cli.retention import purge_command
from app.core import audit_retention, audit_search
from app.core.audit_search import AuditSearchError
from app.models import AuditEvent

SHOW = "show"


class _AuditGroup(click.Group):
    """A group whose first argument, when it names no subcommand, is `show`'s username."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [SHOW, *args]
        return super().parse_args(ctx, args)


@click.group("audit", cls=_AuditGroup)
def audit_group() -> None:
    """The audit: `um2fa audit USERNAME [--since] [--limit]` lists USERNAME's records (as
    `um2fa audit show USERNAME`); `um2fa audit purge --older-than 365d` deletes old ones."""


@audit_group.command(SHOW)
@click.argument("username")
@click.option("--since", default="", metavar="WHEN",
              help="From this time: 2026-12-01, 2026-12-01T08:00 (UTC), or back from now: "
                   "30m, 12h, 7d.")
@click.option("--limit", default=50, show_default=True,
              type=click.IntRange(1, audit_search.EXPORT_LIMIT), help="At most this many.")
@with_appcontext
def audit_show(username: str, since: str, limit: int) -> None:
    """USERNAME's audit records, newest first, one a line: time, door, action, outcome,
    address, device, actor, detail (tab-separated)."""
    with core_session() as ctx:
        try:
            query = audit_search.query_from({"username": username, "since": since}, ctx.now())
        except AuditSearchError as exc:
            raise click.BadParameter(str(exc)) from None
        found = 0
        for row in audit_search.everything(ctx, query, limit=limit):
            click.echo(line(row))
            found += 1
    if not found:
        click.echo(f"no audit records for {query.username}"
                   + (f" since {query.since.isoformat()}" if query.since else ""), err=True)


audit_group.add_command(purge_command(audit_retention.AUDIT, """Delete audit records older
than a cutoff (the retention), oldest first, BATCH-SIZE per short transaction: the service keeps
running and writing its records meanwhile. The purge is itself audited (audit.purge, with the
cutoff and the count)."""))


def line(row: AuditEvent) -> str:
    at = row.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    cells = (at, row.door, row.action, row.result, row.client_addr, row.device, row.actor,
             row.detail)
    return "\t".join(str(cell or "-").replace("\t", " ").replace("\n", " ") for cell in cells)
