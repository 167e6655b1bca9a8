"""RADIUS decisions through core, without the UDP server (the RADIUS tests)."""

from __future__ import annotations

import ipaddress

from app.core import radius_auth
from app.core.radius_auth import AccessRequest
from app.core.radius_clients import ClientConfig
from tests.conftest import PASSWORD, committed

NET = ipaddress.ip_network("127.0.0.1/32")


def client(mode: str = "append", **fields) -> ClientConfig:
    return ClientConfig(name=fields.pop("name", "vpn"), network=fields.pop("network", NET),
                        secret=b"s" * 16, mode=mode, **fields)


def decide(app, typed: str | None, *, username: str = "alice", state: bytes | None = None,
           cfg: ClientConfig | None = None,
           calling_station: str = "203.0.113.9") -> radius_auth.Decision:
    req = AccessRequest(client=cfg or client(), source="127.0.0.1", username=username,
                        password=typed, state=state, nas_ip="10.1.2.3",
                        calling_station=calling_station)
    with committed(app) as c:
        return radius_auth.authenticate(c, req)


class DirectoryOutsideTheDatabase:
    """A directory that answers without our database, as LDAP will: one user, one password."""

    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        return username == "alice" and password == PASSWORD

