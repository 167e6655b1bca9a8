"""The 2FA steps every door drives: the password, then a second factor, with lockout and audit.

Doors call `sign_in` and `verify_passcode` and turn the outcome into their protocol's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, update

from app.core import audit, provisioning, users
from app.core.context import Context, Origin
from app.core.factors import FACTORS, Check, Verdict
from app.core.users import DeviceRef, Subject
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
    # The device that verified (or was tried): an ORM Device for an ORM user, else a DeviceRef.
    device: Device | DeviceRef | None = None

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
    if ok:  # a directory outside our database (LDAP) creates or refreshes the local row
        found = ctx.directory.lookup(username)
        if found is not None:
            try:
                user = provisioning.sync_user(ctx, origin, found)
            except users.UserError:
                user = None  # a directory username we cannot hold: as unknown
    name = user.username if user else username.strip().lower()[:64]
    if user is None or not ok or user.is_locked:
        reason = "unknown user" if user is None else ("locked" if user.is_locked and ok
                                                       else "wrong password")
        audit.record(ctx, origin, "sign_in", "fail", username=name, detail=reason)
        return None, -1
    audit.record(ctx, origin, "sign_in", "ok", username=name)
    return user, matched


_U = User.__table__
_FAILED = (update(_U).where(_U.c.id == bindparam("user_id"))
           .values(failed_factor_count=_U.c.failed_factor_count + 1)
           .returning(_U.c.failed_factor_count, _U.c.locked_at))
_LOCK = (update(_U).where(_U.c.id == bindparam("user_id"), _U.c.locked_at.is_(None))
         .values(locked_at=bindparam("now")))
_RESET = (update(_U).where(_U.c.id == bindparam("user_id"), _U.c.failed_factor_count != 0)
          .values(failed_factor_count=0))


def _register_failure(ctx: Context, origin: Origin, subject: Subject) -> bool:
    """Count one failed second factor; true when this failure locks the user."""
    conn = ctx.db.connection()
    count, locked_at = conn.execute(_FAILED, {"user_id": subject.id}).one()
    if count < ctx.settings.lockout_threshold or locked_at is not None:
        return False
    locked = conn.execute(_LOCK, {"user_id": subject.id, "now": ctx.now()}).rowcount == 1
    if locked:
        audit.record(ctx, origin, "lockout", "locked", username=subject.username,
                     detail=f"{count} consecutive second-factor failures")
    return locked


def verify_passcode(ctx: Context, origin: Origin, user: User | Subject, code: str, *,
                    device_id: int | None = None, allow_recovery: bool = True,
                    action: str = "factor") -> PasscodeOutcome:
    """Check a typed passcode: 6 digits against the chosen device (or any device of the user),
    9 digits as a recovery passcode.

    `user` is an ORM User (the web doors) or a users.Subject (the RADIUS door's hot path, read
    without the ORM); the checks and writes are the same plain statements for both: one
    conditional UPDATE claims the TOTP step, one UPDATE counts a failure (or resets the count
    after a success, when it is not zero), and the audit records go out in one INSERT with the
    session's others. An ORM user and device get their changed attributes expired, so they
    read the new values."""
    if isinstance(user, User):
        ctx.db.flush()
        # the ORM user may have been read a while ago: its failure count is cleared regardless
        outcome = _verify(ctx, origin, Subject.of(user), code, device_id, allow_recovery, action,
                          reset_always=True)
        ctx.db.expire(user, ["failed_factor_count", "locked_at"])
        if outcome.device is not None:
            device = ctx.db.get(Device, outcome.device.id)
            if device is not None:
                ctx.db.expire(device, ["last_step", "last_used_at"])
            outcome.device = device
        return outcome
    return _verify(ctx, origin, user, code, device_id, allow_recovery, action)


def _verify(ctx: Context, origin: Origin, subject: Subject, code: str, device_id: int | None,
            allow_recovery: bool, action: str, reset_always: bool = False) -> PasscodeOutcome:
    code = normalise_passcode(code)
    if subject.is_locked:
        audit.record(ctx, origin, action, "locked", username=subject.username)
        return PasscodeOutcome(Verdict.WRONG, locked=True)
    device = None
    if device_id is not None:
        device = next((d for d in subject.devices if d.id == device_id and d.active), None)
        if device is None:
            code = ""  # a device that is not the user's never verifies
    names = [n for n in ("totp", "recovery") if allow_recovery or n != "recovery"]
    factor = next((FACTORS[n] for n in names if FACTORS[n].accepts(code)), None)
    factor_name = factor.name if factor else ""
    if factor is None or (device_id is not None and device is None):
        check = Check(Verdict.WRONG, device)
    else:
        check = factor.verify(ctx, subject, device if factor_name == "totp" else None, code)
    used = check.device
    if check.verdict is Verdict.OK:
        if subject.failed_factor_count or reset_always:  # a Subject was read just now
            ctx.db.connection().execute(_RESET, {"user_id": subject.id})
        audit.record(ctx, origin, action, "ok", username=subject.username,
                     device=used.name if used else factor_name, detail=factor_name)
        return PasscodeOutcome(check.verdict, factor=factor_name, device=used)
    locked = _register_failure(ctx, origin, subject)
    audit.record(ctx, origin, action, "fail", username=subject.username,
                 device=used.name if used else "", detail=f"{factor_name}:{check.verdict.value}")
    return PasscodeOutcome(check.verdict, locked=locked, factor=factor_name, device=used)
