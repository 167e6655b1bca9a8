"""6-digit TOTP passcodes (RFC 6238: SHA1, 30 s) from any standard authenticator app."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import pyotp
from sqlalchemy import or_, update

from app.core.factors.base import Check, Verdict
from app.models import Device

if TYPE_CHECKING:
    from app.core.context import Context
    from app.models import User

DIGITS = 6
PERIOD = 30
# Authenticator apps and the companion app (which shows passcodes too).
PASSCODE_KINDS = ("totp", "push")


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def device_secret(ctx: Context, device: Device) -> str:
    return ctx.keys.decrypt(device.secret_enc).decode()


def matching_step(secret: str, code: str, now: float, drift: int) -> int | None:
    """The time step whose code equals `code`, within ±drift steps of now."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(now) // PERIOD
    found = None
    for step in range(current - drift, current + drift + 1):
        # Check every step so the time taken does not depend on which one matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


def claim_step(ctx: Context, device: Device, step: int) -> bool:
    """Record `step` as used, atomically: false when this or a later step was used already.

    One conditional UPDATE, so two requests (or two nodes) racing with one code cannot both win.
    """
    result = ctx.db.execute(
        update(Device)
        .where(Device.id == device.id, or_(Device.last_step.is_(None), Device.last_step < step))
        .values(last_step=step, last_used_at=ctx.now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        ctx.db.refresh(device)
        return True
    return False


class TotpFactor:
    name = "totp"

    def accepts(self, response: str) -> bool:
        return len(response) == DIGITS and response.isdigit()

    def start(self, ctx: Context, user: User, device: Device | None) -> None:
        return None

    def verify(self, ctx: Context, user: User, device: Device | None, response: str) -> Check:
        candidates = [device] if device is not None else [d for d in user.devices if d.active]
        for dev in candidates:
            if dev.kind not in PASSCODE_KINDS or dev.user_id != user.id:
                continue
            step = matching_step(device_secret(ctx, dev), response, ctx.clock(),
                                 ctx.settings.totp_drift_steps)
            if step is not None:
                return Check(Verdict.OK if claim_step(ctx, dev, step) else Verdict.REPLAY, dev)
        return Check(Verdict.WRONG, device)
