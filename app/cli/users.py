"""`um2fa users …`: the local directory of users."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import click
from flask.cli import with_appcontext

from app.cli import progress
from app.cli.common import CLI, core_session
from app.core import devices as core_devices
from app.core import lockout as core_lockout
from app.core import user_export, user_import
from app.core import users as core_users
from app.core.spreadsheet import safe_cell

FROM_STDIN = "-"  # --password -


@click.group("users", help="The local directory of users.")
def users_group() -> None: ...


@users_group.command("add")
@click.argument("username")
@click.option("--password", required=True,
              help="UMPASS password (at least 8 characters), or - to read it from one line of "
                   "standard input (kept out of the process list and the shell's history).")
@click.option("--dob", required=True, help="Date of birth, YYYY-MM-DD.")
@click.option("--id-last4", required=True, help="Last 4 characters of the ID/passport number.")
@click.option("--role", default="student", show_default=True,
              type=click.Choice(core_users.ROLES))
@click.option("--name", default="", help="Display name.")
@click.option("--email", default="")
@click.option("--given-name", default="", help="Given name (released to SAML services as "
                                                "givenName).")
@click.option("--surname", default="", help="Surname (released as sn).")
@with_appcontext
def users_add(username, password, dob, id_last4, role, name, email, given_name,
              surname) -> None:
    if password == FROM_STDIN:
        password = _password_from_stdin()
    with core_session() as ctx:
        user = core_users.add(ctx, CLI, core_users.NewUser(username, password, dob, id_last4,
                                                           role, name, email, given_name,
                                                           surname))
    click.echo(f"added {user.username}")


def _password_from_stdin() -> str:
    """One line of standard input without its line ending (not echoed: it may be a pipe)."""
    line = sys.stdin.readline()
    if not line.strip("\r\n"):
        raise click.ClickException("--password -: no password on standard input (one line)")
    return line.rstrip("\r\n")


@users_group.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes that hash plain passwords (default: every core).")
@with_appcontext
def users_import(csv_file, workers) -> None:
    """Add users from CSV, all or none. Header line: username,dob,id_last4,role,name,email and
    password or password_hash (argon2id, bcrypt, PBKDF2, SHA-crypt or salted SHA as exported
    by a directory; replaced by argon2id at the first sign-in); given_name, surname optional.
    With UM2FA_DIRECTORY=ldap (or radius) the rows carry no password."""
    with core_session() as ctx:
        done = user_import.import_csv(ctx, CLI, csv_file, progress=progress.terminal(),
                                      workers=workers)
    how = [f"{done.hashed} password(s) hashed"] if done.hashed else []
    how += [f"{n} {kind} hash(es) kept until the first sign-in"
            for kind, n in sorted(done.kept.items())]
    how += [f"{done.without_password} checked by the directory"] if done.without_password else []
    click.echo(f"imported {done.added} user(s)" + (f": {', '.join(how)}" if how else ""))


@users_group.command("export")
@click.argument("out", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@with_appcontext
def users_export(out) -> None:
    """Every user as CSV for the help desk (to OUT, or - for standard output): username, name,
    given_name, surname, email, role, state, locked_until, created, devices, device_kinds.
    No password, hash or device secret. A file gets a UTF-8 byte order mark (spreadsheets then
    read Chinese and Portuguese names right); standard output does not."""
    with core_session() as ctx, _open(out) as stream:
        writer = csv.writer(stream)
        writer.writerow(user_export.COLUMNS)
        written = 0
        with progress.terminal()("exporting", user_export.count(ctx)) as phase:
            for row in user_export.rows(ctx):
                writer.writerow([safe_cell(cell) for cell in row])
                written += 1
                if written % 1000 == 0:
                    phase.update(1000)
            phase.update(written % 1000)
        ctx.db.rollback()  # read only
    if out != "-":
        click.echo(f"exported {written} user(s) to {out}", err=True)


@contextmanager
def _open(out: str) -> Iterator[IO[str]]:
    if out == "-":
        yield sys.stdout
        return
    try:
        stream = open(out, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from exc
    with stream:
        yield stream


@users_group.command("list")
@with_appcontext
def users_list() -> None:
    from sqlalchemy import select

    from app.models import User

    with core_session() as ctx:
        for user in ctx.db.scalars(select(User).order_by(User.username)):
            until = core_lockout.locked_until(user, ctx.now())
            state = ("disabled" if user.disabled else "active" if until is None else
                     "locked out" if until.year == 9999 else
                     f"locked out until {until:%Y-%m-%d %H:%M} UTC")
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
