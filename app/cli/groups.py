"""Every `um2fa` command group on the Flask app's command line: create_app calls `register`.

The doors' own groups are in radius/cli.py and saml/cli.py. They are imported as modules and
their commands looked up when `register` runs, so that importing radius.cli or saml.cli first
(they import app/cli/common.py, which runs this package's __init__) works too."""

from __future__ import annotations

import click
from flask import Flask

from app.cli import (
    admins,
    audit,
    db,
    demo,
    devices,
    keys,
    push,
    push_events,
    recovery,
    serve,
    users,
)
from radius import cli as radius_cli
from saml import cli as saml_cli


def commands() -> list[click.Command]:
    return [db.db_group, users.users_group, devices.devices_group, recovery.recovery_group,
            demo.demo_group, keys.keys_group, serve.serve, push_events.push_events,
            radius_cli.radius_clients_group, radius_cli.radius_serve, saml_cli.sp_group,
            saml_cli.saml_group,
            admins.admins_group, admins.api_tokens_group, audit.audit_group, push.push_group]


def register(app: Flask) -> None:
    for command in commands():
        app.cli.add_command(command)
