"""`um2fa db …`: the database schema (Alembic migrations)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import with_appcontext


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
