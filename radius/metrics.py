"""The RADIUS server's own numbers, in the Prometheus text format, on a tiny HTTP endpoint.

These live in the server process (packets received, dropped, requests being decided), so each
RADIUS process serves its own; logins by result come from the database through the web app's
/metrics. `render` turns a RadiusServer's `stats` Counter, `in_flight` and the retransmit
cache size into the exposition format; `start_metrics_server` answers GET /metrics and
GET /healthz (asyncio.start_server, bounded request size and time, nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("um2fa.radius.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("accept", "reject", "challenge")
MAX_REQUEST = 8192  # bytes of request line and headers
READ_TIMEOUT = 5.0
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class RadiusCollector(Collector):
    """Reads a RadiusServer's counters at scrape time (on the event loop: no locking)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator:
        server = self.server
        stats = dict(server.stats)
        yield _counter("um2fa_radius_requests_received", "UDP packets received",
                       value=stats.pop("received", 0))
        answers = CounterMetricFamily("um2fa_radius_answers", "Access-Requests answered, "
                                      "by outcome", labels=["outcome"])
        for outcome in OUTCOMES:
            answers.add_metric([outcome], stats.pop(outcome, 0))
        yield answers
        drops = CounterMetricFamily("um2fa_radius_dropped", "Packets dropped, by reason",
                                    labels=["reason"])
        events = CounterMetricFamily("um2fa_radius_events", "Other RADIUS counters "
                                     "(cache answers, duplicates, batches, errors)",
                                     labels=["event"])
        for key, value in sorted(stats.items()):
            if key.startswith("dropped: "):
                drops.add_metric([key[len("dropped: "):]], value)
            else:
                events.add_metric([key], value)
        yield drops
        yield events
        yield _gauge("um2fa_radius_in_flight", "Requests being decided now", server.in_flight)
        yield _gauge("um2fa_radius_password_in_flight", "Password checks waiting or running",
                     getattr(server, "password_in_flight", 0))
        batcher = getattr(server, "batcher", None)
        yield _gauge("um2fa_radius_batch_queue_depth", "Requests queued for the decision thread",
                     batcher.queue.qsize() if batcher is not None else 0)
        yield _gauge("um2fa_radius_push_waits", "Logins waiting for a push answer",
                     getattr(server, "push_waits", 0))
        waiter = getattr(server, "push_waiter", None)
        yield _gauge("um2fa_radius_push_fanout_subscribed", "1 while push answers are heard "
                     "from Redis at once; 0: found by polling the database",
                     int(bool(waiter is not None and waiter.subscribed)))
        yield _counter("um2fa_radius_push_lookups", "Database look-ups for push answers",
                       value=waiter.lookups if waiter is not None else 0)
        yield _gauge("um2fa_radius_max_in_flight", "The in-flight limit (more are dropped)",
                     server.max_in_flight)
        yield _gauge("um2fa_radius_retransmit_cache_entries", "Entries in the duplicate cache",
                     len(server.cache))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def render(server: Any) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RadiusCollector(server))
    return generate_latest(registry)


def _health(server: Any) -> tuple[int, dict[str, Any]]:
    listening = bool(getattr(server, "auth_protocols", None))
    body = {"status": "ok" if listening else "unavailable", "listening": listening,
            "in_flight": server.in_flight}
    return (200 if listening else 503), body


def _response(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
              405: "Method Not Allowed", 503: "Service Unavailable"}.get(status, "Error")
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


def _json(status: int, data: dict[str, Any]) -> bytes:
    return _response(status, json.dumps(data).encode(), "application/json")


def _allowed(peer: str, headers: dict[str, str], networks, token: str) -> bool:
    auth = headers.get("authorization", "")
    if token and auth[:7].lower() == "bearer " and \
            hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
        return True
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _parse(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ")
    except ValueError:
        return None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target.split("?", 1)[0], headers


async def _answer(server: Any, reader: asyncio.StreamReader, peer: str, networks,
                  token: str) -> bytes:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
            ConnectionError):
        return _json(400, {"error": "bad request"})
    parsed = _parse(head)
    if parsed is None:
        return _json(400, {"error": "bad request"})
    method, path, headers = parsed
    if path not in ("/metrics", "/healthz"):
        return _json(404, {"error": "not found"})
    if method != "GET":
        return _json(405, {"error": "only GET"})
    if path == "/healthz":
        status, body = _health(server)
        return _json(status, body)
    if not _allowed(peer, headers, networks, token):
        return _json(403, {"error": "forbidden"})
    return _response(200, render(server), CONTENT_TYPE)


async def start_metrics_server(server: Any, host: str = "127.0.0.1", port: int = 9812, *,
                               networks=LOOPBACK, token: str = "",
                               ports: int = 1) -> asyncio.Server:
    """Serve GET /metrics (to `networks`, or with `Authorization: Bearer <token>`) and
    GET /healthz (to anyone who can reach the port). Returns the asyncio server; close() it
    with the RADIUS server.

    With `ports` > 1 the first free port of port .. port + ports - 1 is taken: the processes of
    `um2fa radius --processes N` each get their own, and Prometheus scrapes all N."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("",))[0]
        try:
            reply = await _answer(server, reader, peer, networks, token)
            writer.write(reply)
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - a scrape must never disturb the server
            log.warning("metrics endpoint: %s from %s", type(exc).__name__, peer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    for candidate in range(port, port + max(ports, 1)):
        try:
            metrics = await asyncio.start_server(handle, host, candidate, limit=MAX_REQUEST)
        except OSError:
            if candidate == port + max(ports, 1) - 1 or port == 0:
                raise
            continue
        bound = metrics.sockets[0].getsockname()
        log.info("RADIUS metrics on http://%s:%d/metrics", bound[0], bound[1])
        return metrics
    raise OSError(f"no free metrics port from {port}")
