"""`um2fa`: the operators' and help desk's command line (a Flask CLI group)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from app.config import ConfigError
from app.core import devices as core_devices
from app.core import recovery as core_recovery
from app.core import users as core_users
from app.core.context import Context, Origin
from app.extensions import core

CLI = Origin(door="cli", client_addr="local")
INPUT_ERRORS = (core_users.UserError, core_devices.DeviceError, ConfigError)


@contextmanager
def core_session() -> Iterator[Context]:
    """A core Context whose work commits at the end, or not at all on an input error."""
    ctx = core.context()
    try:
        yield ctx
        ctx.db.commit()
    except INPUT_ERRORS as exc:
        ctx.db.rollback()
        raise click.ClickException(str(exc)) from exc


def _create_app() -> Flask:
    from app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def cli() -> None:
    """UM 2FA: two-factor authentication for SSO and VPN."""


def register(app: Flask) -> None:
    for group in (db_group, users_group, devices_group, recovery_group, demo_group):
        app.cli.add_command(group)
    app.cli.add_command(serve)
    from radius.cli import radius_clients_group, radius_serve

    app.cli.add_command(radius_clients_group)
    app.cli.add_command(radius_serve)
    from saml.cli import saml_group, sp_group

    app.cli.add_command(sp_group)
    app.cli.add_command(saml_group)


def main() -> None:
    try:
        cli.main(prog_name="um2fa")
    except ConfigError as exc:
        click.echo(f"Error: configuration: {exc}", err=True)
        sys.exit(2)


# --- db -------------------------------------------------------------------------------------

@click.group("db", help="Database schema (Alembic migrations).")
def db_group() -> None: ...


LOCK_TIMEOUT = click.option(
    "--lock-timeout", default=5.0, show_default=True, type=click.FloatRange(min=0),
    help="PostgreSQL: seconds a migration may wait for a table lock before it gives up and "
         "rolls back (0: wait for ever). While it waits, the service's queries on that table "
         "wait behind it.")


def _waiting() -> None:
    click.echo("another `um2fa db upgrade` is running on this database: waiting for it",
               err=True)


@contextmanager
def _migration_errors(url: str, lock_timeout: float) -> Iterator[None]:
    """Database errors as one line: a migration that timed out waiting for a lock, or a
    database that cannot be reached."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from app import migrate

    try:
        yield
    except CommandError as exc:  # e.g. an unknown revision
        raise click.ClickException(str(exc)) from None
    except DBAPIError as exc:
        if migrate.is_lock_timeout(exc):
            try:
                now = ", ".join(sorted(migrate.current(url))) or "empty"
            except DBAPIError:
                now = "unknown (the database cannot be read now)"
            raise click.ClickException(
                f"a migration waited more than {lock_timeout:g} s for a table lock held by "
                f"another transaction and was rolled back; the database is at revision {now}. "
                "Retry when that transaction has ended (see pg_stat_activity), or allow a "
                "longer wait with --lock-timeout.") from None
        first_line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        raise click.ClickException(
            f"database error ({exc.orig.__class__.__name__}): {first_line}") from None


@db_group.command("upgrade")
@LOCK_TIMEOUT
@with_appcontext
def db_upgrade(lock_timeout: float) -> None:
    """Apply pending migrations (safe to repeat, and to run on several nodes at once)."""
    from app import migrate

    url = current_app.config["UM2FA"].database_url
    with _migration_errors(url, lock_timeout):
        migrate.upgrade(url, lock_timeout=lock_timeout, on_wait=_waiting)
    click.echo(f"database at revision {', '.join(sorted(migrate.current(url)))}")


@db_group.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@LOCK_TIMEOUT
@click.confirmation_option(prompt="This drops the tables and columns added after that revision, "
                                  "with their data. Go on?")
@with_appcontext
def db_downgrade(revision: str, lock_timeout: float) -> None:
    """Undo migrations down to REVISION (an id such as 0005, or -1 for one step).

    For rolling back a release: stop the nodes running the newer code first."""
    from app import migrate

    url = current_app.config["UM2FA"].database_url
    with _migration_errors(url, lock_timeout):
        migrate.downgrade(url, revision, lock_timeout=lock_timeout, on_wait=_waiting)
    click.echo(f"database at revision {', '.join(sorted(migrate.current(url))) or 'base'}")


# --- users ----------------------------------------------------------------------------------

@click.group("users", help="The local directory of users.")
def users_group() -> None: ...


@users_group.command("add")
@click.argument("username")
@click.option("--password", required=True, help="UMPASS password (at least 8 characters).")
@click.option("--dob", required=True, help="Date of birth, YYYY-MM-DD.")
@click.option("--id-last4", required=True, help="Last 4 characters of the ID/passport number.")
@click.option("--role", default="student", show_default=True,
              type=click.Choice(core_users.ROLES))
@click.option("--name", default="", help="Display name.")
@click.option("--email", default="")
@with_appcontext
def users_add(username, password, dob, id_last4, role, name, email) -> None:
    with core_session() as ctx:
        user = core_users.add(ctx, CLI, core_users.NewUser(username, password, dob, id_last4,
                                                           role, name, email))
    click.echo(f"added {user.username}")


@users_group.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@with_appcontext
def users_import(csv_file) -> None:
    """Add users from CSV with a header line: username,password,dob,id_last4,role,name,email."""
    with core_session() as ctx:
        added = core_users.import_csv(ctx, CLI, csv_file)
    click.echo(f"imported {len(added)} user(s)")


@users_group.command("list")
@with_appcontext
def users_list() -> None:
    from sqlalchemy import select

    from app.models import User

    with core_session() as ctx:
        for user in ctx.db.scalars(select(User).order_by(User.username)):
            state = "disabled" if user.disabled else ("locked out" if user.locked_at else "active")
            active = len(core_devices.active_devices(user))
            click.echo(f"{user.username}\t{user.role}\t{state}\t{active} device(s)\t"
                       f"{user.display_name}")


@users_group.command("lock")
@click.argument("username")
@with_appcontext
def users_lock(username) -> None:
    """Disable an account: no sign-in, no second factor, no recovery."""
    with core_session() as ctx:
        core_users.lock(ctx, CLI, username)
    click.echo(f"locked {username}")


@users_group.command("unlock")
@click.argument("username")
@with_appcontext
def users_unlock(username) -> None:
    """Re-enable an account and clear a second-factor lockout."""
    with core_session() as ctx:
        core_users.unlock(ctx, CLI, username)
    click.echo(f"unlocked {username}")


# --- devices --------------------------------------------------------------------------------

@click.group("devices", help="Second-factor devices.")
def devices_group() -> None: ...


@devices_group.command("list")
@click.argument("username")
@with_appcontext
def devices_list(username) -> None:
    with core_session() as ctx:
        user = core_users.get(ctx, username)
        for d in core_devices.list_for(ctx, user):
            used = d.last_used_at.isoformat(timespec="seconds") if d.last_used_at else "never"
            click.echo(f"{d.id}\t{d.name}\t{d.device_type}/{d.platform}\t"
                       f"{'default' if d.is_default else ''}\tadded "
                       f"{d.created_at.date().isoformat()}\tlast used {used}")


@devices_group.command("add-totp")
@click.argument("username")
@click.option("--name", required=True, help="Device name, e.g. 'Token 1234'.")
@with_appcontext
def devices_add_totp(username, name) -> None:
    """Help-desk enrolment: prints the otpauth URI once, to load into a token or app."""
    with core_session() as ctx:
        user = core_users.get(ctx, username)
        device, _secret = core_devices.add_totp(ctx, CLI, user, name, device_type="token")
        uri = core_devices.provisioning_uri(ctx, user, device)
    click.echo(uri)


@devices_group.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@with_appcontext
def devices_import(csv_file) -> None:
    """Hardware tokens from CSV with a header line: username,name,secret (base32)."""
    with core_session() as ctx:
        added = core_devices.import_csv(ctx, CLI, csv_file)
    click.echo(f"imported {len(added)} token(s)")


# --- recovery -------------------------------------------------------------------------------

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


# --- demo -----------------------------------------------------------------------------------

@click.group("demo", help="Demo data for trying the service.")
def demo_group() -> None: ...


@demo_group.command("seed")
@with_appcontext
def demo_seed() -> None:
    """Add the demo users (idempotent) and print their credentials."""
    from app.demo import seed

    with core_session() as ctx:
        lines = seed(ctx, CLI)
    for line in lines:
        click.echo(line)


# --- serve ----------------------------------------------------------------------------------

@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@with_appcontext
def serve(host, port, threads) -> None:
    """Run the web app (waitress)."""
    from waitress import serve as waitress_serve

    from app import migrate
    from app.logging_setup import configure
    from saml import keys as saml_keys

    settings = current_app.config["UM2FA"]
    configure(settings.log_format)
    if migrate.current(settings.database_url) != migrate.heads():
        raise click.ClickException("the database schema is not current: run `um2fa db upgrade`")
    # The IdP's signing key is made on first start, not on the first sign-in.
    saml_keys.load_all(settings.instance_dir, settings.base_url or "um2fa")
    click.echo(f"UM 2FA portal on http://{host}:{port}/", err=True)
    waitress_serve(current_app._get_current_object(), host=host, port=port, threads=threads,
                   ident="um2fa")
