"""`um2fa serve`: the web app on waitress, and beside it (a thread with its own event loop) the
push event stream, on the same host and a port of its own."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--push-events-port", default=0, show_default=True,
              type=click.IntRange(0, 65535),
              help="Port of the push event stream on the same host (0: a free one).")
@click.option("--push-events/--no-push-events", default=True, show_default=True,
              help="Run the push event stream (waiting login pages hear answers at once); "
                   "without it they poll every second.")
@with_appcontext
def serve(host, port, threads, push_events_port, push_events) -> None:
    """Run the web app (waitress) and the push event stream."""
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
    if push_events and settings.push_events_url != "off":
        _start_push_events(host, push_events_port)
    click.echo(f"UM 2FA portal on http://{host}:{port}/", err=True)
    # X-Forwarded-For and X-Forwarded-Proto reach the app untouched: it believes them only
    # from UM2FA_TRUSTED_PROXIES (app/web/request_info.py), as under gunicorn. Waitress would
    # otherwise drop them (its trusted_proxy is one address, not the networks we allow), and
    # behind a proxy everyone would look like the proxy, and no cookie would be Secure.
    waitress_serve(current_app._get_current_object(), host=host, port=port, threads=threads,
                   ident="um2fa", clear_untrusted_proxy_headers=False)


def _start_push_events(host: str, port: int) -> None:
    """The push event stream on a thread; the app links its pages to it (app/web/push_stream.py)
    and tells it itself of the answers it takes (with or without Redis)."""
    from app.extensions import core
    from app.push_wait.events import InThread, LocalAnnouncer, PushEventServer
    from app.web.push_stream import SERVE_PORT

    app = current_app._get_current_object()
    services = core.services(app)
    server = PushEventServer(services, max_streams=services.settings.push_events_max_streams)
    try:
        bound = InThread(server).start(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port} for the push event "
                                   f"stream: {exc.strerror}") from exc
    services.push_events = LocalAnnouncer(services.push_events, server)
    app.config[SERVE_PORT] = bound
    click.echo(f"push event stream on http://{host}:{bound}/push/events", err=True)
