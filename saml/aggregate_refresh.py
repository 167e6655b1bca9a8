"""Reading federations' metadata aggregates again when they are due: `um2fa sp refresh` (cron)
and a daemon thread of `um2fa serve`. Several nodes may run it: each due aggregate is claimed
by one (app/core/aggregates.py: claim) before it is fetched, and no transaction stays open
while it downloads."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Flask

from app.core import aggregates
from app.core.context import Origin
from app.extensions import core
from saml.aggregate import load
from saml.xml import SamlError

log = logging.getLogger(__name__)

SCHEDULER = Origin(door="scheduler", client_addr="local")
CHECK_EVERY_SECONDS = 60


@dataclass
class Outcome:
    """One aggregate read: what it changed, or why it was refused."""

    url: str
    report: aggregates.Report | None = None
    error: str = ""


def refresh(origin: Origin, *, every: bool = False) -> list[Outcome]:
    """Read the due aggregates (all of them with `every`) that no other node has claimed.
    Needs an application context."""
    with core.own_context() as ctx:
        ids = aggregates.due(ctx, every=every)
    outcomes = []
    for aggregate_id in ids:
        try:
            outcome = refresh_one(origin, aggregate_id, force=every)
        except Exception as exc:  # one aggregate's bug must not stop the others of this round
            log.exception("refreshing metadata aggregate %s failed unexpectedly", aggregate_id)
            outcome = _unexpected(origin, aggregate_id, exc)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _unexpected(origin: Origin, aggregate_id: int, exc: Exception) -> Outcome | None:
    """Record an unforeseen failure as the aggregate's last error: its kind only, the details
    are in the log (an exception's text is not known to be safe to show)."""
    reason = f"an unexpected error ({type(exc).__name__}, see the log)"
    with core.own_context() as ctx:
        aggregate = aggregates.get(ctx, aggregate_id)
        if aggregate is None:
            return None
        url = aggregate.url
        aggregates.refused(ctx, origin, aggregate_id, reason)
    return Outcome(url=url, error=reason)


def refresh_one(origin: Origin, aggregate_id: int, *, force: bool = False) -> Outcome | None:
    """Claim, fetch and apply one aggregate; None when another node has it (or it is gone)."""
    with core.own_context() as ctx:
        if not aggregates.claim(ctx, aggregate_id, force=force):
            return None
        aggregate = aggregates.get(ctx, aggregate_id)
        url, cert_pem, now = aggregate.url, aggregate.cert_pem, ctx.now()
    try:
        loaded = load(url, cert_pem, now)
    except SamlError as exc:
        with core.own_context() as ctx:
            aggregates.refused(ctx, origin, aggregate_id, str(exc))
        log.warning("metadata aggregate %s refused: %s", url, exc)
        return Outcome(url=url, error=str(exc))
    with core.own_context() as ctx:
        aggregate = aggregates.get(ctx, aggregate_id)
        if aggregate is None:  # removed while it downloaded
            return None
        try:
            report = aggregates.apply(ctx, origin, aggregate, loaded)
        except aggregates.AggregateError as exc:
            ctx.db.rollback()
            aggregates.refused(ctx, origin, aggregate_id, str(exc))
            log.warning("metadata aggregate %s refused: %s", url, exc)
            return Outcome(url=url, error=str(exc))
    log.info("metadata aggregate %s", report.summary())
    return Outcome(url=url, report=report)


def start_refresher(app: Flask, every_seconds: float = CHECK_EVERY_SECONDS) -> threading.Event:
    """Check for due aggregates now and every `every_seconds` on a daemon thread; set the
    returned event to stop it."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():  # ends with the event, or with the process (a daemon)
            try:
                with app.app_context():
                    refresh(SCHEDULER)
            except Exception:  # a database outage must not end the thread
                log.exception("refreshing the metadata aggregates failed")
            stop.wait(every_seconds)

    threading.Thread(target=run, name="um2fa-aggregates", daemon=True).start()
    return stop
