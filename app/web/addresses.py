"""Network addresses as the web door sees them: the client behind trusted proxies, campus
or not, inside a list of networks (the metrics allow-list, trusted proxies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from app.config import Network


def _parse(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def in_networks(addr: str, networks: Iterable[Network]) -> bool:
    ip = _parse(addr)
    return ip is not None and any(ip in net for net in networks)


def client_address(remote_addr: str, forwarded_for: str | None,
                   trusted_proxies: Iterable[Network]) -> str:
    """The client's address: X-Forwarded-For counts only when the hop that added it is trusted.

    Walks the chain from the nearest hop outwards and stops at the first untrusted address.
    """
    trusted = tuple(trusted_proxies)
    addr = remote_addr
    if not forwarded_for or not in_networks(addr, trusted):
        return addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if _parse(hop) is None:
            break
        addr = hop
        if not in_networks(hop, trusted):
            break
    return addr


def is_campus(addr: str, campus_networks: Iterable[Network]) -> bool:
    return in_networks(addr, campus_networks)
