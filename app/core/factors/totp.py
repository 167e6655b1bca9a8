"""6-digit TOTP passcodes (RFC 6238: SHA1, 30 s) from any standard authenticator app."""

from __future__ import annotations

import base64
import hmac
import struct
from typing import TYPE_CHECKING

import pyotp
from sqlalchemy import bindparam, or_, update

from app.core.factors.base import Check, Verdict
from app.db import Prepared
from app.models import Device

if TYPE_CHECKING:
    from app.core.context import Context
    from app.core.subjects import DeviceRef, Subject
    from app.models import User

DIGITS = 6
PERIOD = 30
# Authenticator apps and the companion app (which shows passcodes too).
PASSCODE_KINDS = ("totp", "push")
_D = Device.__table__
_CLAIM = Prepared(update(_D)
                  .where(_D.c.id == bindparam("device_id"),
                         or_(_D.c.last_step.is_(None), _D.c.last_step < bindparam("step")))
                  .values(last_step=bindparam("step"), last_used_at=bindparam("now")))


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def device_secret(ctx: Context, device: Device | DeviceRef) -> str:
    return ctx.keys.decrypt(device.secret_enc).decode()


def _key(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)


def hotp(key: bytes, step: int) -> str:
    """RFC 4226 with SHA1 and 6 digits (the same codes as pyotp; a third of its cost)."""
    digest = hmac.digest(key, struct.pack(">Q", step), "sha1")
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10 ** DIGITS:0{DIGITS}d}"


def matching_step(secret: str, code: str, now: float, drift: int) -> int | None:
    """The time step whose code equals `code`, within ±drift steps of now."""
    key = _key(secret)
    current = int(now) // PERIOD
    found = None
    for step in range(current - drift, current + drift + 1):
        # Check every step so the time taken does not depend on which one matched.
        if hmac.compare_digest(hotp(key, step), code) and found is None:
            found = step
    return found


def claim(ctx: Context, device_id: int, step: int) -> bool:
    """Record `step` as used by the device, atomically: false when this or a later step was used
    already. One conditional UPDATE, so two requests (or two nodes, or two requests in one
    batch) racing with one code cannot both win. ORM objects of the device are not refreshed."""
    result = _CLAIM.execute(ctx.db.connection(),
                            {"device_id": device_id, "step": step, "now": ctx.now()})
    return result.rowcount == 1


def claim_step(ctx: Context, device: Device, step: int) -> bool:
    """`claim` for an ORM device, which is refreshed when the claim wins."""
    ctx.db.flush()
    if claim(ctx, device.id, step):
        ctx.db.refresh(device)
        return True
    return False


class TotpFactor:
    name = "totp"

    def accepts(self, response: str) -> bool:
        return len(response) == DIGITS and response.isdigit()


    def verify(self, ctx: Context, user: User | Subject, device: Device | DeviceRef | None,
               response: str) -> Check:
        """`user` and `device` may be ORM objects or their plain forms (subjects.Subject); the
        claim is one UPDATE either way and ORM objects are left for the caller to refresh."""
        candidates = [device] if device is not None else [d for d in user.devices if d.active]
        for dev in candidates:
            if dev.kind not in PASSCODE_KINDS or dev.user_id != user.id:
                continue
            step = matching_step(device_secret(ctx, dev), response, ctx.clock(),
                                 ctx.settings.totp_drift_steps)
            if step is not None:
                verdict = Verdict.OK if claim(ctx, dev.id, step) else Verdict.REPLAY
                return Check(verdict, dev, step)
        return Check(Verdict.WRONG, device)
