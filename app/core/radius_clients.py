"""RADIUS clients (VPN concentrators): who may send Access-Requests, with which shared secret,
in which login mode. The most specific network that contains a packet's source wins.

A client marked `proxy` is a RADIUS proxy (FreeRADIUS) in front of several NAS: each proxied
request gets the policy of its NAS (`ClientConfig.for_nas`, the NAS policies of
app/core/radius_nas_policies.py), chosen by the request's NAS-Identifier and NAS-IP-Address,
which are only as trustworthy as the proxy (docs/radius.md, "Behind a FreeRADIUS proxy")."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from app.config import Network
from app.core import audit
from app.core.context import Context, Origin
from app.i18n import _
from app.models import RadiusClient, RadiusNasPolicy

MODES = ("append", "challenge", "second-factor")
FAIL_MODES = ("secure", "safe")
DEFAULT_PUSH_TIMEOUT = 60
PUSH_TIMEOUT_RANGE = (5, 300)
SECRET_LENGTH_RANGE = (16, 128)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# How long FreeRADIUS 3.2, as a proxy, waits for its home server's answer: the home_server's
# response_window, 20 s unless configured (and max_request_time, 30 s, ends the request), at
# most 60 s (FreeRADIUS caps response_window at 60 s and at max_request_time).
STOCK_PROXY_WAIT = 20
PROXY_WAIT_CAP = 60
# The longest push timeout behind a proxy: the answer must reach it within its wait.
PROXY_PUSH_TIMEOUT_MAX = PROXY_WAIT_CAP - 5


class ProxyWait(enum.Enum):
    """Whether a push timeout fits in what a FreeRADIUS proxy waits (doors word it)."""

    FITS = "fits"  # within a stock proxy's response_window
    NEEDS_CONFIGURED_PROXY = "needs a configured proxy"  # response_window and max_request_time
    TOO_LONG = "too long"  # longer than any FreeRADIUS proxy waits


def proxy_wait(push_timeout: int) -> ProxyWait:
    if push_timeout > PROXY_PUSH_TIMEOUT_MAX:
        return ProxyWait.TOO_LONG
    if push_timeout > STOCK_PROXY_WAIT - 2:  # the answer needs a moment to come back
        return ProxyWait.NEEDS_CONFIGURED_PROXY
    return ProxyWait.FITS


class RadiusClientError(ValueError):
    """Bad input for a RADIUS client operation; the message is safe to show."""


@dataclass(frozen=True)
class ClientConfig:
    """A client as the RADIUS door and the access decisions need it (secret decrypted)."""

    name: str
    network: Network
    secret: bytes = field(repr=False)
    mode: str = "append"
    delimiter: str = ","
    require_message_authenticator: bool = True
    fail_mode: str = "secure"
    push_timeout: int = DEFAULT_PUSH_TIMEOUT
    language: str | None = None  # its Reply-Messages' language; None: the default language
    proxy: bool = False
    # a proxy's NAS policies, most specific first (see `for_nas`)
    policies: tuple[NasPolicy, ...] = field(default=(), repr=False)
    nas_policy: str = ""  # the NAS policy this configuration is (for a request behind a proxy)

    @property
    def label(self) -> str:
        """The client as the audit, the challenge State and the phone name it: the client, or
        "proxy/nas policy" for a NAS behind a proxy that has a policy of its own."""
        return f"{self.name}/nas {self.nas_policy}" if self.nas_policy else self.name

    @property
    def longest_push_timeout(self) -> int:
        return max([self.push_timeout, *(p.config.push_timeout for p in self.policies)])

    def for_nas(self, nas_identifier: str, nas_ip: str) -> ClientConfig:
        """The configuration a request uses: for a proxy, the policy of the NAS it was proxied
        for - the NAS-Identifier's (a policy that also names a network matches only a
        NAS-IP-Address inside it), else the most specific network that holds the
        NAS-IP-Address - or the proxy's own settings when none matches. Any other client is
        itself. No database: the policies were loaded with the clients."""
        if not self.policies:
            return self
        ip = _address(nas_ip) if nas_ip else None
        for policy in self.policies:  # most specific first: the first match wins
            if policy.matches(nas_identifier, ip):
                return policy.config
        return self


@dataclass(frozen=True)
class NasPolicy:
    """One NAS behind a proxy client: how it is recognised and the configuration its requests
    use (the proxy's, with the policy's settings)."""

    name: str
    nas_identifier: str | None
    network: Network | None
    config: ClientConfig = field(repr=False)

    def matches(self, nas_identifier: str,
                ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        if self.nas_identifier is not None and self.nas_identifier != nas_identifier:
            return False
        if self.network is None:
            return True
        return ip is not None and ip.version == self.network.version and ip in self.network

    @property
    def rank(self) -> tuple:
        """Sort key, most specific first: NAS-Identifier policies (those that also name a
        network first, the longest prefix first), then networks alone by prefix length."""
        prefix = self.network.prefixlen if self.network is not None else -1
        return (self.nas_identifier is None, -prefix, self.name)


def generate_secret() -> str:
    return secrets.token_urlsafe(24)


def parse_address(value: str) -> Network:
    """A CIDR (or a single address, taken as /32 or /128); host bits are cleared."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise RadiusClientError(_("not an address or network in CIDR form: %(value)s",
                                  value=repr(value))) from exc
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped:
        mapped = net.network_address.ipv4_mapped
        net = ipaddress.ip_network(f"{mapped}/{max(net.prefixlen - 96, 0)}", strict=False)
    return net


def _validate(name: str, secret: str, mode: str, delimiter: str, fail_mode: str,
              push_timeout: int) -> None:
    if not NAME_RE.fullmatch(name):
        raise RadiusClientError(_("client name %(name)s must be 1-64 letters, digits, '.', '-', "
                                  "'_'", name=repr(name)))
    low, high = SECRET_LENGTH_RANGE
    if not low <= len(secret) <= high:
        raise RadiusClientError(_("the shared secret must have %(low)s to %(high)s characters",
                                  low=low, high=high))
    if not all(33 <= ord(c) <= 126 for c in secret):
        raise RadiusClientError(_("the shared secret must be printable ASCII without spaces"))
    if mode not in MODES:
        raise RadiusClientError(_("mode must be one of %(choices)s", choices=", ".join(MODES)))
    if fail_mode not in FAIL_MODES:
        raise RadiusClientError(_("fail mode must be one of %(choices)s",
                                  choices=", ".join(FAIL_MODES)))
    if not 1 <= len(delimiter) <= 4 or any(c.isalnum() or c.isspace() or not c.isprintable()
                                           for c in delimiter):
        raise RadiusClientError(_("the delimiter must be 1-4 printable characters that are not "
                                  "letters, digits or spaces"))
    low, high = PUSH_TIMEOUT_RANGE
    if not low <= push_timeout <= high:
        raise RadiusClientError(_("the push timeout must be %(low)s to %(high)s seconds",
                                  low=low, high=high))


def add(ctx: Context, origin: Origin, name: str, address: str, secret: str, *,
        mode: str = "append", delimiter: str = ",", require_message_authenticator: bool = True,
        fail_mode: str = "secure", push_timeout: int = DEFAULT_PUSH_TIMEOUT,
        language: str | None = None, proxy: bool = False) -> RadiusClient:
    network = parse_address(address)
    _validate(name, secret, mode, delimiter, fail_mode, push_timeout)
    _check_language(ctx, language)
    if find(ctx, name) is not None:
        raise RadiusClientError(_("a RADIUS client named %(name)s already exists", name=name))
    clash = ctx.db.scalar(select(RadiusClient).where(RadiusClient.network == str(network)))
    if clash is not None:
        raise RadiusClientError(_("client %(name)s already has the address %(network)s",
                                  name=clash.name, network=str(network)))
    client = RadiusClient(name=name, network=str(network),
                          secret_enc=ctx.keys.encrypt(secret.encode()), mode=mode,
                          delimiter=delimiter,
                          require_message_authenticator=require_message_authenticator,
                          fail_mode=fail_mode, push_timeout=push_timeout, language=language,
                          proxy=proxy, created_at=ctx.now())
    ctx.db.add(client)
    ctx.db.flush()
    detail = f"{network} mode={mode} fail_mode={fail_mode}"
    if not require_message_authenticator:
        detail += " message-authenticator not required"
    if language:
        detail += f" language={language}"
    if proxy:
        detail += " proxy"
    audit.record(ctx, origin, "radius_client.add", "ok", detail=f"{name}: {detail}")
    return client


def find(ctx: Context, name: str) -> RadiusClient | None:
    return ctx.db.scalar(select(RadiusClient).where(RadiusClient.name == name))


def remove(ctx: Context, origin: Origin, name: str) -> None:
    client = find(ctx, name)
    if client is None:
        raise RadiusClientError(_("no RADIUS client named %(name)s", name=name))
    ctx.db.execute(delete(RadiusNasPolicy).where(RadiusNasPolicy.client_id == client.id))
    ctx.db.delete(client)
    audit.record(ctx, origin, "radius_client.remove", "ok", detail=name)


def set_mode(ctx: Context, origin: Origin, name: str, mode: str) -> RadiusClient:
    """Change how the client's logins are read (append, challenge, second-factor)."""
    if mode not in MODES:
        raise RadiusClientError(_("mode must be one of %(choices)s", choices=", ".join(MODES)))
    client = find(ctx, name)
    if client is None:
        raise RadiusClientError(_("no RADIUS client named %(name)s", name=name))
    before, client.mode = client.mode, mode
    ctx.db.flush()
    audit.record(ctx, origin, "radius_client.mode", "ok", detail=f"{name}: {before} -> {mode}")
    return client


def set_proxy(ctx: Context, origin: Origin, name: str, proxy: bool) -> RadiusClient:
    """Mark the client as a RADIUS proxy (its NAS policies apply) or not (it has none left)."""
    client = find(ctx, name)
    if client is None:
        raise RadiusClientError(_("no RADIUS client named %(name)s", name=name))
    if not proxy and ctx.db.scalar(select(RadiusNasPolicy.id).where(
            RadiusNasPolicy.client_id == client.id).limit(1)) is not None:
        raise RadiusClientError(_("%(name)s has NAS policies: remove them first", name=name))
    before, client.proxy = client.proxy, proxy
    ctx.db.flush()
    audit.record(ctx, origin, "radius_client.proxy", "ok",
                 detail=f"{name}: {'proxy' if before else 'not a proxy'} -> "
                        f"{'proxy' if proxy else 'not a proxy'}")
    return client


def _check_language(ctx: Context, language: str | None) -> None:
    if language is not None and language not in ctx.settings.languages:
        raise RadiusClientError(_("the language must be one of %(choices)s",
                                  choices=", ".join(ctx.settings.languages)))


def set_language(ctx: Context, origin: Origin, name: str, language: str | None) -> RadiusClient:
    """The language of the client's Reply-Messages (None: UM2FA_DEFAULT_LANGUAGE)."""
    _check_language(ctx, language)
    client = find(ctx, name)
    if client is None:
        raise RadiusClientError(_("no RADIUS client named %(name)s", name=name))
    before, client.language = client.language, language
    ctx.db.flush()
    audit.record(ctx, origin, "radius_client.language", "ok",
                 detail=f"{name}: {before or 'default'} -> {language or 'default'}")
    return client


def list_all(ctx: Context) -> list[RadiusClient]:
    return list(ctx.db.scalars(select(RadiusClient).order_by(RadiusClient.name)))


def load(ctx: Context) -> list[ClientConfig]:
    """Every client with its secret decrypted, for the RADIUS server's table; a proxy's NAS
    policies with it (two queries in all: a packet never queries for its policy)."""
    policies: dict[int, list[RadiusNasPolicy]] = {}
    for row in ctx.db.scalars(select(RadiusNasPolicy).order_by(RadiusNasPolicy.id)):
        policies.setdefault(row.client_id, []).append(row)
    configs = []
    for c in list_all(ctx):
        config = ClientConfig(name=c.name, network=parse_address(c.network),
                              secret=ctx.keys.decrypt(c.secret_enc), mode=c.mode,
                              delimiter=c.delimiter,
                              require_message_authenticator=c.require_message_authenticator,
                              fail_mode=c.fail_mode, push_timeout=c.push_timeout,
                              language=c.language, proxy=c.proxy)
        if c.proxy and c.id in policies:
            config = with_policies(config, policies[c.id])
        configs.append(config)
    return configs


def effective(client: RadiusClient | ClientConfig, row: RadiusNasPolicy) -> dict:
    """A NAS policy's settings: its own, or the proxy client's where it has none."""
    return {"mode": row.mode or client.mode, "fail_mode": row.fail_mode or client.fail_mode,
            "push_timeout": row.push_timeout or client.push_timeout,
            "language": row.language or client.language}


def with_policies(proxy: ClientConfig, rows: Iterable[RadiusNasPolicy]) -> ClientConfig:
    made = [NasPolicy(name=row.name, nas_identifier=row.nas_identifier,
                      network=parse_address(row.nas_network) if row.nas_network else None,
                      config=dataclasses.replace(proxy, nas_policy=row.name,
                                                 **effective(proxy, row)))
            for row in rows]
    return dataclasses.replace(proxy, policies=tuple(sorted(made, key=lambda p: p.rank)))


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


class ClientTable:
    """Finds the client for a source address: the longest matching prefix wins. Networks are
    unique, so at most one client has a given prefix and the answer is deterministic."""

    def __init__(self, clients: Iterable[ClientConfig]) -> None:
        self.clients = sorted(clients, key=lambda c: (-c.network.prefixlen, c.name))

    def __len__(self) -> int:
        return len(self.clients)

    def match(self, address: str) -> ClientConfig | None:
        ip = _address(address)
        if ip is None:
            return None
        return next((c for c in self.clients
                     if c.network.version == ip.version and ip in c.network), None)
