"""The phone's side of a push: what is waiting for it, its signed answer, a fraud report."""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.core import audit, device_keys, lockout, notify
from app.core.after_commit import after_commit
from app.core.context import Context, Origin
from app.core.push.errors import (
    ALREADY_ANSWERED,
    MESSAGES,
    AlreadyAnswered,
    BadAnswerSignature,
    PushError,
    UnknownRequest,
)
from app.core.push.lifecycle import well_formed
from app.i18n import _
from app.models import Device, PushRequest, User

log = logging.getLogger("um2fa.push")

DECISIONS = ("approve", "deny", "fraud")
FINAL = {"approved": "approved", "deny": "denied", "fraud": "fraud"}


def pending_for(ctx: Context, device: Device) -> list[PushRequest]:
    return list(ctx.db.scalars(select(PushRequest).where(
        PushRequest.device_id == device.id, PushRequest.status == "pending",
        PushRequest.expires_at > ctx.now()).order_by(PushRequest.id)))


def request_for_device(ctx: Context, device: Device, public_id: str) -> PushRequest:
    if not well_formed(public_id):
        raise UnknownRequest("No such request for this device.")
    request = ctx.db.scalar(select(PushRequest).where(PushRequest.public_id == public_id))
    if request is None or request.device_id != device.id:
        raise UnknownRequest("No such request for this device.")
    return request


def answer(ctx: Context, origin: Origin, device: Device, public_id: str, decision: str,
           number: str, signature: str) -> str:
    """The phone's answer, signed over the request id, the decision and the typed number.
    Returns the push's new status. A wrong Verified Push number and a denial count toward
    lockout (consecutive denials lock, like wrong passcodes; an approval that is used resets)."""
    if decision not in DECISIONS:
        raise PushError("The decision must be approve, deny or fraud.")
    request = request_for_device(ctx, device, public_id)
    assert device.public_key is not None
    message = device_keys.answer_message(public_id, decision, number)
    if not device_keys.verify(device.public_key, message, signature):
        audit.record(ctx, origin, "push.answer", "bad-signature", username=device.user.username,
                     device=device.name)
        raise BadAnswerSignature("The answer's signature does not match this device's key.")
    now = ctx.now()
    if request.status != "pending" or request.expires_at <= now:
        raise AlreadyAnswered(MESSAGES["expired"] if request.status in ("pending", "expired")
                              else _(ALREADY_ANSWERED))
    new = FINAL["approved" if decision == "approve" else decision]
    if decision == "approve" and request.number and not hmac.compare_digest(
            number.strip().encode(), request.number.encode()):
        new = "mismatch"
    moved = ctx.db.execute(update(PushRequest)
                           .where(PushRequest.id == request.id,
                                  PushRequest.status == "pending")
                           .values(status=new, answered_at=now,
                                   answer_signature=device_keys.b64url_decode(signature))
                           .execution_options(synchronize_session=False)).rowcount == 1
    if not moved:
        raise AlreadyAnswered(_(ALREADY_ANSWERED))
    _announce_after_commit(ctx, [public_id])
    ctx.db.refresh(request)
    user = device.user
    audit.record(ctx, origin, "push.answer", new, username=user.username, device=device.name,
                 detail=f"push for {request.door}")
    if new in ("mismatch", "denied"):  # a denial is a failed second factor too (issue 13)
        lockout.register_failure(ctx, origin, user)
    if new == "fraud":
        _report_fraud(ctx, origin, user, device, request)
    return new


def _announce_after_commit(ctx: Context, public_ids: list[str]) -> None:
    """Push fan-out (app/core/push_events.py): waiting nodes look in the database at once."""
    if not public_ids:
        return
    events = ctx.push_events

    def announce() -> None:
        for public_id in public_ids:
            events.answered(public_id)

    after_commit(ctx.db, announce)


def _report_fraud(ctx: Context, origin: Origin, user: User, device: Device,
                  request: PushRequest) -> None:
    until = ctx.now() + timedelta(minutes=ctx.settings.push_fraud_block_minutes)
    ctx.db.execute(update(User).where(User.id == user.id).values(push_blocked_until=until)
                   .execution_options(synchronize_session=False))
    # The block covers the pushes already waiting (likely the same attacker's): a later tap on
    # "Approve" must not let one of them in.
    denied = ctx.db.execute(update(PushRequest)
                            .where(PushRequest.user_id == user.id,
                                   PushRequest.status == "pending")
                            .values(status="denied", answered_at=ctx.now())
                            .returning(PushRequest.public_id)
                            .execution_options(synchronize_session=False)).scalars().all()
    _announce_after_commit(ctx, denied)
    ctx.db.refresh(user)
    audit.record(ctx, origin, "push.fraud", "blocked", username=user.username,
                 device=device.name,
                 detail=f"pushes paused until {until:%Y-%m-%d %H:%M} UTC; login from "
                        f"{request.client_addr or 'unknown'} via {request.door}")
    log.warning(json.dumps({"alert": "push reported as fraud", "user": user.username,
                            "device": device.name, "door": request.door,
                            "login_from": request.client_addr,
                            "service": request.service}))
    notify.fraud_reported(ctx, origin, user, request, until)


def describe(request: PushRequest, username: str) -> dict:
    """What the phone shows about a request (the Verified Push number is typed, not shown)."""
    return {"id": request.public_id, "username": username, "door": request.door,
            "service": request.service,
            "client_addr": request.client_addr,
            "created_at": _iso(request.created_at), "expires_at": _iso(request.expires_at),
            "verified": bool(request.number)}


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
