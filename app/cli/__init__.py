"""`um2fa`: the operators' and help desk's command line (a Flask CLI group).

common.py holds what the command groups share; one module per group: db.py, users.py,
devices.py, recovery.py, demo.py, serve.py, push_events.py, keys.py, and the doors' own in
radius/cli.py and saml/cli.py. groups.py puts them all on the Flask app (create_app calls its
`register`). `um2fa radius` and `um2fa push-events` build their services from the settings
(app/bootstrap.py), without the Flask app.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from app.cli.common import CLI, INPUT_ERRORS, configuration_errors, core_session
from app.cli.groups import register
from app.cli.keys import keys_group
from app.cli.push_events import push_events
from app.config import ConfigError
from radius import cli as radius_cli

__all__ = ["CLI", "INPUT_ERRORS", "cli", "configuration_errors", "core_session", "main",
           "register"]


def _create_app() -> Flask:
    from app import create_app

    with configuration_errors():
        return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def cli() -> None:
    """UM 2FA: two-factor authentication for SSO and VPN."""


def main() -> None:
    # A command of the group itself is found without building the Flask app (FlaskGroup looks
    # in the app only for the others): the RADIUS server needs none.
    cli.add_command(radius_cli.radius_serve)
    cli.add_command(keys_group)  # nor do keys: they are made before anything is configured
    cli.add_command(push_events)  # nor the push event stream
    try:
        cli.main(prog_name="um2fa")
    except ConfigError as exc:
        click.echo(f"Error: configuration: {exc}", err=True)
        sys.exit(2)
