"""Push at the VPN door: send it (one per login: the door answers retransmissions from its
cache), and give the final answer once the door's wait for the phone has ended.

A VPN client has no screen for a Verified Push number, so VPN pushes are plain approve/deny
(the phone says it is a VPN login). The waiting happens in the door (radius/push_wait.py), on
its event loop, never in a thread; `push_answers` is what its poller reads.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.core import push, users
from app.core.context import Context, Origin
from app.core.radius_auth.decision import (
    CHALLENGE_GONE,
    PASSCODE_EXAMPLE,
    AccessRequest,
    Decision,
    Outcome,
    finish,
    origin_of,
    unavailable,
)
from app.core.services import CoreServices
from app.db import UNAVAILABLE as DATABASE_UNAVAILABLE
from app.models import Device, PushRequest, User

log = logging.getLogger("um2fa.radius")

PUSH_UNAVAILABLE = ("You have no device that can receive a push; append your 6-digit "
                    "passcode, " + PASSCODE_EXAMPLE)
PUSH_UNAVAILABLE_ALONE = "You have no device that can receive a push; enter your 6-digit passcode."
PUSH_SENT = "Push sent. Approve it in the UM 2FA app."


def send(ctx: Context, origin: Origin, req: AccessRequest, user: User,
         device: Device | None) -> Decision:
    """Send the push; the door waits for its answer and then calls `finish_push`."""
    if device is None:
        message = (PUSH_UNAVAILABLE.format(d=req.client.delimiter)
                   if req.client.mode == "append" else PUSH_UNAVAILABLE_ALONE)
        return finish(ctx, origin, req, Outcome.REJECT, message, user=user,
                      reason="no push device")
    try:
        request = push.start(ctx, origin, user, device, service=f"VPN ({req.client.name})",
                             timeout=req.client.push_timeout, verified=False)
    except push.PushError as exc:
        return finish(ctx, origin, req, Outcome.REJECT, str(exc), user=user,
                      reason="push refused")
    return Decision(Outcome.PENDING, PUSH_SENT, reason="push sent", push_id=request.public_id,
                    push_row=request.id, push_timeout=req.client.push_timeout)


def push_answers(services: CoreServices, since_row: int) -> dict[str, str]:
    """Pushes from row `since_row` on that are no longer pending (answered, expired by a
    login's wait, used): what the door's poller needs, at a cost that does not grow with the
    number of logins waiting (the pending rows are skipped inside the database, by a primary
    key range scan, and never fetched)."""
    with services.context() as ctx:
        rows = ctx.db.execute(select(PushRequest.public_id, PushRequest.status)
                              .where(PushRequest.id >= since_row,
                                     PushRequest.status != "pending")).all()
    return dict(rows)


def finish_push(services: CoreServices, req: AccessRequest, push_id: str) -> Decision:
    """The final answer to a login that waited for a push (core's `push.finish` decides):
    accept once if it was approved, else reject with why. The wait is over, so a push still
    pending is expired for good."""
    try:
        with services.context() as ctx:
            origin = origin_of(req)
            user = users.find(ctx, req.username)
            if user is None:
                return finish(ctx, origin, req, Outcome.REJECT, CHALLENGE_GONE,
                              reason="push: user gone")
            outcome = push.finish(ctx, origin, user, push_id, give_up=True)
            if outcome.ok:
                name = outcome.device.name if outcome.device else "push"
                return finish(ctx, origin, req, Outcome.ACCEPT,
                              f"Success. Logged in with a push to {name}.", user=user,
                              reason="push", device=name)
            return finish(ctx, origin, req, Outcome.REJECT, outcome.message, user=user,
                          reason=f"push {outcome.status}")
    except DATABASE_UNAVAILABLE as exc:
        log.error("database unavailable for a RADIUS push answer: %s", type(exc).__name__)
        return unavailable(services.keys, req, "database unreachable while finishing a push",
                           "database unavailable")
