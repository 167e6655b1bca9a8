"""`um2fa recovery …`: 9-digit recovery passcodes."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.common import CLI, core_session
from app.core import recovery as core_recovery
from app.core import users as core_users


@click.group("recovery", help="9-digit recovery passcodes.")
def recovery_group() -> None: ...


@recovery_group.command("issue")
@click.argument("username")
@with_appcontext
def recovery_issue(username) -> None:
    """Print a new recovery passcode for USERNAME (the previous one stops working)."""
    with core_session() as ctx:
        user = core_users.get(ctx, username)
        if user.disabled:
            raise core_users.UserError(f"user {username} is locked; unlock them first")
        code, row = core_recovery.issue(ctx, CLI, user)
    click.echo(code)
    click.echo(f"expires {row.expires_at.isoformat(timespec='seconds')}, works once", err=True)
