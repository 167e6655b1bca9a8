"""`um2fa keys generate`: the keys every node of one service shares, made once (on the first
node), or with --print-only one strong key for UM2FA_SECRET_KEY / UM2FA_ENCRYPTION_KEY.

Runs without the Flask app, a database or keys (app/cli/__init__.py main adds it to the group
itself): with a shared database no other command makes keys, and none runs before they exist.
"""

from __future__ import annotations

import secrets

import click

from app.config import keyfiles, read_settings
from app.shared_keys import make_missing

SECTION = 'docs/deploy.md, "3. Shared keys"'


@click.group("keys", help="The keys every node shares (docs/deploy.md, \"3. Shared keys\").")
def keys_group() -> None: ...


@keys_group.command("generate")
@click.option("--print-only", is_flag=True,
              help="Print one new random key (32 bytes, URL-safe base64: 43 characters) for "
                   "UM2FA_SECRET_KEY or UM2FA_ENCRYPTION_KEY, and write nothing.")
def keys_generate(print_only) -> None:
    """Make the keys this node lacks in the instance directory (UM2FA_INSTANCE_DIR):
    secret_key and encryption_key (unless UM2FA_SECRET_KEY / UM2FA_ENCRYPTION_KEY are set),
    the SAML signing and encryption keys (saml/), the VAPID key (vapid_private.pem). A key that
    exists is never overwritten. Then print them in the environment's form
    (UM2FA_SECRET_KEY=...). Run it once, on the first node, and copy the keys to the others
    before they start. Needs no database."""
    if print_only:
        click.echo(secrets.token_urlsafe(32))
        return
    settings = read_settings()
    inst = settings.instance_dir
    result = make_missing(settings)
    if not result.made:
        raise click.ClickException(
            f"every key exists already ({', '.join(result.kept)}, in {inst}): nothing made; a "
            "key is never overwritten")
    for name in keyfiles.NAMES:
        if not getattr(settings, name):
            click.echo(f"UM2FA_{name.upper()}={keyfiles.read_key(inst, name)}")
    click.echo(f"made in {inst}: {', '.join(result.made)}", err=True)
    if result.kept:
        click.echo(f"kept as they were: {', '.join(result.kept)}. If another node of this "
                   "service has keys, the ones just made differ from its: copy its keys here "
                   "instead", err=True)
    click.echo("Copy them to every other node before it starts, or put the UM2FA_ lines above "
               f"in every node's environment and copy saml/ and vapid_private.pem ({SECTION}).",
               err=True)
