"""`um2fa devices …`: second-factor devices (help-desk enrolment, hardware tokens)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.common import CLI, core_session
from app.core import devices as core_devices
from app.core import helpdesk
from app.core import users as core_users


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


@devices_group.command("remove")
@click.argument("username")
@click.argument("device_id", type=click.IntRange(min=1))
@click.option("--reason", default="removed with um2fa devices remove", show_default=True,
              help="Why (it goes into the audit record).")
@with_appcontext
def devices_remove(username, device_id, reason) -> None:
    """Remove a device (the last one too: the person then needs a recovery passcode to add a
    new one); the person is told. `um2fa devices list USER` shows the ids."""
    with core_session() as ctx:
        helpdesk.remove_device(ctx, CLI, username, device_id, reason)
    click.echo(f"removed device {device_id} of {username}")


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
