"""The RADIUS server: pyrad's asyncio server, one UDP socket, core decisions off the event loop.

The event loop only decodes, authenticates and answers packets. Requests that check no password
(second-factor-only mode, challenge answers: a passcode and a few statements) go to one decision
thread that takes whatever has queued up and decides it in one transaction (group commit, see
app.core.radius_auth.decide_many); requests that verify a password (argon2) run in a
ThreadPoolExecutor, whose threads argon2 keeps busy outside the GIL. At most `max_in_flight`
requests are being decided at once, and at most 2 password checks per worker thread (more are
dropped and the NAS retransmits). A password that a directory outside the database checks (LDAP,
upstream RADIUS) is asked on a worker thread with no transaction open; the rest of that request
is then decided in a batch like a passcode (SQLite), or in its own transaction on that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyrad import packet as rp
from pyrad.server_async import DatagramProtocolServer, ServerAsync, ServerType

from app.core import radius_auth, radius_clients
from app.core.services import CoreServices
from app.push_wait.waiter import PushWaiter
from radius import DEFAULT_MAX_IN_FLIGHT, translate
from radius.batcher import Batcher, Pending
from radius.cache import PENDING, RetransmitCache

log = logging.getLogger("um2fa.radius")

# Logins waiting for a push answer at once (each is a small task, no thread); beyond this a
# push login is answered at once with "expired".
MAX_PUSH_WAITS = 20_000
# The longest a reject is held (core asks for less: UM2FA_RADIUS_GUESS_MAX_DELAY_SECONDS).
MAX_REPLY_DELAY = 10.0
UNKNOWN_WARNINGS = 1024  # distinct unknown sources logged individually, then only counted
DROP_LOG_INTERVAL = 60.0
DROP_LOG_SOURCES = 4096
# Password checks (argon2, about a third of a second of CPU each) waiting or running, per worker
# thread: beyond that they are dropped rather than queued past the NAS's timeout.
PASSWORD_QUEUE_ROUNDS = 2


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
                 threads: int = 8, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 refresh_seconds: float = 30.0,
                 cache_ttl: float = 30.0, reuse_port: bool = False,
                 batch_lock: contextlib.AbstractContextManager | None = None) -> None:
        super().__init__(auth_port=port, hosts={}, dictionary=translate.load_dictionary(),
                         logger_name="um2fa.radius", enforce_ma=True)
        self.services = services
        self.host = host
        self.threads = threads
        self.max_in_flight = max_in_flight
        self.refresh_seconds = refresh_seconds
        self.reuse_port = reuse_port
        self.batch_lock = batch_lock
        # After a password asked apart (LDAP), the rest of the login: SQLite takes one writer at
        # a time, so the decision thread's batches (one transaction for many) are what scales;
        # PostgreSQL runs transactions side by side, so each on its worker thread overlaps its
        # round trips with the others' (docs/benchmarks.md, "The VPN path with LDAP passwords").
        self.batch_after_check = services.db.url.startswith("sqlite")
        self.cache_ttl = cache_ttl
        self.cache = RetransmitCache(ttl=cache_ttl)
        self.table = radius_clients.ClientTable([])
        self.stats: Counter[str] = Counter()
        self.in_flight = 0
        self.password_in_flight = 0
        self.batched_in_flight = 0
        self.pool: ThreadPoolExecutor | None = None
        self.batcher: Batcher | None = None
        self.push_waiter: PushWaiter | None = None
        self.push_waits = 0
        self.max_push_waits = MAX_PUSH_WAITS
        self._tasks: set[asyncio.Task] = set()
        self._periodic: list[asyncio.Task] = []
        self._unknown_seen: set[str] = set()
        self._relaxed_warned: set[str] = set()
        self._drop_logged: dict[tuple[str, str], float] = {}
        translate.check_attributes(self.dict, services.settings.radius_role_attributes)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self.pool = ThreadPoolExecutor(max_workers=self.threads,
                                       thread_name_prefix="radius-core")
        self.batcher = Batcher(self.services, asyncio.get_running_loop(), self._answer_batch,
                               lock=self.batch_lock)
        settings = self.services.settings
        self.push_waiter = PushWaiter(self._push_answers,
                                      fallback_interval=settings.push_fanout_poll_seconds)
        await self.reload_clients()
        protocol = AuthProtocol(self.host, self.auth_port, self.logger, self, ServerType.Auth,
                                self.hosts, None)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            protocol, local_addr=(self.host, self.auth_port),
            reuse_port=self.reuse_port or None)
        self.auth_protocols.append(protocol)
        host, port = transport.get_extra_info("sockname")[:2]
        protocol.port = self.auth_port = port
        self._periodic = [loop.create_task(self._every(self.refresh_seconds,
                                                       self.reload_clients)),
                          loop.create_task(self._every(60.0, self._purge)),
                          loop.create_task(self._every(60.0, self._log_stats))]
        if settings.redis_url:  # push fan-out (needs the redis package, as the limits do)
            from app.core.push_events import channel_for
            from app.push_wait import fanout as push_fanout

            self._periodic.append(loop.create_task(push_fanout.listen(
                settings.redis_url, self.push_waiter,
                channel_for(settings.ratelimit_key_prefix))))
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
        deadline = time.monotonic() + grace
        while self.batched_in_flight and time.monotonic() < deadline:  # batches being decided
            await asyncio.sleep(0.01)
        if self.push_waiter is not None:
            await self.push_waiter.close()
        if self.batcher is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.batcher.close)
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
            log.info("RADIUS clients: %s", ", ".join(_described(c) for c in clients) or "none")
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
        # a copy of a request is answered from the cache for as long as its push could wait
        self.cache.ttl = max([self.cache_ttl, *(float(c.longest_push_timeout) for c in clients)])

    def _load_clients(self) -> list[radius_clients.ClientConfig]:
        with self.services.context() as ctx:
            return radius_clients.load(ctx)

    async def _purge(self) -> None:
        def purge() -> int:
            with self.services.context() as ctx:
                return radius_auth.purge_challenges(ctx) + radius_auth.purge_counters(ctx)

        try:
            await asyncio.get_running_loop().run_in_executor(self.pool, purge)
        except Exception as exc:  # noqa: BLE001 - retried next minute
            log.warning("could not purge expired challenge States and failure counters: %s",
                        type(exc).__name__)

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
        # the client, not its source port: a copy from another port is the same request
        # (decided once, one push); RFC 5080 retransmissions from the same port too
        key = (client.name, pkt.id, pkt.authenticator)
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
        batched = self.batcher is not None and not radius_auth.verifies_password(request)
        if not batched and self.password_in_flight >= self.threads * PASSWORD_QUEUE_ROUNDS:
            return self._drop("overloaded", addr,
                              f"{self.password_in_flight} password checks being decided")
        self.cache.begin(key)
        self.in_flight += 1
        if batched:
            self.batched_in_flight += 1
            self.batcher.submit(Pending(protocol, pkt, request, key, addr))
            return
        self.password_in_flight += 1
        apart = self.batcher is not None and radius_auth.checks_password_apart(self.services,
                                                                                request)
        task = asyncio.get_running_loop().create_task(
            (self._check_apart if apart else self._decide)(protocol, pkt, request, key, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, protocol: AuthProtocol, pkt: rp.AuthPacket,
                      request: radius_auth.AccessRequest, key: tuple, addr: tuple) -> None:
        loop = asyncio.get_running_loop()
        try:
            decision = await loop.run_in_executor(self.pool, radius_auth.decide,
                                                  self.services, request)
        except Exception:  # noqa: BLE001 - answer, and keep the traceback in the log
            log.exception("error deciding an Access-Request from client %s",
                          request.client.name)
            decision = radius_auth.error_decision(request,
                                                  self.services.settings.default_language)
        finally:
            self.password_in_flight -= 1
        self._answer(Pending(protocol, pkt, request, key, addr), decision)

    async def _check_apart(self, protocol: AuthProtocol, pkt: rp.AuthPacket,
                           request: radius_auth.AccessRequest, key: tuple, addr: tuple) -> None:
        """A password that a directory outside the database checks (LDAP): asked on a worker
        thread with no transaction open, then the rest decided in a batch like a passcode
        (SQLite), or in its own transaction on the same thread (`batch_after_check`)."""
        loop = asyncio.get_running_loop()
        work = (radius_auth.check_password_apart if self.batch_after_check
                else radius_auth.check_then_decide)
        try:
            checked = await loop.run_in_executor(self.pool, work, self.services, request)
        except Exception:  # noqa: BLE001 - answer, and keep the traceback in the log
            log.exception("error checking a password from client %s", request.client.name)
            checked = radius_auth.error_decision(request,
                                                 self.services.settings.default_language)
        finally:
            self.password_in_flight -= 1
        if isinstance(checked, radius_auth.Decision):
            self._answer(Pending(protocol, pkt, request, key, addr), checked)
            return
        assert self.batcher is not None  # started: `stop` waits for this task before closing it
        self.batched_in_flight += 1
        self.batcher.submit(Pending(protocol, pkt, checked, key, addr))

    def _answer_batch(self, batch: list[Pending],
                      decisions: list[radius_auth.Decision]) -> None:
        self.stats["batches"] += 1
        self.stats["batched"] += len(batch)
        self.batched_in_flight -= len(batch)
        for item, decision in zip(batch, decisions, strict=True):
            self._answer(item, decision)

    def _answer(self, item: Pending, decision: radius_auth.Decision) -> None:
        """Send one decision, or, for a push that was sent, wait for its answer first."""
        self.in_flight -= 1
        if decision.outcome is radius_auth.Outcome.PENDING:
            self._wait_for_push(item, decision)
        else:
            self._send(item, decision)

    def _send(self, item: Pending, decision: radius_auth.Decision) -> None:
        """Encode, remember (for retransmissions) and send; a reject that core asks to hold
        (password guessing) is sent after its delay by a timer on the event loop (bounded by
        MAX_REPLY_DELAY; copies of the request are ignored meanwhile: the cache says pending)."""
        if decision.delay > 0:
            self.stats["rejects held"] += 1
            asyncio.get_running_loop().call_later(min(decision.delay, MAX_REPLY_DELAY),
                                                  self._send_now, item, decision)
            return
        self._send_now(item, decision)

    def _send_now(self, item: Pending, decision: radius_auth.Decision) -> None:
        try:
            reply = translate.reply_packet(item.pkt, decision)
            self.stats[decision.outcome.value] += 1
            self.cache.complete(item.key, reply)
            if item.protocol.transport is not None:
                item.protocol.transport.sendto(reply, item.addr)
        except Exception:  # noqa: BLE001
            self.cache.forget(item.key)
            self.stats["errors"] += 1
            log.exception("could not answer an Access-Request from %s", item.addr[0])

    # --- push -----------------------------------------------------------------------------

    async def _push_answers(self, since_row: int) -> dict[str, str]:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, radius_auth.push_answers, self.services, since_row)

    def _wait_for_push(self, item: Pending, decision: radius_auth.Decision) -> None:
        """The login stays unanswered (retransmissions are ignored: the cache says pending)
        while one task per wait sleeps on the shared waiter; no thread is held."""
        self.stats["push sent"] += 1
        timeout = float(decision.push_timeout)
        if self.push_waits >= self.max_push_waits:
            self.stats["push waits over the limit"] += 1
            timeout = 0.0  # answered at once: the push is expired and the login rejected
        self.push_waits += 1
        task = asyncio.get_running_loop().create_task(
            self._finish_push(item, decision.push_id, decision.push_row, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_push(self, item: Pending, push_id: str, row: int,
                           timeout: float) -> None:
        try:
            if timeout > 0 and self.push_waiter is not None:
                await self.push_waiter.wait(push_id, row, timeout)
            final = await asyncio.get_running_loop().run_in_executor(
                self.pool, radius_auth.finish_push, self.services, item.request, push_id)
        except asyncio.CancelledError:
            self.cache.forget(item.key)
            raise
        except Exception:  # noqa: BLE001 - answer, and keep the traceback in the log
            log.exception("error finishing a push login from client %s",
                          item.request.client.name)
            final = radius_auth.error_decision(item.request,
                                               self.services.settings.default_language)
        finally:
            self.push_waits -= 1
        self._send(item, final)

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


def _described(client: radius_clients.ClientConfig) -> str:
    text = f"{client.name} {client.network} {client.mode}"
    if client.proxy:
        text += f" proxy with {len(client.policies)} NAS policies"
    return text


async def serve(server: RadiusServer,
                listening: Callable[[str, int], None] | None = None,
                metrics_at: tuple[str, int, int] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then finish the requests being decided. `metrics_at`
    (host, port, ports) also serves /metrics and /healthz (radius/metrics.py)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = await server.start()
    metrics = None
    if metrics_at is not None:
        from radius.metrics import start_metrics_server

        settings = server.services.settings
        metrics = await start_metrics_server(server, metrics_at[0], metrics_at[1],
                                             ports=metrics_at[2],
                                             networks=settings.metrics_networks,
                                             token=settings.metrics_token)
    log.info("UM 2FA RADIUS listening on %s:%d (UDP), %d worker threads", host, port,
             server.threads)
    if listening is not None:
        listening(host, port)
    await stop.wait()
    log.info("stopping")
    if metrics is not None:
        metrics.close()
        await metrics.wait_closed()
    await server.stop()
