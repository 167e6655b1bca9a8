"""Challenge mode: after the password, an Access-Challenge asks for the second factor; its
State is ours (a keyed hash of it is stored), single use, bound to the user and the client,
and expires after five minutes.

A push chosen in challenge mode is a Verified Push: a second Access-Challenge shows its number
(`ask_number`), its State remembers the push, and the NAS's next Access-Request with that State
waits for the phone's answer (the person types the number in the app, then OK on the VPN)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update

from app.core import audit, devices, push
from app.core.context import Context, Origin
from app.core.radius_auth.decision import ACTION, AccessRequest, Decision, Outcome
from app.i18n import N_, _
from app.models import Device, PushRequest, RadiusChallenge, User

CHALLENGE_TTL_SECONDS = 300
STATE_PURPOSE = "radius-state"


def _state_hash(ctx: Context, state: bytes) -> bytes:
    return ctx.keys.keyed_hash(STATE_PURPOSE, state.hex())


def _prompt(user: User) -> str:
    names = [d.name for d in devices.vpn_devices(user)]  # a security key needs a browser
    if not names and devices.active_devices(user):
        return _("A security key or passkey cannot be used here: add a Mobile phone or Tablet "
                 "in the 2FA portal to sign in to the VPN.")
    if not names:
        return _("You have no 2FA device yet: add one in the 2FA portal (with a recovery "
                 "passcode from the recovery portal), then enter its 6-digit passcode.")
    separator = _(", ")
    pushes = [_("%(number)s to push to %(device)s", number=i, device=d.name)
              for i, d in enumerate(push.push_devices(user), 1)]
    if pushes:
        return _("Enter a passcode or %(pushes)s (6-digit passcode from %(devices)s).",
                 pushes=separator.join(pushes), devices=separator.join(names))
    return _("Enter a 6-digit passcode from %(devices)s.", devices=separator.join(names))


PUSH_NUMBER = N_("Push sent to %(device)s. In the UM 2FA app, enter %(number)s and approve, "
                 "then press OK here (or enter a passcode instead).")


def _new_state(ctx: Context, req: AccessRequest, user: User, push_id: str | None = None) -> bytes:
    state = secrets.token_bytes(16)
    now = ctx.now()
    ctx.db.add(RadiusChallenge(state_hash=_state_hash(ctx, state), user_id=user.id,
                               client_name=req.client.label, created_at=now,
                               expires_at=now + timedelta(seconds=CHALLENGE_TTL_SECONDS),
                               push_id=push_id))
    return state


def ask(ctx: Context, origin: Origin, req: AccessRequest, user: User) -> Decision:
    """The password was right: ask for the second factor under a fresh State."""
    state = _new_state(ctx, req, user)
    audit.record(ctx, origin, ACTION, "challenge", username=user.username,
                 detail="password ok, second factor asked")
    return Decision(Outcome.CHALLENGE, _prompt(user), reason="challenge", state=state)


def ask_number(ctx: Context, origin: Origin, req: AccessRequest, user: User,
               request: PushRequest, device: Device) -> Decision:
    """A Verified Push was sent: show its number under a fresh State that waits for it."""
    state = _new_state(ctx, req, user, push_id=request.public_id)
    audit.record(ctx, origin, ACTION, "challenge", username=user.username, device=device.name,
                 detail="Verified Push sent, its number shown")
    return Decision(Outcome.CHALLENGE,
                    _(PUSH_NUMBER, device=device.name, number=request.number),
                    reason="verified push", state=state)


def redeem(ctx: Context, req: AccessRequest) -> tuple[User | None, str, str]:
    """The user an Access-Challenge was answered for, the answer as a factor ("1" is "push1")
    and the push the State waits for (""); None when the State is not ours, expired, used, or
    issued to another user or client. The State is used up whatever the answer."""
    now = ctx.now()
    row = ctx.db.scalar(select(RadiusChallenge).where(
        RadiusChallenge.state_hash == _state_hash(ctx, req.state or b"")))
    user = ctx.db.get(User, row.user_id) if row is not None else None
    valid = (row is not None and user is not None and row.client_name == req.client.label
             and user.username == req.username.strip().lower() and row.expires_at > now)
    if valid:
        valid = ctx.db.execute(
            update(RadiusChallenge)
            .where(RadiusChallenge.id == row.id, RadiusChallenge.used_at.is_(None))
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount == 1
    if not valid or user is None or row is None:
        return None, "", ""
    answer = (req.password or "").strip()
    if answer.isdigit() and len(answer) == 1:
        answer = f"push{answer}"
    return user, answer, row.push_id or ""


def purge(ctx: Context) -> int:
    """Delete challenge States that expired a minute ago or more."""
    cutoff = ctx.now() - timedelta(seconds=60)
    return ctx.db.execute(delete(RadiusChallenge).where(RadiusChallenge.expires_at < cutoff)
                          .execution_options(synchronize_session=False)).rowcount or 0
