"""`um2fa demo …`: demo data for trying the service."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.common import CLI, core_session


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
