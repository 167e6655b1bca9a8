"""The 2FA steps every door drives: the password, then a second factor, with lockout and audit.

Doors call `sign_in` and `verify_passcode` and turn the outcome into their protocol's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update

from app.core import audit, users
from app.core.context import Context, Origin
from app.core.factors import FACTORS, Check, Verdict
from app.models import Device, User

MESSAGES = {
    Verdict.OK: "Success.",
    Verdict.WRONG: "Incorrect passcode. Please try again.",
    Verdict.REPLAY: "That passcode has already been used. Wait for the next one and try again.",
    Verdict.EXPIRED: "That recovery passcode has expired. Get a new one from the recovery portal.",
}
LOCKED_MESSAGE = ("Your account is locked after too many failed attempts. "
                  "Please contact the IT help desk.")
SIGN_IN_FAILED = "Incorrect UMPASS ID or password, or the account cannot sign in."


@dataclass
class PasscodeOutcome:
    verdict: Verdict
    locked: bool = False
    factor: str = ""
    device: Device | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK and not self.locked

    @property
    def message(self) -> str:
        return LOCKED_MESSAGE if self.locked else MESSAGES[self.verdict]


def normalise_passcode(code: str) -> str:
    return "".join(code.split()).replace("-", "")


def sign_in(ctx: Context, origin: Origin, username: str, password: str) -> User | None:
    """The primary (password) step. Unknown, locked and wrong-password users all get None,
    after the same amount of work."""
    return sign_in_first(ctx, origin, username, (password,))[0]


def sign_in_first(ctx: Context, origin: Origin, username: str,
                  readings: Sequence[str]) -> tuple[User | None, int]:
    """The primary step when what the user typed can be read more than one way (the VPN door
    tries "password,passcode" split, then whole): the first reading that is the password wins
    and its index is returned. Every reading is tried for unknown users too; one audit record."""
    user = users.find(ctx, username)
    stored = user.password_hash if user else None
    matched = -1
    for index, password in enumerate(readings):
        if ctx.directory.check_password(username, stored, password):
            matched = index
            break
    ok = matched >= 0
    name = user.username if user else username.strip().lower()[:64]
    if user is None or not ok or user.is_locked:
        reason = "unknown user" if user is None else ("locked" if user.is_locked and ok
                                                       else "wrong password")
        audit.record(ctx, origin, "sign_in", "fail", username=name, detail=reason)
        return None, -1
    audit.record(ctx, origin, "sign_in", "ok", username=name)
    return user, matched


def _register_failure(ctx: Context, origin: Origin, user: User) -> bool:
    """Count one failed second factor; true when this failure locks the user."""
    ctx.db.execute(update(User).where(User.id == user.id)
                   .values(failed_factor_count=User.failed_factor_count + 1)
                   .execution_options(synchronize_session=False))
    ctx.db.refresh(user)
    if user.failed_factor_count < ctx.settings.lockout_threshold or user.locked_at is not None:
        return False
    locked = ctx.db.execute(update(User).where(User.id == user.id, User.locked_at.is_(None))
                            .values(locked_at=ctx.now())
                            .execution_options(synchronize_session=False)).rowcount == 1
    ctx.db.refresh(user)
    if locked:
        audit.record(ctx, origin, "lockout", "locked", username=user.username,
                     detail=f"{user.failed_factor_count} consecutive second-factor failures")
    return locked


def verify_passcode(ctx: Context, origin: Origin, user: User, code: str, *,
                    device_id: int | None = None, allow_recovery: bool = True,
                    action: str = "factor") -> PasscodeOutcome:
    """Check a typed passcode: 6 digits against the chosen device (or any device of the user),
    9 digits as a recovery passcode."""
    code = normalise_passcode(code)
    if user.is_locked:
        audit.record(ctx, origin, action, "locked", username=user.username)
        return PasscodeOutcome(Verdict.WRONG, locked=True)
    device = None
    if device_id is not None:
        device = ctx.db.get(Device, device_id)
        if device is None or device.user_id != user.id or not device.active:
            device = None
            code = ""  # a device that is not the user's never verifies
    names = [n for n in ("totp", "recovery") if allow_recovery or n != "recovery"]
    factor = next((FACTORS[n] for n in names if FACTORS[n].accepts(code)), None)
    factor_name = factor.name if factor else ""
    if factor is None or (device_id is not None and device is None):
        check = Check(Verdict.WRONG, device)
    else:
        check = factor.verify(ctx, user, device if factor_name == "totp" else None, code)
    used = check.device
    if check.verdict is Verdict.OK:
        ctx.db.execute(update(User).where(User.id == user.id).values(failed_factor_count=0)
                       .execution_options(synchronize_session=False))
        ctx.db.refresh(user)
        audit.record(ctx, origin, action, "ok", username=user.username,
                     device=used.name if used else factor_name, detail=factor_name)
        return PasscodeOutcome(check.verdict, factor=factor_name, device=used)
    locked = _register_failure(ctx, origin, user)
    audit.record(ctx, origin, action, "fail", username=user.username,
                 device=used.name if used else "", detail=f"{factor_name}:{check.verdict.value}")
    return PasscodeOutcome(check.verdict, locked=locked, factor=factor_name, device=used)
