"""The RADIUS server: pyrad's asyncio server, one UDP socket, core decisions in a bounded pool.

The event loop only decodes, authenticates and answers packets; every core call (database,
argon2, TOTP) runs in a ThreadPoolExecutor, and at most `max_in_flight` requests are being
decided at once (more are dropped and the NAS retransmits).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyrad import packet as rp
from pyrad.server_async import DatagramProtocolServer, ServerAsync, ServerType

from app.core import radius_auth, radius_clients
from app.core.services import CoreServices
from radius import translate
from radius.cache import PENDING, RetransmitCache

log = logging.getLogger("um2fa.radius")

UNKNOWN_WARNINGS = 1024  # distinct unknown sources logged individually, then only counted
DROP_LOG_INTERVAL = 60.0
DROP_LOG_SOURCES = 4096


class AuthProtocol(DatagramProtocolServer):
    """pyrad's datagram protocol, with our own checks: CIDR clients, strict framing, a
    Message-Authenticator policy per client, and a duplicate cache."""

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self.server.receive(self, data, addr)
        except Exception:  # noqa: BLE001 - one bad packet must never stop the server
            self.server.stats["errors"] += 1
            log.exception("unexpected error on a packet from %s", addr[0])


class RadiusServer(ServerAsync):
    def __init__(self, services: CoreServices, *, host: str = "127.0.0.1", port: int = 1812,
                 threads: int = 8, max_in_flight: int = 1024, refresh_seconds: float = 30.0,
                 cache_ttl: float = 30.0) -> None:
        super().__init__(auth_port=port, hosts={}, dictionary=translate.load_dictionary(),
                         logger_name="um2fa.radius", enforce_ma=True)
        self.services = services
        self.host = host
        self.threads = threads
        self.max_in_flight = max_in_flight
        self.refresh_seconds = refresh_seconds
        self.cache = RetransmitCache(ttl=cache_ttl)
        self.table = radius_clients.ClientTable([])
        self.stats: Counter[str] = Counter()
        self.in_flight = 0
        self.pool: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task] = set()
        self._periodic: list[asyncio.Task] = []
        self._unknown_seen: set[str] = set()
        self._relaxed_warned: set[str] = set()
        self._drop_logged: dict[tuple[str, str], float] = {}
        translate.check_attributes(self.dict, radius_auth.role_attributes(services.settings))

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self.pool = ThreadPoolExecutor(max_workers=self.threads,
                                       thread_name_prefix="radius-core")
        await self.reload_clients()
        protocol = AuthProtocol(self.host, self.auth_port, self.logger, self, ServerType.Auth,
                                self.hosts, None)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(protocol,
                                                           local_addr=(self.host,
                                                                       self.auth_port))
        self.auth_protocols.append(protocol)
        host, port = transport.get_extra_info("sockname")[:2]
        protocol.port = self.auth_port = port
        self._periodic = [loop.create_task(self._every(self.refresh_seconds,
                                                       self.reload_clients)),
                          loop.create_task(self._every(60.0, self._purge)),
                          loop.create_task(self._every(60.0, self._log_stats))]
        return host, port

    async def stop(self, grace: float = 5.0) -> None:
        await self.deinitialize_transports()
        for task in self._periodic:
            task.cancel()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if self.pool is not None:  # queued decisions are dropped, running ones finish
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._log_stats_now()

    @staticmethod
    async def _every(seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            await job()

    async def reload_clients(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            clients = await loop.run_in_executor(self.pool, self._load_clients)
        except Exception as exc:  # noqa: BLE001 - keep serving with the clients we have
            log.warning("could not reload RADIUS clients (%s); keeping %d", type(exc).__name__,
                        len(self.table))
            return
        names = sorted(c.name for c in clients)
        if names != sorted(c.name for c in self.table.clients):
            log.info("RADIUS clients: %s", ", ".join(f"{c.name} {c.network} {c.mode}"
                                                      for c in clients) or "none")
            if not clients:
                log.warning("no RADIUS clients are configured: every packet is dropped "
                            "(add one with `um2fa radius-clients add`)")
        for client in clients:
            if not client.require_message_authenticator and client.name not in \
                    self._relaxed_warned:
                self._relaxed_warned.add(client.name)
                log.warning("RADIUS client %s may send Access-Requests without "
                            "Message-Authenticator: it is exposed to BlastRADIUS "
                            "(CVE-2024-3596); turn the NAS's Message-Authenticator on",
                            client.name)
        self.table = radius_clients.ClientTable(clients)

    def _load_clients(self) -> list[radius_clients.ClientConfig]:
        with self.services.context() as ctx:
            return radius_clients.load(ctx)

    async def _purge(self) -> None:
        def purge() -> int:
            with self.services.context() as ctx:
                return radius_auth.purge_challenges(ctx)

        try:
            await asyncio.get_running_loop().run_in_executor(self.pool, purge)
        except Exception as exc:  # noqa: BLE001 - retried next minute
            log.warning("could not purge expired challenge States: %s", type(exc).__name__)

    async def _log_stats(self) -> None:
        self._log_stats_now()

    def _log_stats_now(self) -> None:
        if self.stats:
            log.info("RADIUS counters: %s", ", ".join(f"{k}={v}"
                                                      for k, v in sorted(self.stats.items())))

    # --- packets --------------------------------------------------------------------------

    def _drop(self, reason: str, addr: tuple[Any, ...], detail: str = "") -> None:
        """Count a dropped packet; log it at most once a minute per source and reason, so a
        flood cannot flood the log too."""
        self.stats[f"dropped: {reason}"] += 1
        now, key = time.monotonic(), (addr[0], reason)
        if now - self._drop_logged.get(key, -DROP_LOG_INTERVAL) < DROP_LOG_INTERVAL:
            return
        if len(self._drop_logged) >= DROP_LOG_SOURCES:
            self._drop_logged.clear()
        self._drop_logged[key] = now
        log.warning("dropped a packet from %s: %s%s (counted; logged once a minute)", addr[0],
                    reason, f", {detail}" if detail else "")

    def receive(self, protocol: AuthProtocol, data: bytes, addr: tuple[Any, ...]) -> None:
        self.stats["received"] += 1
        client = self.table.match(addr[0])
        if client is None:
            self.stats["dropped: unknown client"] += 1
            if addr[0] not in self._unknown_seen and len(self._unknown_seen) < UNKNOWN_WARNINGS:
                self._unknown_seen.add(addr[0])
                log.warning("dropped a packet from unknown client %s (not in any RADIUS "
                            "client's network); further ones are only counted", addr[0])
            return
        try:
            translate.check_framing(data)
        except translate.Malformed as exc:
            return self._drop("malformed", addr, str(exc))
        code = data[0]
        if code not in (rp.AccessRequest, rp.StatusServer):
            return self._drop("not an Access-Request", addr, f"code {code}")
        try:
            pkt = rp.AuthPacket(secret=client.secret, dict=self.dict, packet=data)
        except Exception as exc:  # noqa: BLE001 - pyrad raises several kinds on bad input
            return self._drop("malformed", addr, f"{type(exc).__name__}")
        if pkt.message_authenticator:
            if not pkt.verify_message_authenticator():
                return self._drop("wrong Message-Authenticator", addr,
                                  f"client {client.name}: wrong secret or forged packet")
        elif client.require_message_authenticator or code == rp.StatusServer:
            return self._drop("no Message-Authenticator", addr, f"client {client.name}")
        else:
            self.stats["accepted without Message-Authenticator"] += 1
        key = (addr[0], addr[1], pkt.id, pkt.authenticator)
        cached = self.cache.lookup(key)
        if cached is PENDING:
            self.stats["duplicate while deciding"] += 1
            return
        if cached is not None:
            self.stats["answered from cache"] += 1
            protocol.transport.sendto(cached, addr)
            return
        if code == rp.StatusServer:
            self.stats["status"] += 1
            reply = translate.status_reply(pkt)
            self.cache.complete(key, reply)
            protocol.transport.sendto(reply, addr)
            return
        try:
            request = translate.access_request(pkt, client, addr[0])
        except translate.Malformed as exc:
            return self._drop("malformed", addr, str(exc))
        if self.in_flight >= self.max_in_flight:
            return self._drop("overloaded", addr, f"{self.in_flight} requests being decided")
        self.cache.begin(key)
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(
            self._decide(protocol, pkt, request, key, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, protocol: AuthProtocol, pkt: rp.AuthPacket,
                      request: radius_auth.AccessRequest, key: tuple, addr: tuple) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                decision = await loop.run_in_executor(self.pool, radius_auth.decide,
                                                      self.services, request)
            except Exception:  # noqa: BLE001 - answer, and keep the traceback in the log
                log.exception("error deciding an Access-Request from client %s",
                              request.client.name)
                decision = radius_auth.Decision(radius_auth.Outcome.REJECT,
                                                radius_auth.UNAVAILABLE, reason="error")
            reply = translate.reply_packet(pkt, decision)
            self.stats[decision.outcome.value] += 1
            self.cache.complete(key, reply)
            if protocol.transport is not None:
                protocol.transport.sendto(reply, addr)
        except Exception:  # noqa: BLE001
            self.cache.forget(key)
            self.stats["errors"] += 1
            log.exception("could not answer an Access-Request from %s", addr[0])
        finally:
            self.in_flight -= 1

    # pyrad's abstract handlers: we listen on the authentication port only, and receive()
    # handles Access-Requests itself.
    def handle_auth_packet(self, protocol, pkt, addr) -> None:  # pragma: no cover
        raise NotImplementedError

    def handle_acct_packet(self, protocol, pkt, addr) -> None:  # pragma: no cover
        raise NotImplementedError

    def handle_coa_packet(self, protocol, pkt, addr) -> None:  # pragma: no cover
        raise NotImplementedError

    def handle_disconnect_packet(self, protocol, pkt, addr) -> None:  # pragma: no cover
        raise NotImplementedError


async def serve(server: RadiusServer) -> None:
    """Run until SIGTERM or SIGINT, then finish the requests being decided."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = await server.start()
    log.info("UM 2FA RADIUS listening on %s:%d (UDP), %d worker threads", host, port,
             server.threads)
    await stop.wait()
    log.info("stopping")
    await server.stop()
