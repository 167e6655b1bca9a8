"""The recovery portal's steps, kept server-side so that no step can be skipped or replayed.

1. the person picks a role; 2. `start`: UMPASS ID, date of birth, last 4 ID characters;
3. `choose`: "Get 2FA Passcode"; 4. `finish`: UMPASS password -> 5. a recovery passcode.

The identity answers are checked at step 2 but the verdict is given only at step 4, after the
password, and it is the same whichever answer was wrong: the portal never says whether an
account exists or which field did not match. A flow is a database row reached through a random
token the browser keeps in its (signed) session; its stage moves only forward, by conditional
UPDATEs, so replaying a request or a copied cookie cannot pass a step twice.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from app.core import audit, identity, lockout, recovery, recovery_lock, users
from app.core.context import Context, Origin
from app.models import RecoveryFlow, RecoveryGuard

FLOW_SECONDS = 600
FLOW_PURPOSE = "recovery-flow"


class Stage(enum.StrEnum):
    IDENTIFIED = "identified"  # step 2 done: next, choose "Get 2FA Passcode"
    CHOSEN = "chosen"  # step 3 done: next, the UMPASS password
    FINISHED = "finished"  # step 4 answered (either way): the flow is spent
    ABANDONED = "abandoned"  # the browser started another flow


class Result(enum.StrEnum):
    ISSUED = "issued"
    FAILED = "failed"  # the one answer for every wrong role, ID, date, ID characters, password
    LOCKED = "locked"  # too many failed verifications for this UMPASS ID
    ENDED = "ended"  # no flow at this step (skipped, replayed, expired): start again


@dataclass(frozen=True)
class Finish:
    result: Result
    passcode: str = ""
    expires_at: datetime | None = None
    locked_until: datetime | None = None  # when the result is LOCKED


def _token_hash(ctx: Context, token: str) -> bytes:
    return ctx.keys.keyed_hash(FLOW_PURPOSE, token)


def _prune(ctx: Context, now: datetime) -> None:
    """Drop spent flows and stale guard rows; cheap, and keeps the tables small."""
    ctx.db.execute(delete(RecoveryFlow).where(RecoveryFlow.expires_at < now - timedelta(hours=1))
                   .execution_options(synchronize_session=False))
    ctx.db.execute(delete(RecoveryGuard).where(recovery_lock.prune_condition(ctx, now))
                   .execution_options(synchronize_session=False))


def abandon(ctx: Context, token: str | None) -> None:
    if token:
        ctx.db.execute(update(RecoveryFlow)
                       .where(RecoveryFlow.token_hash == _token_hash(ctx, token),
                              RecoveryFlow.stage.in_([Stage.IDENTIFIED, Stage.CHOSEN]))
                       .values(stage=Stage.ABANDONED)
                       .execution_options(synchronize_session=False))


def start(ctx: Context, origin: Origin, answers: identity.Identity,
          previous_token: str | None = None) -> str | None:
    """Step 2. A new flow's token, or None when recovery for this UMPASS ID is locked.

    A flow starts whether or not the answers match: the verdict waits for the password step.
    """
    now = ctx.now()
    _prune(ctx, now)
    abandon(ctx, previous_token)
    checked = identity.check(ctx, answers)
    name = audit.username_of(ctx.keys, checked.user, answers.username)
    if recovery_lock.is_locked(ctx, answers.username, origin.client_addr):
        audit.record(ctx, origin, "recovery.identify", "locked", username=name)
        return None
    token = secrets.token_urlsafe(32)
    ctx.db.add(RecoveryFlow(token_hash=_token_hash(ctx, token), username=answers.username,
                            role=answers.role, identity_ok=checked.ok,
                            identity_detail=", ".join(checked.failed), stage=Stage.IDENTIFIED,
                            created_at=now, expires_at=now + timedelta(seconds=FLOW_SECONDS)))
    audit.record(ctx, origin, "recovery.identify", "ok" if checked.ok else "fail",
                 username=name, detail=f"role {answers.role}"
                 + (f"; {', '.join(checked.failed)}" if checked.failed else ""))
    return token


def stage(ctx: Context, token: str | None) -> Stage | None:
    """The stage of the browser's live flow, or None (no flow, or it expired)."""
    if not token:
        return None
    flow = ctx.db.scalar(select(RecoveryFlow).where(
        RecoveryFlow.token_hash == _token_hash(ctx, token), RecoveryFlow.expires_at > ctx.now()))
    return Stage(flow.stage) if flow is not None else None


def _advance(ctx: Context, token: str | None, frm: Stage, to: Stage) -> RecoveryFlow | None:
    """Move the flow from `frm` to `to` if it is there and alive; one request wins a race."""
    if not token:
        return None
    digest = _token_hash(ctx, token)
    moved = ctx.db.execute(
        update(RecoveryFlow)
        .where(RecoveryFlow.token_hash == digest, RecoveryFlow.stage == frm,
               RecoveryFlow.expires_at > ctx.now())
        .values(stage=to).execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        return None
    return ctx.db.scalar(select(RecoveryFlow).where(RecoveryFlow.token_hash == digest))


def choose(ctx: Context, token: str | None) -> bool:
    """Step 3: "Get 2FA Passcode"."""
    return _advance(ctx, token, Stage.IDENTIFIED, Stage.CHOSEN) is not None


def finish(ctx: Context, origin: Origin, token: str | None, password: str) -> Finish:
    """Step 4: the UMPASS password, then the verdict on everything typed since step 2."""
    flow = _advance(ctx, token, Stage.CHOSEN, Stage.FINISHED)
    if flow is None:
        return Finish(Result.ENDED)
    user = users.find(ctx, flow.username)
    # One argon2 verification whatever happened before (unknown users use a dummy hash).
    password_ok = ctx.directory.check_password(flow.username,
                                               user.password_hash if user else None, password)
    name = audit.username_of(ctx.keys, user, flow.username)
    if recovery_lock.is_locked(ctx, flow.username, origin.client_addr):
        audit.record(ctx, origin, "recovery.verify", "locked", username=name)
        return Finish(Result.LOCKED, locked_until=recovery_lock.locked_until(
            ctx, flow.username, origin.client_addr))
    failed = [part for part in flow.identity_detail.split(", ") if part]
    if user is None and "unknown user" not in failed:  # removed since step 2
        failed.append("unknown user")
    if not password_ok and user is not None:
        failed.append("wrong password")
    if user is not None and lockout.is_locked(user, ctx.now()) and "account locked" not in failed:
        failed.append("account locked")
    if user is None or not flow.identity_ok or failed:
        audit.record(ctx, origin, "recovery.verify", "fail", username=name,
                     detail=", ".join(failed))
        if recovery_lock.record_failure(ctx, origin, flow.username, audit_name=name):
            return Finish(Result.LOCKED, locked_until=recovery_lock.locked_until(
                ctx, flow.username, origin.client_addr))
        return Finish(Result.FAILED)
    audit.record(ctx, origin, "recovery.verify", "ok", username=user.username)
    code, row = recovery.issue(ctx, origin, user)
    return Finish(Result.ISSUED, passcode=code, expires_at=row.expires_at)
