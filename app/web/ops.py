"""The operators' view: /healthz for load balancers, /metrics for Prometheus.

Neither is behind the campus gate, CSRF or the rate limits; /metrics answers only to
`metrics_networks` or to a bearer `metrics_token`. Neither ever shows an exception.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import generate_latest
from sqlalchemy import text

from app.core import redis_outage
from app.extensions import core
from app.web import addresses

log = logging.getLogger("um2fa.ops")

bp = Blueprint("ops", __name__)

CHECK_TIMEOUT = 2.0  # seconds a dependency has to answer /healthz
# The classic text format (0.0.4): every Prometheus version reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Probe:
    """Runs one check in a thread with a deadline. A check still hanging from an earlier
    call makes the next ones fail at once instead of piling up threads."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._busy = threading.Lock()

    def __call__(self, check: Callable[[], None], timeout: float = CHECK_TIMEOUT) -> bool:
        if not self._busy.acquire(blocking=False):
            return False
        outcome: dict[str, bool] = {}

        def run() -> None:
            try:
                check()
                outcome["ok"] = True
            except Exception as exc:  # noqa: BLE001 - reported as unavailable, logged by name
                log.warning("health check: %s unavailable (%s)", self.name,
                            type(exc).__name__)
            finally:
                self._busy.release()

        threading.Thread(target=run, name=f"healthz-{self.name}", daemon=True).start()
        # wait on the lock, not the thread: the thread releases it when the check ends
        if self._busy.acquire(timeout=timeout):
            self._busy.release()
        else:
            log.warning("health check: %s did not answer in %.0f s", self.name, timeout)
        return outcome.get("ok", False)


def _probes(app: Flask) -> dict[str, Probe]:
    return app.extensions.setdefault("um2fa.probes", {"database": Probe("database"),
                                                      "redis": Probe("redis")})


def _check_database() -> Callable[[], None]:
    engine = core.database().engine

    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()

    return check


def _check_redis(app: Flask, url: str) -> Callable[[], None]:
    client = app.extensions.get("um2fa.redis")
    if client is None:
        client = app.extensions["um2fa.redis"] = redis_outage.client(url, CHECK_TIMEOUT)
    return lambda: client.ping()


@bp.get("/healthz")
def healthz():
    app = current_app._get_current_object()
    settings = app.config["UM2FA"]
    probes = _probes(app)
    report = {"database": "ok" if probes["database"](_check_database()) else "unavailable",
              "redis": "not configured"}
    if settings.redis_url:
        try:
            check = _check_redis(app, settings.redis_url)
        except Exception as exc:  # noqa: BLE001 - a bad URL or no redis package
            log.warning("health check: redis not usable (%s)", type(exc).__name__)
            report["redis"] = "unavailable"
        else:
            report["redis"] = "ok" if probes["redis"](check) else "unavailable"
    # Without the database nothing works: 503, so the load balancer stops sending. Without
    # Redis a node still serves (rate limits count per node, pushes reach RADIUS by polling):
    # 200 "degraded", for the alerts, and not a reason to take every node out at once.
    if report["database"] == "unavailable":
        return jsonify({"status": "unavailable", **report}), 503
    status = "degraded" if report["redis"] == "unavailable" else "ok"
    return jsonify({"status": status, **report}), 200


def _metrics_allowed() -> bool:
    from app.web.request_info import client_addr

    settings = current_app.config["UM2FA"]
    header = request.headers.get("Authorization", "")
    if settings.metrics_token and header[:7].lower() == "bearer ":
        given = header[7:].strip().encode()
        if hmac.compare_digest(given, settings.metrics_token.encode()):
            return True
    return addresses.in_networks(client_addr(), settings.metrics_networks)


def _collector(app: Flask):
    from app.metrics import DatabaseMetrics, registry_for

    registry = app.extensions.get("um2fa.metrics")
    if registry is None:
        clock = app.config.get("UM2FA_CLOCK")

        def now() -> datetime:
            return datetime.fromtimestamp(clock(), UTC) if clock else datetime.now(UTC)

        registry = app.extensions["um2fa.metrics"] = registry_for(
            DatabaseMetrics(core.database(app).engine, now))
    return registry


@bp.get("/metrics")
def metrics():
    if not _metrics_allowed():
        return jsonify({"error": "forbidden"}), 403
    app = current_app._get_current_object()
    try:
        body = generate_latest(_collector(app))
    except Exception as exc:  # noqa: BLE001 - the database is down or slow: no numbers, no trace
        log.warning("metrics: database unavailable (%s)", type(exc).__name__)
        return jsonify({"error": "database unavailable"}), 503
    return Response(body, mimetype=None, content_type=CONTENT_TYPE)
