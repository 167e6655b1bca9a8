"""`um2fa admins …` and `um2fa api-tokens …`: who may use the help-desk console and the API."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.common import CLI, core_session
from app.core import admins, api_tokens


@click.group("admins", help="People who may use the help-desk console (/admin/).")
def admins_group() -> None: ...


@admins_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(admins.ROLES), required=True,
              help="helpdesk: find people, unlock, remove devices, issue recovery passcodes; "
                   "admin: also accounts, RADIUS clients, SPs, admins, tokens, audit, dashboard.")
@with_appcontext
def admins_add(username, role) -> None:
    with core_session() as ctx:
        try:
            row = admins.add(ctx, CLI, username, role)
        except admins.AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{row.username} is now {role}")


@admins_group.command("list")
@with_appcontext
def admins_list() -> None:
    with core_session() as ctx:
        for row in admins.all_admins(ctx):
            click.echo(f"{row.username}\t{row.role}")


@admins_group.command("remove")
@click.argument("username")
@with_appcontext
def admins_remove(username) -> None:
    with core_session() as ctx:
        try:
            admins.remove(ctx, CLI, username)
        except admins.AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {username}")


@click.group("api-tokens", help="Bearer tokens for the admin API (/api/v1/).")
def api_tokens_group() -> None: ...


@api_tokens_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(admins.ROLES), required=True)
@with_appcontext
def api_tokens_add(name, role) -> None:
    """Make a token; it is printed once and only its keyed hash is kept."""
    with core_session() as ctx:
        try:
            token = api_tokens.add(ctx, CLI, name, role)
        except admins.AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(token)


@api_tokens_group.command("list")
@with_appcontext
def api_tokens_list() -> None:
    with core_session() as ctx:
        for row in api_tokens.all_tokens(ctx):
            used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
            click.echo(f"{row.name}\t{row.role}\tlast used {used}")


@api_tokens_group.command("remove")
@click.argument("name")
@with_appcontext
def api_tokens_remove(name) -> None:
    with core_session() as ctx:
        try:
            api_tokens.remove(ctx, CLI, name)
        except admins.AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {name}")
