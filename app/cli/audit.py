"""`um2fa audit USER`: a person's audit records on the command line, newest first (the same
search as the console's and the API's: app/core/audit_search.py)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.common import core_session
from app.core import audit_search
from app.core.audit_search import AuditSearchError
from app.models import AuditEvent


@click.command("audit")
@click.argument("username")
@click.option("--since", default="", metavar="WHEN",
              help="From this time: 2026-12-01, 2026-12-01T08:00 (UTC), or back from now: "
                   "30m, 12h, 7d.")
@click.option("--limit", default=50, show_default=True,
              type=click.IntRange(1, audit_search.EXPORT_LIMIT), help="At most this many.")
@with_appcontext
def audit_command(username: str, since: str, limit: int) -> None:
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


def line(row: AuditEvent) -> str:
    at = row.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    cells = (at, row.door, row.action, row.result, row.client_addr, row.device, row.actor,
             row.detail)
    return "\t".join(str(cell or "-").replace("\t", " ").replace("\n", " ") for cell in cells)
