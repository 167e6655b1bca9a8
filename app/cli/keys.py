"""`um2fa keys …`: strong keys for UM2FA_SECRET_KEY and UM2FA_ENCRYPTION_KEY.

Runs without the Flask app, the settings or a database (app/cli/__init__.py main adds it to
the group itself), so an operator can make keys before anything else is configured."""

from __future__ import annotations

import secrets

import click


@click.group("keys", help="Keys for UM2FA_SECRET_KEY and UM2FA_ENCRYPTION_KEY.")
def keys_group() -> None: ...


@keys_group.command("generate")
def keys_generate() -> None:
    """Print a new random key (32 bytes, URL-safe base64: 43 characters)."""
    click.echo(secrets.token_urlsafe(32))
