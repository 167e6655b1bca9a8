"""What every `um2fa` command group shares (app/cli/*.py, radius/cli.py, saml/cli.py): the
origin of the command line's actions, the input errors that end a command with a one-line
message, a core session, and configuration errors as a one-line message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from app.config import ConfigError
from app.core import devices as core_devices
from app.core import helpdesk, support
from app.core import users as core_users
from app.core.context import Context, Origin
from app.extensions import core

CLI = Origin(door="cli", client_addr="local")
INPUT_ERRORS = (core_users.UserError, core_devices.DeviceError, ConfigError,
                helpdesk.HelpdeskError, support.NotFound)


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


@contextmanager
def configuration_errors() -> Iterator[None]:
    """A bad configuration (a ConfigError while loading the settings or building what they
    describe) ends the command with `Error: configuration: …` and exit status 1."""
    try:
        yield
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
