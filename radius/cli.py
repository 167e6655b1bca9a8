"""`um2fa radius` (the server) and `um2fa radius-clients` (the NAS list)."""

from __future__ import annotations

import logging
import sys

import click
from flask.cli import with_appcontext

from app.cli.common import CLI, configuration_errors, core_session
from app.core import radius_clients, radius_nas_policies
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
@click.option("--proxy", is_flag=True, default=False,
              help="A RADIUS proxy (FreeRADIUS) in front of several NAS: each NAS can have a "
                   "policy of its own (`um2fa radius-clients nas add`), chosen by the proxied "
                   "request's NAS-Identifier or NAS-IP-Address. See docs/radius.md.")
@with_appcontext
def clients_add(name, address, secret, mode, delimiter, require_message_authenticator,
                fail_mode, push_timeout, language, proxy) -> None:
    """Allow the NAS (or RADIUS proxy) NAME to send Access-Requests."""
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
                fail_mode=fail_mode, push_timeout=push_timeout, language=language,
                proxy=proxy)
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
    kind = "RADIUS proxy" if proxy else "RADIUS client"
    click.echo(f"added {kind} {client.name} for {client.network} ({client.mode} mode)")
    if generated:
        click.echo(f"shared secret: {secret}")
    if not require_message_authenticator:
        click.echo("warning: this client may omit Message-Authenticator and is exposed to "
                   "BlastRADIUS (CVE-2024-3596)", err=True)
    if proxy:
        _warn_proxy_wait(push_timeout, f"RADIUS proxy {name}")


def _warn_proxy_wait(push_timeout: int, who: str) -> None:
    """What a FreeRADIUS proxy waits for our answer, against the push timeout (the thresholds
    are core's: radius_clients.proxy_wait)."""
    fit = radius_clients.proxy_wait(push_timeout)
    if fit is radius_clients.ProxyWait.TOO_LONG:
        click.echo(f"warning: {who} holds a push login up to {push_timeout} s, but a FreeRADIUS "
                   f"proxy waits at most {radius_clients.PROXY_WAIT_CAP} s for an answer "
                   f"(home_server response_window is capped at {radius_clients.PROXY_WAIT_CAP} "
                   f"s and at max_request_time): give it a push timeout of at most "
                   f"{radius_clients.PROXY_PUSH_TIMEOUT_MAX} s, or push logins the phone "
                   f"approves late are rejected by the proxy (docs/radius.md)", err=True)
    elif fit is radius_clients.ProxyWait.NEEDS_CONFIGURED_PROXY:
        click.echo(f"warning: {who} holds a push login up to {push_timeout} s, longer than a "
                   f"stock FreeRADIUS proxy waits for an answer (home_server response_window "
                   f"{radius_clients.STOCK_PROXY_WAIT} s, radiusd.conf max_request_time 30 s): "
                   f"on the proxy set response_window above {push_timeout} s (at most "
                   f"{radius_clients.PROXY_WAIT_CAP}) and max_request_time to at least "
                   f"response_window (deploy/freeradius/, docs/radius.md), or push logins "
                   f"through it are rejected", err=True)


@radius_clients_group.command("list")
@with_appcontext
def clients_list() -> None:
    """The clients by name (secrets are not shown)."""
    with core_session() as ctx:
        clients = radius_clients.list_all(ctx)
        policies = radius_nas_policies.by_client(ctx)
        listed = [(c, c.proxy, policies.get(c.id, []),
                   {p.name: radius_clients.effective(c, p) for p in policies.get(c.id, [])})
                  for c in clients]
    if not clients:
        click.echo("no RADIUS clients (add one with `um2fa radius-clients add`)", err=True)
    for c, proxy, rows, settings in listed:
        ma = "required" if c.require_message_authenticator else "optional"
        click.echo(f"{c.name}\t{c.network}\t{c.mode}\tdelimiter {c.delimiter}\t"
                   f"Message-Authenticator {ma}\tfail mode {c.fail_mode}\t"
                   f"push timeout {c.push_timeout}s\tlanguage {c.language or 'default'}"
                   + ("\tproxy" if proxy else ""))
        for row in rows:
            click.echo(f"  nas {row.name}\t" + _policy_line(row, settings[row.name]))


def _policy_line(row, settings: dict) -> str:
    matched = " and ".join(filter(None, (
        row.nas_identifier and f"NAS-Identifier {row.nas_identifier}",
        row.nas_network and f"NAS-IP-Address in {row.nas_network}")))
    return (f"{matched}\t{settings['mode']}\tfail mode {settings['fail_mode']}\t"
            f"push timeout {settings['push_timeout']}s\t"
            f"language {settings['language'] or 'default'}")


@radius_clients_group.command("set-proxy")
@click.argument("name")
@click.argument("proxy", type=click.Choice(["on", "off"]))
@with_appcontext
def clients_set_proxy(name, proxy) -> None:
    """Mark the client NAME as a RADIUS proxy in front of several NAS (on), or not (off: it
    must have no NAS policies left). A running server notices within its refresh interval."""
    with core_session() as ctx:
        try:
            client = radius_clients.set_proxy(ctx, CLI, name, proxy == "on")
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
        push_timeout = client.push_timeout
    click.echo(f"RADIUS client {name} is {'a RADIUS proxy' if proxy == 'on' else 'not a proxy'}")
    if proxy == "on":
        _warn_proxy_wait(push_timeout, f"RADIUS proxy {name}")


@radius_clients_group.group("nas", help="The NAS behind a RADIUS proxy client, each with its "
                                        "own policy (docs/radius.md).")
def nas_group() -> None: ...


@nas_group.command("add")
@click.argument("proxy")
@click.argument("name")
@click.option("--nas-identifier", default=None, metavar="TEXT",
              help="The NAS-Identifier the NAS sends (matched exactly). Chosen by the NAS "
                   "itself: with --nas-address too, both must match.")
@click.option("--nas-address", default=None, metavar="CIDR",
              help="The NAS's address or network, matched against the NAS-IP-Address the "
                   "proxy sends (let the proxy overwrite it with the packet's source: "
                   "docs/radius.md). The most specific network wins.")
@click.option("--mode", type=click.Choice(radius_clients.MODES), default=None,
              help="Left out: the proxy's.")
@click.option("--fail-mode", type=click.Choice(radius_clients.FAIL_MODES), default=None,
              help="Left out: the proxy's.")
@click.option("--push-timeout", type=int, default=None,
              help="Seconds to wait for a push answer. Left out: the proxy's.")
@click.option("--language", default=None, metavar="LANG",
              help="The language of its Reply-Messages. Left out: the proxy's.")
@with_appcontext
def nas_add(proxy, name, nas_identifier, nas_address, mode, fail_mode, push_timeout,
            language) -> None:
    """Give the NAS NAME behind the RADIUS proxy PROXY a policy of its own. A request the
    proxy forwards gets the policy whose NAS-Identifier it carries, else the one with the most
    specific network holding its NAS-IP-Address, else the proxy's own settings."""
    new = radius_nas_policies.NewPolicy(name=name, nas_identifier=nas_identifier,
                                        nas_address=nas_address, mode=mode,
                                        fail_mode=fail_mode, push_timeout=push_timeout,
                                        language=language)
    with core_session() as ctx:
        try:
            row = radius_nas_policies.add(ctx, CLI, proxy, new)
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
        client = radius_clients.find(ctx, proxy)
        settings = radius_clients.effective(client, row)
        claimable = radius_nas_policies.claimable(client, row)
        line = _policy_line(row, settings)
    click.echo(f"added NAS policy {proxy}/nas {name}: {line}")
    if claimable:
        click.echo(f"warning: NAS policy {name} is chosen by NAS-Identifier alone, which any "
                   f"NAS behind {proxy} can send, and checks less than the proxy's own "
                   f"settings ({settings['mode']} mode, fail mode {settings['fail_mode']}): add "
                   f"--nas-address with the NAS's address (the proxy overwrites NAS-IP-Address "
                   f"with the packet's source, docs/radius.md)", err=True)
    _warn_proxy_wait(settings["push_timeout"], f"NAS policy {proxy}/nas {name}")


@nas_group.command("list")
@click.argument("proxy", required=False)
@with_appcontext
def nas_list(proxy) -> None:
    """The NAS policies of every RADIUS proxy (or of PROXY), by name."""
    with core_session() as ctx:
        policies = radius_nas_policies.by_client(ctx)
        lines = []
        for client in radius_clients.list_all(ctx):
            if proxy is not None and client.name != proxy:
                continue
            for row in policies.get(client.id, []):
                lines.append(f"{client.name}\t{row.name}\t"
                             + _policy_line(row, radius_clients.effective(client, row)))
        if proxy is not None and radius_clients.find(ctx, proxy) is None:
            raise click.ClickException(f"no RADIUS client named {proxy}")
    if not lines:
        click.echo("no NAS policies (add one with `um2fa radius-clients nas add`)", err=True)
    for line in lines:
        click.echo(line)


@nas_group.command("remove")
@click.argument("proxy")
@click.argument("name")
@with_appcontext
def nas_remove(proxy, name) -> None:
    """Remove the NAS policy NAME of the RADIUS proxy PROXY: that NAS gets the proxy's own
    settings (a running server notices within its refresh interval)."""
    with core_session() as ctx:
        try:
            radius_nas_policies.remove(ctx, CLI, proxy, name)
        except radius_clients.RadiusClientError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed NAS policy {proxy}/nas {name}")


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
