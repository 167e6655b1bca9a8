"""The NAS behind a RADIUS proxy client (FreeRADIUS in front of several VPN concentrators): a
policy per NAS - its mode, fail mode, push timeout and Reply-Message language - recognised by
the proxied request's NAS-Identifier (exactly) and/or NAS-IP-Address (a network). A setting a
policy leaves out is the proxy client's. Which policy a request gets is
`ClientConfig.for_nas` (app/core/radius_clients.py), on policies loaded with the clients.

Both attributes are only as trustworthy as the proxy: a NAS writes what it likes in them. The
FreeRADIUS configuration of docs/radius.md overwrites NAS-IP-Address with the packet's real
source, so a network is a safe way to recognise a NAS; NAS-Identifier is not overwritten, so a
policy matched by it alone can be claimed by any NAS behind the proxy (`claimable`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.core import audit
from app.core.context import Context, Origin
from app.core.radius_clients import (
    FAIL_MODES,
    MODES,
    NAME_RE,
    PUSH_TIMEOUT_RANGE,
    RadiusClientError,
    effective,
    find,
    parse_address,
)
from app.i18n import _
from app.models import RadiusClient, RadiusNasPolicy

NAS_IDENTIFIER_MAX = 64  # what the RADIUS door reads of a NAS-Identifier


@dataclass(frozen=True)
class NewPolicy:
    """A NAS policy to add: how the NAS is recognised (one or both) and the settings that
    differ from the proxy's (None: the proxy's)."""

    name: str
    nas_identifier: str | None = None
    nas_address: str | None = None
    mode: str | None = None
    fail_mode: str | None = None
    push_timeout: int | None = None
    language: str | None = None


def _proxy(ctx: Context, client_name: str) -> RadiusClient:
    client = find(ctx, client_name)
    if client is None:
        raise RadiusClientError(_("no RADIUS client named %(name)s", name=client_name))
    if not client.proxy:
        raise RadiusClientError(_("%(name)s is not a RADIUS proxy: only a proxy has NAS "
                                  "policies", name=client_name))
    return client


def _identifier(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > NAS_IDENTIFIER_MAX or not value.isprintable() or value != value.strip():
        raise RadiusClientError(_("the NAS-Identifier must be 1-%(most)s printable characters "
                                  "without spaces around them", most=NAS_IDENTIFIER_MAX))
    return value


def _check(ctx: Context, new: NewPolicy) -> None:
    if not NAME_RE.fullmatch(new.name):
        raise RadiusClientError(_("NAS policy name %(name)s must be 1-64 letters, digits, "
                                  "'.', '-', '_'", name=repr(new.name)))
    if new.mode is not None and new.mode not in MODES:
        raise RadiusClientError(_("mode must be one of %(choices)s", choices=", ".join(MODES)))
    if new.fail_mode is not None and new.fail_mode not in FAIL_MODES:
        raise RadiusClientError(_("fail mode must be one of %(choices)s",
                                  choices=", ".join(FAIL_MODES)))
    low, high = PUSH_TIMEOUT_RANGE
    if new.push_timeout is not None and not low <= new.push_timeout <= high:
        raise RadiusClientError(_("the push timeout must be %(low)s to %(high)s seconds",
                                  low=low, high=high))
    if new.language is not None and new.language not in ctx.settings.languages:
        raise RadiusClientError(_("the language must be one of %(choices)s",
                                  choices=", ".join(ctx.settings.languages)))


def add(ctx: Context, origin: Origin, client_name: str, new: NewPolicy) -> RadiusNasPolicy:
    """A policy for one NAS behind the proxy `client_name`. Two policies of a proxy cannot
    recognise the same NAS-Identifier and network, so the choice is always deterministic."""
    client = _proxy(ctx, client_name)
    _check(ctx, new)
    identifier = _identifier(new.nas_identifier)
    network = str(parse_address(new.nas_address)) if new.nas_address else None
    if identifier is None and network is None:
        raise RadiusClientError(_("a NAS policy needs a NAS-Identifier, a NAS-IP-Address "
                                  "network, or both"))
    for other in policies_of(ctx, client):
        if other.name == new.name:
            raise RadiusClientError(_("%(proxy)s already has a NAS policy named %(name)s",
                                      proxy=client_name, name=new.name))
        if (other.nas_identifier, other.nas_network) == (identifier, network):
            raise RadiusClientError(_("the NAS policy %(name)s already matches these NAS",
                                      name=other.name))
    row = RadiusNasPolicy(client_id=client.id, name=new.name, nas_identifier=identifier,
                          nas_network=network, mode=new.mode, fail_mode=new.fail_mode,
                          push_timeout=new.push_timeout, language=new.language,
                          created_at=ctx.now())
    ctx.db.add(row)
    ctx.db.flush()
    audit.record(ctx, origin, "radius_client.nas_add", "ok",
                 detail=f"{client_name}/nas {new.name}: {describe(row)}")
    return row


def describe(row: RadiusNasPolicy) -> str:
    """What a policy matches and sets, for the audit and the command line (English)."""
    parts = []
    if row.nas_identifier is not None:
        parts.append(f"NAS-Identifier {row.nas_identifier}")
    if row.nas_network is not None:
        parts.append(f"NAS-IP-Address {row.nas_network}")
    for label, value in (("mode", row.mode), ("fail mode", row.fail_mode),
                         ("push timeout", f"{row.push_timeout}s" if row.push_timeout else None),
                         ("language", row.language)):
        if value is not None:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def remove(ctx: Context, origin: Origin, client_name: str, name: str) -> None:
    client = find(ctx, client_name)
    row = None if client is None else ctx.db.scalar(select(RadiusNasPolicy).where(
        RadiusNasPolicy.client_id == client.id, RadiusNasPolicy.name == name))
    if row is None:
        raise RadiusClientError(_("%(proxy)s has no NAS policy named %(name)s",
                                  proxy=client_name, name=name))
    ctx.db.delete(row)
    ctx.db.flush()
    audit.record(ctx, origin, "radius_client.nas_remove", "ok",
                 detail=f"{client_name}/nas {name}")


def policies_of(ctx: Context, client: RadiusClient) -> list[RadiusNasPolicy]:
    return list(ctx.db.scalars(select(RadiusNasPolicy)
                               .where(RadiusNasPolicy.client_id == client.id)
                               .order_by(RadiusNasPolicy.name)))


def by_client(ctx: Context) -> dict[int, list[RadiusNasPolicy]]:
    """Every client's NAS policies by client id (one query), by name."""
    found: dict[int, list[RadiusNasPolicy]] = {}
    for row in ctx.db.scalars(select(RadiusNasPolicy).order_by(RadiusNasPolicy.name)):
        found.setdefault(row.client_id, []).append(row)
    return found


def claimable(client: RadiusClient, row: RadiusNasPolicy) -> bool:
    """Whether any NAS behind the proxy could claim this policy to be checked less than by the
    proxy's own settings: matched by NAS-Identifier alone (which the proxy does not overwrite),
    with second-factor mode (the password left to the NAS) or fail mode safe where the proxy
    has neither."""
    if row.nas_network is not None:
        return False
    settings = effective(client, row)
    return ((settings["mode"] == "second-factor" and client.mode != "second-factor")
            or (settings["fail_mode"] == "safe" and client.fail_mode != "safe"))


def longest_push_timeout(client: RadiusClient, rows: list[RadiusNasPolicy]) -> int:
    return max([client.push_timeout, *(effective(client, row)["push_timeout"] for row in rows)])
