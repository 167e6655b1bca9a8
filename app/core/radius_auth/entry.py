"""The VPN door's entry points: decide one Access-Request, or a batch in one transaction, and
the client's fail mode when the database cannot be reached."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from app.core import audit
from app.core.context import Context
from app.core.directory import DirectoryUnavailable, keeps_passwords
from app.core.radius_auth import modes
from app.core.radius_auth.decision import (
    ACTION,
    AccessRequest,
    Decision,
    Outcome,
    error_decision,
    finish,
    origin_of,
    session_class,
    speaking,
    unavailable,
)
from app.core.services import CoreServices
from app.db import UNAVAILABLE as DATABASE_UNAVAILABLE
from app.i18n import N_, _

log = logging.getLogger("um2fa.radius")
T = TypeVar("T")

PAP_ONLY = N_("Only PAP is supported: set the VPN to send the password with PAP.")
DEGRADED = N_("Signed in with your password only: the 2FA service is temporarily "
              "unavailable.")


def _cause(exc: BaseException) -> str:
    cause = exc.orig if getattr(exc, "orig", None) is not None else exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}"


def decide(services: CoreServices, req: AccessRequest) -> Decision:
    """Decide one Access-Request in its own transaction; the client's fail mode answers when
    the database cannot be reached. The Reply-Message is in the client's language."""
    with speaking(req, services.settings.default_language):
        return _decide(services, req)


def _decide(services: CoreServices, req: AccessRequest) -> Decision:
    try:
        return retrying_a_dropped_connection(services, lambda ctx: authenticate(ctx, req))
    except DATABASE_UNAVAILABLE as exc:
        log.error("database unavailable for a RADIUS decision: %s", _cause(exc))
        return database_unavailable(services, req)
    except DirectoryUnavailable as exc:
        log.error("directory unavailable for a RADIUS decision: %s", exc)
        return unavailable(services.keys, req, "directory unavailable", "directory unavailable")


def retrying_a_dropped_connection(services: CoreServices, work: Callable[[Context], T]) -> T:
    """Run `work` in one transaction; if the server dropped the connection under it (a
    failover, a proxy's idle timeout, a terminated backend), run it once more on a fresh one.

    Only a connection that was open and then lost is retried: a server that cannot be reached
    at all fails the same way again, and the fail mode answers at once. Retrying is safe
    because nothing was committed (the transaction died with the connection) and, should a
    commit have landed before the answer was lost, every single-use claim (a TOTP step, a
    challenge's State) refuses its second use."""
    try:
        with services.context() as ctx:
            return work(ctx)
    except DATABASE_UNAVAILABLE as exc:
        if not getattr(exc, "connection_invalidated", False):
            raise
        log.warning("database connection dropped under a RADIUS decision (%s); deciding "
                    "again on a fresh connection", _cause(exc))
    with services.context() as ctx:
        return work(ctx)


def verifies_password(req: AccessRequest) -> bool:
    """Whether deciding `req` checks a password (argon2: a third of a second of CPU) or not
    (second-factor-only mode, a challenge answer): the door decides the latter in batches."""
    return req.password is not None and req.state is None and req.client.mode != "second-factor"


def checks_password_apart(services: CoreServices, req: AccessRequest) -> bool:
    """Whether `req`'s password is checked by a directory outside our database (LDAP,
    upstream RADIUS): then the door asks it first, on a worker thread, with no transaction
    open (`check_password_apart`), and decides the rest after it: in a batch like a passcode,
    or in its own transaction (`check_then_decide`)."""
    return verifies_password(req) and not keeps_passwords(services.directory)


def check_password_apart(services: CoreServices, req: AccessRequest) -> AccessRequest | Decision:
    """The directory's answer for `req`'s password, asked before its transaction: the request
    carrying it, to be decided (`decide_many`, `decide`); or already the answer when the
    directory or the database (the guessing counters) cannot be asked."""
    with speaking(req, services.settings.default_language):
        try:
            return modes.check_password_apart(services, req)
        except DATABASE_UNAVAILABLE as exc:
            log.error("database unavailable for a RADIUS decision: %s", _cause(exc))
            return database_unavailable(services, req)
        except DirectoryUnavailable as exc:
            log.error("directory unavailable for a RADIUS decision: %s", exc)
            return unavailable(services.keys, req, "directory unavailable",
                               "directory unavailable")


def check_then_decide(services: CoreServices, req: AccessRequest) -> Decision:
    """`check_password_apart`, then the rest of the request in its own transaction (`decide`):
    for a database that runs transactions side by side (PostgreSQL), where each worker thread
    overlaps its round trips with the others'."""
    checked = check_password_apart(services, req)
    return checked if isinstance(checked, Decision) else decide(services, checked)


def decide_many(services: CoreServices, requests: list[AccessRequest]) -> list[Decision]:
    """Decide requests that arrived together in one transaction (group commit): one commit, and
    the audit records in one INSERT, instead of one of each per request. The door answers only
    after this returns, so nothing is answered that was not committed.

    The requests see each other's writes in order, as if decided one after the other: a TOTP
    code used twice in a batch is accepted once and refused as a replay once (the step claim
    is one conditional UPDATE). If anything fails, the batch is rolled back and every request
    is decided again in its own transaction (`decide`), so one request's error never costs the
    others their answer; if the database is unreachable, each gets its client's fail mode."""
    if len(requests) == 1:
        return [decide(services, requests[0])]

    def batch(ctx: Context) -> list[Decision]:
        decisions = []
        for req in requests:
            with speaking(req, ctx.settings.default_language):
                decisions.append(authenticate(ctx, req))
            if ctx.db.identity_map or ctx.db.new:
                # the ORM paths (a challenge answer, append mode) must not see another
                # request's objects as they were before its plain UPDATEs
                ctx.db.flush()
                ctx.db.expire_all()
        return decisions

    try:
        return retrying_a_dropped_connection(services, batch)
    except DATABASE_UNAVAILABLE as exc:
        log.error("database unavailable for %d RADIUS decisions: %s", len(requests),
                  _cause(exc))
        return [decide_unavailable(services, req) for req in requests]
    except Exception:  # noqa: BLE001 - decided again one by one below
        log.exception("a batch of %d RADIUS decisions failed; deciding them one by one",
                      len(requests))
    return [_decide_or_error(services, req) for req in requests]


def _decide_or_error(services: CoreServices, req: AccessRequest) -> Decision:
    try:
        return decide(services, req)
    except Exception:  # noqa: BLE001 - answer, and keep the traceback in the log
        log.exception("error deciding an Access-Request from client %s", req.client.name)
        return error_decision(req, services.settings.default_language)


def authenticate(ctx: Context, req: AccessRequest) -> Decision:
    origin = origin_of(req)
    if req.password is None:
        return finish(ctx, origin, req, Outcome.REJECT, _(PAP_ONLY), reason="no User-Password")
    if req.state is not None:
        return modes.challenge_answer(ctx, origin, req)
    if req.client.mode == "second-factor":
        return modes.second_factor_only(ctx, origin, req)
    return modes.password_first(ctx, origin, req)


def decide_unavailable(services: CoreServices, req: AccessRequest) -> Decision:
    """The client's fail mode, in its language."""
    with speaking(req, services.settings.default_language):
        return database_unavailable(services, req)


def database_unavailable(services: CoreServices, req: AccessRequest) -> Decision:
    """Fail mode. secure: reject. safe: accept a correct password alone, audited loudly to the
    log (the database cannot take the record). A directory that keeps its passwords in the
    database (the local one) cannot check them now, so safe mode rejects with it too."""
    origin = origin_of(req)
    if (req.client.fail_mode == "safe" and req.password is not None
            and req.client.mode != "second-factor"):
        try:
            if req.checked is not None:  # the directory was asked before the transaction
                correct = req.checked.password.matched >= 0
            else:
                correct = any(services.directory.check_password(req.username, None, password)
                              for password, _factor in modes.readings(req))
        except DirectoryUnavailable:
            correct = False
        if correct:
            # the directory accepted the password: a real username, recorded as typed
            audit.log_only(origin, ACTION, "accept", username=req.username.strip().lower()[:64],
                           level=logging.ERROR,
                           detail="FAIL-SAFE: database unreachable, password only, "
                                  "no second factor")
            return Decision(Outcome.ACCEPT, _(DEGRADED), reason="fail-safe",
                            session_class=session_class())
    return unavailable(services.keys, req,
                       f"database unreachable (fail mode {req.client.fail_mode})",
                       "database unavailable")
