"""The passcode check every door meets: a typed 6-digit or 9-digit passcode against the user's
devices and recovery passcodes, with lockout (app/core/lockout.py), replay and audit.

Doors call `verify_passcode` after the password step (app/core/signin.py) and turn the
`PasscodeOutcome` into their protocol's answer.

A recovery passcode is an enrolment credential only (`PasscodeOutcome.enrolment_only`): it
opens "Add a new device" in the portal or the SSO prompt, never "My Settings & Devices", the
end of a login or a sign-in to a service provider; the VPN refuses it unverified
(`is_recovery_passcode`, app/core/radius_auth/modes.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.core import audit, browser_sessions, lockout
from app.core.context import Context, Origin
from app.core.factors import FACTORS, Check, Verdict
from app.core.subjects import DeviceRef, Subject
from app.core.texts import Translated
from app.i18n import N_, _
from app.models import Device, User

# Translated when read (`MESSAGES[verdict]`): the RADIUS door's `use_language` applies.
MESSAGES = Translated({
    Verdict.OK: N_("Success."),
    Verdict.WRONG: N_("Incorrect passcode. Please try again."),
    Verdict.REPLAY: N_("That passcode has already been used. Wait for the next one and try "
                       "again."),
    Verdict.EXPIRED: N_("That recovery passcode has expired. Get a new one from the recovery "
                        "portal."),
})
# Shown on "Add a new device" after a recovery passcode (the portal and the SSO prompt).
# (a msgid: show it with `_(RECOVERY_ADDS_A_DEVICE)`)
RECOVERY_ADDS_A_DEVICE = N_("Your recovery passcode lets you add a new device, nothing else. "
                            "Once it is added, “Continue to Login” and sign in with it.")


@dataclass(frozen=True)
class ActivationProof:
    """A device was just activated in this browser session with the code of time step `step`
    (app/core/devices.py: activate claims that step). Its first login may use the same step's
    code once: the activation proved the same thing, so the person does not wait for the next
    code. The door keeps it in the session and passes it once (`verify_passcode`)."""

    device_id: int
    step: int


@dataclass
class PasscodeOutcome:
    verdict: Verdict
    locked: bool = False
    factor: str = ""
    # The device that verified (or was tried): an ORM Device for an ORM user, else a DeviceRef.
    device: Device | DeviceRef | None = None
    # Failures left before the lock, when this one was counted (for "2 attempts left").
    attempts_left: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK and not self.locked

    @property
    def enrolment_only(self) -> bool:
        """A recovery passcode: it authenticates "Add a new device" and nothing else."""
        return self.ok and self.factor == "recovery"

    @property
    def message(self) -> str:
        """The one text every door shows (the portal, the SSO prompt, the VPN's Reply-Message):
        with the warning when the lock is near."""
        if self.locked:
            return _(lockout.LOCKED_MESSAGE)
        warning = lockout.attempts_left_warning(self.attempts_left)
        if not warning:
            return MESSAGES[self.verdict]
        return _("%(verdict)s %(warning)s", verdict=MESSAGES[self.verdict], warning=warning)


def normalise_passcode(code: str) -> str:
    return "".join(code.split()).replace("-", "")


def is_recovery_passcode(code: str) -> bool:
    """The typed text has the form of a recovery passcode (9 digits), verified or not."""
    return FACTORS["recovery"].accepts(normalise_passcode(code))


def verify_passcode(ctx: Context, origin: Origin, user: User | Subject, code: str, *,
                    device_id: int | None = None, allow_recovery: bool = True,
                    action: str = "factor",
                    activation: ActivationProof | None = None) -> PasscodeOutcome:
    """Check a typed passcode: 6 digits against the chosen device (or any device of the user),
    9 digits as a recovery passcode. `activation`: this session activated a device just now;
    a replay of exactly that step on that device (nothing used since) is its first login,
    audited as such (detail "totp:activation").

    `user` is an ORM User (the web doors) or a subjects.Subject (the RADIUS door's hot path, read
    without the ORM); the checks and writes are the same plain statements for both: one
    conditional UPDATE claims the TOTP step, one UPDATE counts a failure (or resets the count
    after a success, when it is not zero), and the audit records go out in one INSERT with the
    session's others. An ORM user and device get their changed attributes expired, so they
    read the new values."""
    if isinstance(user, User):
        ctx.db.flush()
        # the ORM user may have been read a while ago: its failure count is cleared regardless
        outcome = _verify(ctx, origin, Subject.of(user), code, device_id, allow_recovery, action,
                          reset_always=True, activation=activation)
        ctx.db.expire(user, ["failed_factor_count", "locked_at", "locked_until",
                             "lockout_level"])
        if outcome.device is not None:
            device = ctx.db.get(Device, outcome.device.id)
            if device is not None:
                ctx.db.expire(device, ["last_step", "last_used_at"])
            outcome.device = device
        return outcome
    return _verify(ctx, origin, user, code, device_id, allow_recovery, action,
                   activation=activation)


def _activation_covers(ctx: Context, check: Check, activation: ActivationProof | None) -> bool:
    """The replayed step is the one the activation claimed, on that device, and no later step
    was used since."""
    if (activation is None or check.verdict is not Verdict.REPLAY or check.device is None
            or check.device.id != activation.device_id or check.step != activation.step):
        return False
    last = ctx.db.scalar(select(Device.last_step).where(Device.id == activation.device_id))
    return last == activation.step


def _verify(ctx: Context, origin: Origin, subject: Subject, code: str, device_id: int | None,
            allow_recovery: bool, action: str, reset_always: bool = False,
            activation: ActivationProof | None = None) -> PasscodeOutcome:
    code = normalise_passcode(code)
    if lockout.is_locked(subject, ctx.now()):
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
    detail = factor_name
    if _activation_covers(ctx, check, activation):
        check, detail = Check(Verdict.OK, check.device, check.step), "totp:activation"
    if check.verdict is Verdict.OK:
        if subject.failed_factor_count or reset_always:  # a Subject was read just now
            lockout.reset(ctx, subject)
        audit.record(ctx, origin, action, "ok", username=subject.username,
                     device=used.name if used else factor_name, detail=detail)
        if factor_name == "recovery":  # a recovery: every other session of the user ends
            browser_sessions.end_for_user(ctx, subject.id, keep=origin.session_id)
        return PasscodeOutcome(check.verdict, factor=factor_name, device=used)
    failure = lockout.count_failure(ctx, origin, subject)
    audit.record(ctx, origin, action, "fail", username=subject.username,
                 device=used.name if used else "", detail=f"{factor_name}:{check.verdict.value}")
    return PasscodeOutcome(check.verdict, locked=failure.locked, factor=factor_name, device=used,
                           attempts_left=failure.attempts_left)
