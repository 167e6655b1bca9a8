"""RADIUS clients (VPN concentrators): who may send Access-Requests, with which shared secret,
in which login mode. The most specific network that contains a packet's source wins."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from app.config import Network
from app.core import audit
from app.core.context import Context, Origin
from app.i18n import _
from app.models import RadiusClient

MODES = ("append", "challenge", "second-factor")
FAIL_MODES = ("secure", "safe")
DEFAULT_PUSH_TIMEOUT = 60
PUSH_TIMEOUT_RANGE = (5, 300)
SECRET_LENGTH_RANGE = (16, 128)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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
        language: str | None = None) -> RadiusClient:
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
                          created_at=ctx.now())
    ctx.db.add(client)
    ctx.db.flush()
    detail = f"{network} mode={mode} fail_mode={fail_mode}"
    if not require_message_authenticator:
        detail += " message-authenticator not required"
    if language:
        detail += f" language={language}"
    audit.record(ctx, origin, "radius_client.add", "ok", detail=f"{name}: {detail}")
    return client


def find(ctx: Context, name: str) -> RadiusClient | None:
    return ctx.db.scalar(select(RadiusClient).where(RadiusClient.name == name))


def remove(ctx: Context, origin: Origin, name: str) -> None:
    client = find(ctx, name)
    if client is None:
        raise RadiusClientError(_("no RADIUS client named %(name)s", name=name))
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
    """Every client with its secret decrypted, for the RADIUS server's table."""
    return [ClientConfig(name=c.name, network=parse_address(c.network),
                         secret=ctx.keys.decrypt(c.secret_enc), mode=c.mode,
                         delimiter=c.delimiter,
                         require_message_authenticator=c.require_message_authenticator,
                         fail_mode=c.fail_mode, push_timeout=c.push_timeout,
                         language=c.language)
            for c in list_all(ctx)]


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
