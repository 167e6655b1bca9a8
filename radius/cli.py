"""`um2fa radius` (the server) and `um2fa radius-clients` (the NAS list)."""

from __future__ import annotations

import logging
import sys

import click
from flask.cli import with_appcontext

from app.cli.common import CLI, configuration_errors, core_session
from app.core import radius_clients
from radius import DEFAULT_MAX_IN_FLIGHT

LOG_LEVELS = ("debug", "info", "warning", "error")
STDIN = "-"


@click.group("radius-clients", help="VPN concentrators (NAS) allowed to use the RADIUS server.")
def radius_clients_group() -> None: ...


@radius_clients_group.command("add")
@click.argument("name")
@click.option("--address", required=True,
              help="The NAS's source address or network in CIDR form, e.g. 10.0.0.5 or "
                   "10.0.0.0/24. The most specific network wins.")
@click.option("--secret", default=None,
              help="Shared secret, 16-128 printable characters; '-' reads it from standard "
                   "input. Left out: a random one is generated and printed.")
@click.option("--mode", type=click.Choice(radius_clients.MODES), default="append",
              show_default=True,
              help="append: password,passcode. challenge: password, then a prompt. "
                   "second-factor: the NAS checks the password, we get the passcode.")
@click.option("--delimiter", default=",", show_default=True,
              help="Between the password and the passcode in append mode.")
@click.option("--require-message-authenticator/--allow-missing-message-authenticator",
              default=True, show_default=True,
              help="Drop Access-Requests without Message-Authenticator (BlastRADIUS). Relax "
                   "only for a NAS that cannot send it.")
@click.option("--fail-mode", type=click.Choice(radius_clients.FAIL_MODES), default="secure",
              show_default=True,
              help="When the database is unreachable: secure rejects; safe accepts a correct "
                   "password alone (needs a directory outside the database, e.g. LDAP).")
@click.option("--push-timeout", type=int, default=radius_clients.DEFAULT_PUSH_TIMEOUT,
              show_default=True,
              help="Seconds to wait for a push answer; keep it below the NAS's RADIUS "
                   "timeout.")
@click.option("--language", default=None, metavar="LANG",
              help="The language of its Reply-Messages (one of UM2FA_LANGUAGES, e.g. en, "
                   "zh_Hant, pt). Left out: UM2FA_DEFAULT_LANGUAGE.")
@with_appcontext
def clients_add(name, address, secret, mode, delimiter, require_message_authenticator,
                fail_mode, push_timeout, language) -> None:
    """Allow the NAS NAME to send Access-Requests."""
    generated = secret is None
    if secret == STDIN:
        secret = sys.stdin.readline().strip()
    if generated:
        secret = radius_clients.generate_secret()
    with core_session() as ctx:
        try:
            client = radius_clients.add(
                ctx, CLI, name, address, secret, mode=mode, delimiter=delimiter,
                require_message_authenticator=require_message_authenticator,
                fail_mode=fail_mode, push_timeout=push_timeout, language=language)
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"added RADIUS client {client.name} for {client.network} ({client.mode} mode)")
    if generated:
        click.echo(f"shared secret: {secret}")
    if not require_message_authenticator:
        click.echo("warning: this client may omit Message-Authenticator and is exposed to "
                   "BlastRADIUS (CVE-2024-3596)", err=True)


@radius_clients_group.command("list")
@with_appcontext
def clients_list() -> None:
    """The clients by name (secrets are not shown)."""
    with core_session() as ctx:
        clients = radius_clients.list_all(ctx)
    if not clients:
        click.echo("no RADIUS clients (add one with `um2fa radius-clients add`)", err=True)
    for c in clients:
        ma = "required" if c.require_message_authenticator else "optional"
        click.echo(f"{c.name}\t{c.network}\t{c.mode}\tdelimiter {c.delimiter}\t"
                   f"Message-Authenticator {ma}\tfail mode {c.fail_mode}\t"
                   f"push timeout {c.push_timeout}s\tlanguage {c.language or 'default'}")


@radius_clients_group.command("set-language")
@click.argument("name")
@click.argument("language")
@with_appcontext
def clients_set_language(name, language) -> None:
    """The language of the NAS NAME's Reply-Messages: one of UM2FA_LANGUAGES, or "default"
    (UM2FA_DEFAULT_LANGUAGE). A running server notices within its refresh interval."""
    chosen = None if language == "default" else language
    with core_session() as ctx:
        try:
            radius_clients.set_language(ctx, CLI, name, chosen)
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"RADIUS client {name} answers in {chosen or 'the default language'}")


@radius_clients_group.command("remove")
@click.argument("name")
@with_appcontext
def clients_remove(name) -> None:
    """Stop accepting packets from the NAS NAME (a running server notices within its refresh
    interval)."""
    with core_session() as ctx:
        try:
            radius_clients.remove(ctx, CLI, name)
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed RADIUS client {name}")


@click.command("radius")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 or :: for every interface).")
@click.option("--port", default=1812, show_default=True, type=click.IntRange(0, 65535),
              help="UDP port; 0 picks a free one (logged at start).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Worker threads for decisions that verify a password (argon2). Passcode-only "
                   "decisions (second-factor mode, challenge answers) run in batches on one "
                   "decision thread.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (SO_REUSEPORT, Linux); a NAS's "
                   "retransmissions keep reaching the same process. Worth it with PostgreSQL "
                   "and spare cores; see docs/radius.md.")
@click.option("--max-in-flight", default=DEFAULT_MAX_IN_FLIGHT, show_default=True,
              type=click.IntRange(1, 100000),
              help="Requests being decided at once, per process; more are dropped (the NAS "
                   "retransmits). About the server's rate times one second.")
@click.option("--refresh", default=30.0, show_default=True, type=click.FloatRange(1, 3600),
              help="Seconds between reloads of the client list.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve /metrics and /healthz over HTTP on this port (with --processes N, "
                   "each process takes the first free one of PORT..PORT+N-1).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def radius_serve(host, port, threads, processes, max_in_flight, refresh, log_level,
                 metrics_port, metrics_host) -> None:
    """Run the RADIUS server (PAP Access-Requests from the VPN)."""
    import asyncio

    from app import migrate, shared_keys
    from app.bootstrap import build_services
    from app.config import load_settings
    from app.logging_setup import configure
    from radius import processes as multi
    from radius.server import RadiusServer, serve

    with configuration_errors():  # no Flask app: the services straight from the settings
        settings = load_settings()
        shared_keys.require(settings, shared_keys.RADIUS)  # the VAPID key: VPN pushes wake phones
        services = build_services(settings)
    configure(settings.log_format, level=getattr(logging, log_level.upper()))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    metrics_at = (metrics_host, metrics_port, processes) if metrics_port else None
    if migrate.current(settings.database_url) != migrate.heads():
        raise click.ClickException("the database schema is not current: run `um2fa db upgrade`")
    turns = multi.write_turns(settings.database_url) if processes > 1 else None

    def serve_one(port: int, listening=None) -> None:
        if processes > 1:
            services.db.engine.dispose(close=False)  # a forked child opens its own connections
        try:
            server = RadiusServer(services, host=host, port=port, threads=threads,
                                  max_in_flight=max_in_flight, refresh_seconds=refresh,
                                  reuse_port=processes > 1, batch_lock=turns)
        except ValueError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc
        try:
            asyncio.run(serve(server, listening, metrics_at))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") \
                from exc

    if processes == 1:
        serve_one(port)
        return
    try:
        status = multi.run(serve_one, port, processes)
    except OSError as exc:
        raise click.ClickException(f"--processes: {exc}") from exc
    if status:
        raise SystemExit(status)
