"""One structured record per authentication step, in the database and the log.

Callers pass names and outcomes only; nothing here accepts a secret.

Records are kept with the session (`Session.info`) and written with one multi-row INSERT: before
the session commits, and before any ORM query on it (so a session reads its own records, in
order). A rolled back transaction drops them with everything else. One INSERT for many records
is what lets the RADIUS door decide a batch of requests in one transaction cheaply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, event, insert
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from app.core.context import Context, Origin
from app.core.keys import Keys
from app.db import Prepared
from app.models import AuditEvent

log = logging.getLogger("um2fa.audit")

PENDING = "um2fa.audit.pending"
UNKNOWN_USERNAME = "audit.unknown-username"  # the keyed hash's purpose
_INSERT = insert(AuditEvent.__table__)
_COLUMNS = ("at", "username", "door", "action", "result", "client_addr", "device", "detail",
            "actor")
# one record (most requests): compiled once, run without SQLAlchemy's per-execution work
_INSERT_ONE = Prepared(insert(AuditEvent.__table__).values(
    {name: bindparam(name) for name in _COLUMNS}))

# audit_events.action values that are logins or second-factor decisions, by who writes them:
#   sign_in        app/core/signin.py: the password step of the portal and SSO doors
#   factor         app/core/passcodes.py, app/core/push/lifecycle.py: a passcode or push
#                  decision, any door
#   lockout        app/core/lockout.py: the failure that locked the user
#   radius.access  app/core/radius_auth/: the RADIUS door's answer (accept/reject/challenge)
#   saml.response  app/web/sso.py: an assertion issued to a service provider (SSO login done)
LOGIN_ACTIONS = ("sign_in", "factor", "lockout", "radius.access", "saml.response")

# audit_events.door values: the doors' Origins (app/web/*.py DOOR, app/cli/common.py: CLI,
# saml/aggregate_refresh.py: SCHEDULER, app/core/radius_auth/decision.py: DOOR).
DOORS = ("portal", "sso", "radius", "recovery", "device-api", "notice", "admin", "api", "cli",
         "scheduler")
# audit_events.result values, every audit.record's outcome (push.answer writes the push's new
# status, radius.access the RADIUS answer). tests/ops/test_audit_values.py checks both lists
# against the code: the timeline's filters offer these and refuse others.
RESULTS = ("ok", "fail", "locked", "blocked", "refused", "held", "skipped", "accept", "reject",
           "challenge", "approved", "denied", "fraud", "mismatch", "created", "updated",
           "removed", "bad-signature", "not_confirmed", "cloned")


def record(ctx: Context, origin: Origin, action: str, result: str, *, username: str = "",
           device: str = "", detail: str = "") -> None:
    detail = "; ".join(part for part in (detail, origin.info) if part)
    ctx.db.info.setdefault(PENDING, []).append(
        {"at": ctx.now(), "username": username, "door": origin.door, "action": action,
         "result": result, "client_addr": origin.client_addr, "device": device,
         "detail": detail, "actor": origin.actor})
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"audit": action, "result": result, "user": username,
                             "door": origin.door, "client": origin.client_addr,
                             "device": device, "detail": detail, "actor": origin.actor}))


def record_many(ctx: Context, origin: Origin, action: str, result: str, usernames: Iterable[str],
                *, detail: str = "") -> None:
    """`record` for each username, the rest alike (a bulk import: one record per user)."""
    detail = "; ".join(part for part in (detail, origin.info) if part)
    same = {"at": ctx.now(), "door": origin.door, "action": action, "result": result,
            "client_addr": origin.client_addr, "device": "", "detail": detail,
            "actor": origin.actor}
    pending = ctx.db.info.setdefault(PENDING, [])
    logged = log.isEnabledFor(logging.INFO)
    for username in usernames:
        pending.append({**same, "username": username})
        if logged:
            log.info(json.dumps({"audit": action, "result": result, "user": username,
                                 "door": origin.door, "client": origin.client_addr,
                                 "device": "", "detail": detail, "actor": origin.actor}))


def unknown_username(keys: Keys, typed: str) -> str:
    """What the audit (and its log line) records for a username that matches no user: people
    type passwords into the username field, so never the text itself, but a keyed hash's first
    8 hex digits, the same for the same (case-folded) text, so repeated attempts correlate."""
    digest = keys.keyed_hash(UNKNOWN_USERNAME, typed.strip().lower())
    return "unknown:" + digest.hex()[:8]


def username_of(keys: Keys, user: Any, typed: str) -> str:
    """The audit's username: the user's (`user` has a `username`), else `unknown_username`."""
    return user.username if user is not None else unknown_username(keys, typed)


def flush(session: Session) -> None:
    """Write the session's pending records now (one INSERT)."""
    rows: list[dict[str, Any]] | None = session.info.pop(PENDING, None)
    if not rows:
        return
    if len(rows) == 1:
        _INSERT_ONE.execute(session.connection(), rows[0])
    else:
        session.connection().execute(_INSERT, rows)


def log_only(origin: Origin, action: str, result: str, *, username: str = "", detail: str = "",
             level: int = logging.WARNING) -> None:
    """An audit line for when the database cannot take the record (it is unreachable)."""
    detail = "; ".join(part for part in (detail, origin.info) if part)
    log.log(level, json.dumps({"audit": action, "result": result, "user": username,
                               "door": origin.door, "client": origin.client_addr,
                               "detail": detail, "stored": False}))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    flush(session)


@event.listens_for(Session, "do_orm_execute")
def _before_query(state: ORMExecuteState) -> None:
    if state.session.info.get(PENDING):
        flush(state.session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (written already) or rolled back (dropped)
        session.info.pop(PENDING, None)
