"""`um2fa serve`: the web app on waitress."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@with_appcontext
def serve(host, port, threads) -> None:
    """Run the web app (waitress)."""
    from waitress import serve as waitress_serve

    from app import migrate, shared_keys
    from app.cli.common import configuration_errors
    from app.logging_setup import configure
    from saml.aggregate_refresh import start_refresher

    settings = current_app.config["UM2FA"]
    configure(settings.log_format)
    # With a shared database a node without the service's keys does not start; on SQLite the
    # IdP's signing key is made now, not on the first sign-in.
    with configuration_errors():
        shared_keys.require(settings, shared_keys.WEB)
    if migrate.current(settings.database_url) != migrate.heads():
        raise click.ClickException("the database schema is not current: run `um2fa db upgrade`")
    # Federations' metadata aggregates are read again when due (each node checks; one fetches).
    start_refresher(current_app._get_current_object())
    click.echo(f"UM 2FA portal on http://{host}:{port}/", err=True)
    # X-Forwarded-For and X-Forwarded-Proto reach the app untouched: it believes them only
    # from UM2FA_TRUSTED_PROXIES (app/web/request_info.py), as under gunicorn. Waitress would
    # otherwise drop them (its trusted_proxy is one address, not the networks we allow), and
    # behind a proxy everyone would look like the proxy, and no cookie would be Secure.
    waitress_serve(current_app._get_current_object(), host=host, port=port, threads=threads,
                   ident="um2fa", clear_untrusted_proxy_headers=False)
