"""A push's life on the login's side: start it, follow it, and finish the login it was for.

A push lives in the database (`PushRequest`), so any node can start it, any node can take the
phone's answer and any node (or the RADIUS door) can see the outcome. Its status only moves
forward, by conditional UPDATEs: pending -> approved | denied | mismatch | fraud | expired, and
approved -> used when the login it was for completes (once).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update

from app.core import audit, lockout, webpush
from app.core.context import Context, Origin
from app.core.push.activation import can_push, push_devices
from app.core.push.errors import (
    BLOCKED,
    MESSAGES,
    NotPushable,
    PushBlocked,
    PushLocked,
    TooManyPushes,
)
from app.i18n import _
from app.models import Device, PushRequest, User


@dataclass(frozen=True)
class PushOutcome:
    """Where the login a push was sent for stands, and what to tell the person.

    status: "pending" (still waiting), "done" (approved, and used for this login now), or why
    not: "locked", "blocked" (a fraud report paused pushes), "denied", "mismatch", "fraud",
    "expired" or "used" (it let another login in already).
    """

    status: str
    message: str
    request: PushRequest | None = None
    device: Device | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


def _expire_stale(ctx: Context, user_id: int) -> None:
    ctx.db.execute(update(PushRequest)
                   .where(PushRequest.user_id == user_id, PushRequest.status == "pending",
                          PushRequest.expires_at <= ctx.now())
                   .values(status="expired").execution_options(synchronize_session=False))


def expire(ctx: Context, public_id: str) -> None:
    """End a pending push whose login stopped waiting (the VPN door's wait ran out)."""
    ctx.db.execute(update(PushRequest)
                   .where(PushRequest.public_id == public_id, PushRequest.status == "pending")
                   .values(status="expired").execution_options(synchronize_session=False))


def is_blocked(ctx: Context, user: User) -> bool:
    return user.push_blocked_until is not None and user.push_blocked_until > ctx.now()


def start(ctx: Context, origin: Origin, user: User, device: Device | None, *, service: str,
          timeout: int | None = None, verified: bool | None = None) -> PushRequest:
    """Send a push to `device` (the user's default push device when None). `verified` (default:
    the Verified Push policy) is off where no screen can show the number (the VPN door)."""
    device = device if device is not None else next(iter(push_devices(user)), None)
    if not can_push(device) or device is None or device.user_id != user.id:
        raise NotPushable()
    if lockout.is_locked(user, ctx.now()):
        raise PushLocked(_(lockout.LOCKED_PUSH_MESSAGE))
    if is_blocked(ctx, user):
        audit.record(ctx, origin, "push.start", "blocked", username=user.username,
                     device=device.name)
        raise PushBlocked()
    # One start per user at a time (on PostgreSQL; SQLite has one writer anyway): another
    # node's count and insert must not interleave with ours, or the limit is passed.
    ctx.db.execute(select(User.id).where(User.id == user.id).with_for_update())
    _expire_stale(ctx, user.id)
    pending = ctx.db.scalar(select(func.count()).select_from(PushRequest).where(
        PushRequest.user_id == user.id, PushRequest.status == "pending")) or 0
    if pending >= ctx.settings.push_max_pending:
        audit.record(ctx, origin, "push.start", "refused", username=user.username,
                     device=device.name, detail=f"{pending} pending")
        raise TooManyPushes()
    now = ctx.now()
    request = PushRequest(
        public_id=secrets.token_urlsafe(16), user_id=user.id, device_id=device.id,
        status="pending", number=f"{secrets.randbelow(1000):03d}"
        if (ctx.settings.verified_push if verified is None else verified) else "",
        door=origin.door, service=service[:200],
        client_addr=origin.client_addr[:64], created_at=now,
        expires_at=now + timedelta(seconds=timeout or ctx.settings.push_timeout))
    ctx.db.add(request)
    ctx.db.flush()
    audit.record(ctx, origin, "push.start", "ok", username=user.username, device=device.name,
                 detail=service[:120])
    if device.push_subscription:
        webpush.wake_after_commit(ctx, device.push_subscription, request.public_id,
                                  timeout or ctx.settings.push_timeout)
    return request


def well_formed(public_id: str) -> bool:
    """A public id as `start` makes them (token_urlsafe): anything else matches no row, and
    is not sent to the database at all (PostgreSQL refuses a NUL in a string parameter)."""
    return (isinstance(public_id, str) and 0 < len(public_id) <= 32 and public_id.isascii()
            and all(ch.isalnum() or ch in "-_" for ch in public_id))


def find(ctx: Context, user: User, public_id: str) -> PushRequest | None:
    if not well_formed(public_id):
        return None
    request = ctx.db.scalar(select(PushRequest).where(PushRequest.public_id == public_id))
    if request is None or request.user_id != user.id:
        return None
    return request


def _current(ctx: Context, request: PushRequest | None) -> str:
    if request is None:
        return "expired"
    if request.status == "pending" and request.expires_at <= ctx.now():
        _expire_stale(ctx, request.user_id)
        ctx.db.refresh(request)
    return request.status


def status(ctx: Context, user: User, public_id: str) -> str:
    """Where a push stands, for the login page (expiring it when its time is up)."""
    return _current(ctx, find(ctx, user, public_id))


def statuses(ctx: Context, public_ids: list[str]) -> dict[str, str]:
    """The status of many pushes in one query (the RADIUS door's waiter)."""
    if not public_ids:
        return {}
    now = ctx.now()
    rows = ctx.db.execute(select(PushRequest.public_id, PushRequest.status,
                                 PushRequest.expires_at)
                          .where(PushRequest.public_id.in_(public_ids))).all()
    return {pid: ("expired" if st == "pending" and exp <= now else st)
            for pid, st, exp in rows}


def answered_since(ctx: Context, since_row: int) -> dict[str, str]:
    """Pushes from row `since_row` on that are no longer pending (answered, expired by a
    login's wait, used), by public id: what a poller of many waits needs (the RADIUS door's,
    the push event stream's), at a cost that does not grow with the number of waits (the
    pending rows are skipped inside the database, by a primary key range scan, and never
    fetched)."""
    rows = ctx.db.execute(select(PushRequest.public_id, PushRequest.status)
                          .where(PushRequest.id >= since_row,
                                 PushRequest.status != "pending")).all()
    return {public_id: status for public_id, status in rows}


def complete(ctx: Context, origin: Origin, user: User, public_id: str, *,
             action: str = "factor") -> bool:
    """Use an approved push for the login it was sent for: true once, false ever after.
    Like a good passcode, it resets the failure count and is audited as the second factor.
    A user locked since the push was sent (failures at another door) is not let in by it."""
    request = find(ctx, user, public_id)
    if request is None:
        return False
    ctx.db.flush()
    ctx.db.refresh(user)
    if lockout.is_locked(user, ctx.now()):
        audit.record(ctx, origin, action, "locked", username=user.username, detail="push")
        return False
    if is_blocked(ctx, user):  # a push was reported as fraud since this one was approved
        audit.record(ctx, origin, action, "blocked", username=user.username, detail="push")
        return False
    used = ctx.db.execute(update(PushRequest)
                          .where(PushRequest.id == request.id,
                                 PushRequest.status == "approved")
                          .values(status="used")
                          .execution_options(synchronize_session=False)).rowcount == 1
    if not used:
        return False
    ctx.db.refresh(request)
    device = ctx.db.get(Device, request.device_id)
    lockout.reset(ctx, user)
    ctx.db.refresh(user)
    audit.record(ctx, origin, action, "ok", username=user.username,
                 device=device.name if device else "", detail="push")
    return True


def finish(ctx: Context, origin: Origin, user: User, public_id: str, *,
           give_up: bool = False, action: str = "factor") -> PushOutcome:
    """Finish the login a push was sent for, the same way at every door.

    An approved push is used here (`complete`): "done", once. Otherwise the outcome says why
    not, with one message: a locked user is told so whatever the push's status; a fraud block
    is told unless this very push is the fraud report. A push still pending stays pending,
    unless the login stopped waiting (`give_up`, the VPN door's wait ran out): then it is
    expired for good, so a late approval lets nobody in."""
    request = find(ctx, user, public_id)
    state = _current(ctx, request)
    device = ctx.db.get(Device, request.device_id) if request is not None else None
    if state == "pending":
        if not give_up:
            return PushOutcome("pending", MESSAGES["pending"], request, device)
        expire(ctx, public_id)
        state = "expired"
    if state == "approved":
        if complete(ctx, origin, user, public_id, action=action):
            return PushOutcome("done", MESSAGES["approved"], request, device)
        state = "used"
    if lockout.is_locked(user, ctx.now()):
        return PushOutcome("locked", _(lockout.LOCKED_MESSAGE), request, device)
    if is_blocked(ctx, user) and state != "fraud":
        return PushOutcome("blocked", _(BLOCKED), request, device)
    return PushOutcome(state, MESSAGES.get(state, MESSAGES["expired"]), request, device)
