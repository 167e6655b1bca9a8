"""Primary authentication by an upstream RADIUS server (the VPN's existing RADIUS or NPS).

`UpstreamRadiusDirectory` implements app.core.directory's Directory protocol: the password is
sent in a PAP Access-Request to the servers of `upstream_radius_servers`, in order, and the
second factor is then ours as with any directory. It lives here, not in app/core, because it
speaks RADIUS with pyrad; app/bootstrap.py builds it when `directory = "radius"`.

- Every request has a random Identifier and Request Authenticator and a Message-Authenticator
  (first attribute). Every reply must match the request (Identifier, Response Authenticator, no
  Proxy-State we did not send) and carry a valid Message-Authenticator (BlastRADIUS,
  CVE-2024-3596); anything else is ignored, as if it had not arrived.
- Access-Accept: the right password. Access-Reject: wrong. Access-Challenge (the upstream wants
  another step, e.g. its own OTP): not relayed; logged and treated as a wrong password.
- A server that does not answer in `upstream_radius_timeout` seconds after the first send and
  each of `upstream_radius_retries` retransmissions (the same packet again), or whose port is
  closed, is skipped for the next; when none answers, DirectoryUnavailable.
- One UDP socket per check, connected to the server: safe from any number of threads (the
  RADIUS door's workers, the web server's threads) and no reply can reach the wrong check.
- The upstream keeps no user attributes for us: `lookup` returns None, so users must exist in
  our database (`um2fa users add` / import) with no password of ours.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyrad import packet as rp

from app.config import split_host_port
from app.core.directory import DirectoryUnavailable, DirectoryUser
from radius.translate import load_dictionary

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger("um2fa.directory.radius")

DEFAULT_PORT = 1812
MAX_PASSWORD_OCTETS = 128  # RFC 2865 section 5.2
MAX_USERNAME_OCTETS = 253


@dataclass(frozen=True)
class UpstreamServer:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_server(text: str) -> UpstreamServer:
    """`host`, `host:port`, `[v6-address]` or `[v6-address]:port`. Raises ValueError."""
    return UpstreamServer(*split_host_port(text, DEFAULT_PORT))


class UpstreamRadiusDirectory:
    """Checks passwords with PAP against upstream RADIUS servers, in order (failover)."""

    def __init__(self, settings: Settings) -> None:
        self.servers = tuple(parse_server(s) for s in settings.upstream_radius_servers)
        self._secret = settings.upstream_radius_secret.encode()
        self.timeout = float(settings.upstream_radius_timeout)
        self.attempts = 1 + settings.upstream_radius_retries
        self.nas_identifier = settings.upstream_radius_nas_identifier
        self.dictionary = load_dictionary()  # read only after loading: shared by all threads

    def __repr__(self) -> str:
        return f"UpstreamRadiusDirectory({', '.join(map(str, self.servers))})"

    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        """True on Access-Accept, False on Access-Reject or Access-Challenge; raises
        DirectoryUnavailable when no server gives a valid answer. `password_hash` (ours) is
        not used: the upstream holds the password."""
        username = username.strip()
        if (not username or not password or len(username.encode()) > MAX_USERNAME_OCTETS
                or len(password.encode()) > MAX_PASSWORD_OCTETS):
            return False  # nothing PAP can carry (or an unauthenticated empty password)
        for server in self.servers:
            code = self._ask(server, username, password)
            if code == rp.AccessAccept:
                return True
            if code == rp.AccessReject:
                return False
            if code == rp.AccessChallenge:
                log.warning("upstream RADIUS server %s answered Access-Challenge: upstream "
                            "challenges are not relayed, so this sign-in fails", server)
                return False
        raise DirectoryUnavailable("no valid answer from the upstream RADIUS servers ("
                                   + ", ".join(map(str, self.servers)) + ")")

    def lookup(self, username: str) -> DirectoryUser | None:
        return None  # RADIUS says yes or no; the users are rows of ours

    # --- one server -----------------------------------------------------------------------

    def _request(self, username: str, password: str) -> rp.AuthPacket:
        pkt = rp.AuthPacket(code=rp.AccessRequest, id=secrets.randbelow(256),
                            secret=self._secret, authenticator=secrets.token_bytes(16),
                            dict=self.dictionary)
        pkt.add_message_authenticator()
        pkt["User-Name"] = username
        pkt["User-Password"] = pkt.PwCrypt(password)
        pkt["NAS-Identifier"] = self.nas_identifier
        pkt["Service-Type"] = "Authenticate-Only"
        return pkt

    def _ask(self, server: UpstreamServer, username: str, password: str) -> int | None:
        """The code of the first valid reply from `server`, or None (no valid reply)."""
        try:
            family, _type, _proto, _name, addr = socket.getaddrinfo(
                server.host, server.port, type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            log.error("upstream RADIUS server %s: cannot resolve its name (%s)", server,
                      exc.strerror or type(exc).__name__)
            return None
        pkt = self._request(username, password)
        raw = pkt.RequestPacket()
        invalid = 0
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(addr)  # only datagrams from the server's address and port arrive
                for _attempt in range(self.attempts):
                    sock.send(raw)  # a retransmission is the same packet (RFC 5080 2.2.1)
                    code, bad = self._await_reply(sock, pkt)
                    invalid += bad
                    if code is not None:
                        return code
        except OSError as exc:  # port closed (ICMP), no route, ...
            log.error("upstream RADIUS server %s unreachable: %s", server,
                      exc.strerror or type(exc).__name__)
            return None
        if invalid:
            log.error("upstream RADIUS server %s: %d replies failed verification (wrong shared "
                      "secret, no Message-Authenticator, or forged); none accepted", server,
                      invalid)
        else:
            log.error("upstream RADIUS server %s did not answer (%d attempts, %.0f s each)",
                      server, self.attempts, self.timeout)
        return None

    def _await_reply(self, sock: socket.socket, pkt: rp.AuthPacket) -> tuple[int | None, int]:
        """Wait up to the timeout for a valid reply: (its code or None, invalid replies seen)."""
        deadline = time.monotonic() + self.timeout
        invalid = 0
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            if self._valid(pkt, data):
                return data[0], invalid
            invalid += 1
        return None, invalid

    @staticmethod
    def _valid(pkt: rp.AuthPacket, data: bytes) -> bool:
        if len(data) < 20 or data[0] not in (rp.AccessAccept, rp.AccessReject,
                                              rp.AccessChallenge):
            return False
        try:
            reply = pkt.CreateReply(packet=data)
            return bool(pkt.VerifyReply(reply, data, enforce_ma=True))
        except Exception:  # noqa: BLE001 - pyrad raises several kinds on malformed input
            return False
