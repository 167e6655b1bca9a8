"""Push at the VPN door: send it (one per login: the door answers retransmissions from its
cache), and give the final answer once the door's wait for the phone has ended.

Push fatigue: every VPN push counts until one is approved (app/core/attempts.py, shared by the
nodes); after `radius_push_fatigue_limit` in a row that were denied or went unanswered, no push
is sent until `radius_push_fatigue_window_seconds` after the last one: the login is rejected at
once with a Reply-Message that says to wait or use a passcode. An approval resets the count, so
a person who approves is never slowed; a denial also counts toward the lockout
(app/core/push/answers.py).

In append and second-factor modes the VPN client has no screen for a Verified Push number, so
those pushes are plain approve/deny (the phone says it is a VPN login). Challenge mode sends a
Verified Push and shows its number in a second Access-Challenge (challenge.ask_number); the
answer to it waits for the phone (`follow`). The waiting happens in the door
(app/push_wait/waiter.py), on its event loop, never in a thread; `push_answers` is what its poller
reads.
"""

from __future__ import annotations

import logging

from app.core import push, users
from app.core.context import Context, Origin
from app.core.radius_auth import challenge
from app.core.radius_auth.decision import (
    CHALLENGE_GONE,
    AccessRequest,
    Decision,
    Outcome,
    failure_text,
    finish,
    origin_of,
    speaking,
    unavailable,
)
from app.core.radius_auth.guessing import TOLERANCE, wait_text
from app.core.services import CoreServices
from app.db import UNAVAILABLE as DATABASE_UNAVAILABLE
from app.i18n import N_, _
from app.models import Device, User

log = logging.getLogger("um2fa.radius")

PUSH_UNAVAILABLE_ALONE = N_("You have no device that can receive a push; enter your 6-digit "
                            "passcode.")
PUSH_SENT = N_("Push sent. Approve it in the UM 2FA app.")
PUSH_FATIGUE = N_("Too many pushes were denied or went unanswered, so no push is sent for now. "
                  "Wait %(wait)s and try again, or use a passcode.")


def _fatigue_key(user: User) -> str:
    return f"radius-push:{user.id}"


def _fatigue_wait(ctx: Context, user: User) -> float:
    """Seconds until a push may be sent again (0: now)."""
    settings = ctx.settings
    [count] = ctx.attempts.get(ctx, [_fatigue_key(user)])
    if count.failures < settings.radius_push_fatigue_limit:
        return 0.0
    left = count.last + settings.radius_push_fatigue_window_seconds - ctx.clock()
    return left if left > TOLERANCE else 0.0


def send(ctx: Context, origin: Origin, req: AccessRequest, user: User,
         device: Device | None) -> Decision:
    """Send the push; the door waits for its answer and then calls `finish_push`. In challenge
    mode, a Verified Push whose number a second Access-Challenge shows."""
    if device is None:
        return finish(ctx, origin, req, Outcome.REJECT,
                      failure_text(req, _(PUSH_UNAVAILABLE_ALONE)), user=user,
                      reason="no push device")
    wait = _fatigue_wait(ctx, user)
    if wait > 0:
        return finish(ctx, origin, req, Outcome.REJECT,
                      _(PUSH_FATIGUE, wait=wait_text(wait)), user=user,
                      reason="push fatigue: too many pushes not approved, none sent")
    verified = req.client.mode == "challenge" and ctx.settings.verified_push
    try:
        request = push.start(ctx, origin, user, device, service=f"VPN ({req.client.label})",
                             timeout=req.client.push_timeout, verified=verified)
    except push.PushError as exc:
        return finish(ctx, origin, req, Outcome.REJECT, str(exc), user=user,
                      reason="push refused")
    ctx.attempts.add(ctx, [_fatigue_key(user)], ctx.settings.radius_push_fatigue_window_seconds)
    if request.number:
        return challenge.ask_number(ctx, origin, req, user, request, device)
    return Decision(Outcome.PENDING, _(PUSH_SENT), reason="push sent", push_id=request.public_id,
                    push_row=request.id, push_timeout=req.client.push_timeout)


def follow(ctx: Context, origin: Origin, req: AccessRequest, user: User,
           push_id: str) -> Decision:
    """The answer to a Verified Push's Access-Challenge: wait for the phone, as long as the
    push has left (the door then calls `finish_push`)."""
    request = push.find(ctx, user, push_id)
    if request is None:
        return finish(ctx, origin, req, Outcome.REJECT, _(CHALLENGE_GONE), user=user,
                      reason="push: gone")
    left = int((request.expires_at - ctx.now()).total_seconds())
    return Decision(Outcome.PENDING, _(PUSH_SENT), reason="push sent", push_id=request.public_id,
                    push_row=request.id,
                    push_timeout=max(0, min(left, req.client.push_timeout)))


def push_answers(services: CoreServices, since_row: int) -> dict[str, str]:
    """What the door's poller needs: `push.answered_since`, in a transaction of its own."""
    with services.context() as ctx:
        return push.answered_since(ctx, since_row)


def finish_push(services: CoreServices, req: AccessRequest, push_id: str) -> Decision:
    """The final answer to a login that waited for a push (core's `push.finish` decides):
    accept once if it was approved, else reject with why. The wait is over, so a push still
    pending is expired for good. In the RADIUS client's language (this runs on a worker
    thread: the language is set here)."""
    with speaking(req, services.settings.default_language):
        return _finish_push(services, req, push_id)


def _finish_push(services: CoreServices, req: AccessRequest, push_id: str) -> Decision:
    try:
        with services.context() as ctx:
            origin = origin_of(req)
            user = users.find(ctx, req.username)
            if user is None:
                return finish(ctx, origin, req, Outcome.REJECT, _(CHALLENGE_GONE),
                              reason="push: user gone")
            outcome = push.finish(ctx, origin, user, push_id, give_up=True)
            if outcome.ok:  # approved: the push fatigue count starts again
                ctx.attempts.clear(ctx, _fatigue_key(user))
                name = outcome.device.name if outcome.device else "push"
                return finish(ctx, origin, req, Outcome.ACCEPT,
                              _("Success. Logged in with a push to %(device)s.", device=name),
                              user=user, reason="push", device=name)
            return finish(ctx, origin, req, Outcome.REJECT, outcome.message, user=user,
                          reason=f"push {outcome.status}")
    except DATABASE_UNAVAILABLE as exc:
        log.error("database unavailable for a RADIUS push answer: %s", type(exc).__name__)
        return unavailable(services.keys, req, "database unreachable while finishing a push",
                           "database unavailable")
