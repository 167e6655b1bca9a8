"""`um2fa push-events`: the push event stream on its own (asyncio; app/push_wait/events.py).

Production runs one per web node beside gunicorn (deploy/um2fa-push-events.service); the proxy
sends /push/events to it (deploy/nginx.conf). `um2fa serve` runs one itself, on a thread.
"""

from __future__ import annotations

import logging

import click

from app.cli.common import configuration_errors

LOG_LEVELS = ("debug", "info", "warning", "error")


@click.command("push-events")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the proxy in front is the only client).")
@click.option("--port", default=8010, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port; 0 picks a free one (logged at start).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
def push_events(host, port, log_level) -> None:
    """Run the push event stream: login pages waiting for a push hear its answer at once."""
    import asyncio
    import signal

    from app import migrate
    from app.bootstrap import build_services
    from app.config import load_settings
    from app.logging_setup import configure
    from app.push_wait.events import PushEventServer, allow_many_files, serve_forever

    with configuration_errors():  # no Flask app: the services straight from the settings
        settings = load_settings()
        services = build_services(settings)
    configure(settings.log_format, level=getattr(logging, log_level.upper()))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if migrate.current(settings.database_url) != migrate.heads():
        raise click.ClickException("the database schema is not current: run `um2fa db upgrade`")
    allow_many_files(settings.push_events_max_streams + 256)
    server = PushEventServer(services, max_streams=settings.push_events_max_streams)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(server, host, port, stop)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
