"""Enrol, activate, rename, make default and remove second-factor devices."""

from __future__ import annotations

import base64
import binascii
import csv
from datetime import datetime, timedelta
from typing import IO

import pyotp
from sqlalchemy import delete, select

from app.core import audit, browser_sessions, notices, users
from app.core.context import Context, Origin
from app.core.factors import Verdict
from app.core.factors import totp as totp_factor
from app.i18n import N_, _, local, zone
from app.models import Device, User

# msgids: shown with `_(DEVICE_TYPES[kind])` (the web's templates get them translated)
DEVICE_TYPES = {"mobile": N_("Mobile phone"), "tablet": N_("Tablet"),
                "token": N_("Hardware token"),
                "security_key": N_("Security key or passkey")}
PLATFORMS = {"ios": "iOS", "android": "Android", "other": N_("Other")}
# The name "Add a new device" suggests, by type and platform.
SUGGESTED_NAMES = {("mobile", "ios"): N_("iOS mobile phone"),
                   ("mobile", "android"): N_("Android mobile phone"),
                   ("tablet", "ios"): N_("iOS tablet"),
                   ("tablet", "android"): N_("Android tablet"),
                   ("security_key", "other"): N_("Security key")}
# Devices that answer at the VPN door (a passcode or a push); a security key needs a browser.
VPN_KINDS = ("totp", "push")
NAME_MAX = 40


class DeviceError(ValueError):
    """Bad input for a device operation; the message is safe to show."""


class LastDeviceError(DeviceError):
    """Removing the last device needs an explicit confirmation of what follows."""


class HeldError(DeviceError):
    """A device enrolled with a recovery passcode may not remove the others yet."""

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message)
        self.until = until


LAST_DEVICE_UNCONFIRMED = N_("This is your last device. Tick the box to confirm that you "
                             "understand what follows, then click Remove.")


def active_devices(user: User) -> list[Device]:
    return [d for d in user.devices if d.active]


def vpn_devices(user: User) -> list[Device]:
    """The active devices that can answer a VPN sign-in (not security keys: app/core/
    security_keys.py)."""
    return [d for d in active_devices(user) if d.kind in VPN_KINDS]


def default_device(user: User) -> Device | None:
    devices = active_devices(user)
    return next((d for d in devices if d.is_default), devices[0] if devices else None)


def owned_device(ctx: Context, user: User, device_id: int, *, active: bool = True) -> Device:
    device = ctx.db.get(Device, device_id)
    if device is None or device.user_id != user.id or device.active != active:
        raise DeviceError(_("That device was not found."))
    return device


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise DeviceError(_("Please give the device a name."))
    if len(name) > NAME_MAX:
        raise DeviceError(_("A device name has at most %(max)d characters.", max=NAME_MAX))
    return name


def drop_pending(ctx: Context, user: User) -> None:
    """A new enrolment replaces any earlier unfinished (inactive) one."""
    ctx.db.execute(delete(Device).where(Device.user_id == user.id, Device.active.is_(False)))


def new_device(ctx: Context, user: User, secret: str = "", **fields) -> Device:
    """A device row (inactive until activated); `secret` a TOTP seed, kept encrypted (a
    security key has none: its credential is in app/core/security_keys.py)."""
    device = Device(user_id=user.id, secret_enc=ctx.keys.encrypt(secret.encode()),
                    created_at=ctx.now(), **fields)
    ctx.db.add(device)
    ctx.db.flush()
    ctx.db.refresh(user)
    return device


ENROLLED_VIA = ("", "recovery")


def suggested_name(user: User, device_type: str, platform: str) -> str:
    """The name "Add a new device" suggests: the type and platform ("Android mobile phone"),
    with a number when one of the user's active devices has that name already."""
    base = _(SUGGESTED_NAMES.get((device_type, platform), DEVICE_TYPES[device_type]))
    taken = {d.name.casefold() for d in active_devices(user)}
    name, number = base, 1
    while name.casefold() in taken:
        number += 1
        name = _("%(name)s %(number)d", name=base, number=number)[:NAME_MAX]
    return name


def _check_name_free(user: User, device: Device, name: str) -> None:
    """Two devices of one person never share a name: the prompt tells them apart by it."""
    if any(d.name.casefold() == name.casefold() for d in active_devices(user)
           if d.id != device.id):
        raise DeviceError(_("You already have a device named “%(name)s”. Choose another name.",
                            name=name))


def cancel_enrolment(ctx: Context, origin: Origin, user: User) -> None:
    """ "Cancel" in "Add a new device": the device not yet activated is dropped (an activated
    one stays, with its name)."""
    dropped = ctx.db.execute(delete(Device).where(Device.user_id == user.id,
                                                  Device.active.is_(False))).rowcount
    ctx.db.expire(user, ["devices"])
    if dropped:
        audit.record(ctx, origin, "device.enrol_cancel", "ok", username=user.username)


def begin_enrolment(ctx: Context, origin: Origin, user: User, device_type: str,
                    platform: str, *, kind: str = "totp", enrolled_via: str = "") -> Device:
    """A pending (inactive) device with a fresh TOTP secret; earlier pending ones are dropped.
    kind "totp" is any authenticator app, "push" the companion app (activated by its link).
    enrolled_via "recovery": the enrolment was authenticated by a recovery passcode."""
    if enrolled_via not in ENROLLED_VIA:
        raise DeviceError("Unknown way of authenticating the enrolment.")
    if kind not in ("totp", "push"):
        raise DeviceError(_("Choose an app."))
    if device_type not in ("mobile", "tablet"):
        raise DeviceError(_("Choose a Mobile phone or a Tablet."))
    if platform not in ("ios", "android"):
        raise DeviceError(_("Choose iOS or Android."))
    drop_pending(ctx, user)
    device = new_device(ctx, user, totp_factor.new_secret(), device_type=device_type,
                         platform=platform, name=suggested_name(user, device_type, platform),
                         kind=kind,
                         enrolled_via=enrolled_via)
    audit.record(ctx, origin, "device.enrol_start", "ok", username=user.username,
                 detail=f"{device_type}/{platform}/{kind}"
                        + (" via recovery" if enrolled_via else ""))
    return device


def secret_of(ctx: Context, device: Device) -> str:
    return totp_factor.device_secret(ctx, device)


def provisioning_uri(ctx: Context, user: User, device: Device) -> str:
    """otpauth://totp/ with the parameters spelled out (SHA1, 6 digits, 30 s): Duo Mobile,
    Google and Microsoft Authenticator all read it."""
    totp = pyotp.TOTP(secret_of(ctx, device), digits=totp_factor.DIGITS,
                      interval=totp_factor.PERIOD)
    uri = totp.provisioning_uri(name=user.username, issuer_name=ctx.settings.issuer)
    return f"{uri}&algorithm=SHA1&digits={totp_factor.DIGITS}&period={totp_factor.PERIOD}"


def activate(ctx: Context, origin: Origin, user: User, device_id: int, code: str) -> Verdict:
    """The user proves the scan by typing the current code of the pending device."""
    device = owned_device(ctx, user, device_id, active=False)
    code = "".join(code.split())
    step = None
    if totp_factor.TotpFactor().accepts(code):
        step = totp_factor.matching_step(secret_of(ctx, device), code, ctx.clock(),
                                         ctx.settings.totp_drift_steps)
    if step is None or not totp_factor.claim_step(ctx, device, step):
        audit.record(ctx, origin, "device.activate", "fail", username=user.username)
        return Verdict.WRONG
    finish_activation(ctx, origin, user, device)
    return Verdict.OK


def finish_activation(ctx: Context, origin: Origin, user: User, device: Device) -> None:
    """A pending device proved itself (a code, or a security key's registration): active, the
    default when it is the first, audited and told."""
    first = not active_devices(user)
    device.active = True
    device.is_default = first
    mark_enrolled(ctx, user)
    audit.record(ctx, origin, "device.activate", "ok", username=user.username,
                 device=device.name)
    notices.tell(ctx, origin, user, notices.DEVICE_ADDED, device=device)


def rename(ctx: Context, origin: Origin, user: User, device_id: int, name: str) -> Device:
    device = owned_device(ctx, user, device_id)
    name = clean_name(name)
    _check_name_free(user, device, name)
    old, device.name = device.name, name
    audit.record(ctx, origin, "device.rename", "ok", username=user.username, device=device.name,
                 detail=f"was {old}")
    return device


def make_default(ctx: Context, origin: Origin, user: User, device_id: int) -> Device:
    device = owned_device(ctx, user, device_id)
    for other in active_devices(user):
        other.is_default = other.id == device.id
    audit.record(ctx, origin, "device.make_default", "ok", username=user.username,
                 device=device.name)
    return device


def is_last(user: User, device: Device) -> bool:
    """The user's only active device."""
    return [d.id for d in active_devices(user)] == [device.id]


def mark_enrolled(ctx: Context, user: User) -> None:
    """The user has (had) an active device: from now on they are not a new user, even after
    removing every device (UM2FA_NEW_USER=allow: app/core/sso.py)."""
    if user.enrolled_at is None:
        user.enrolled_at = ctx.now()


def hold_until(ctx: Context, user: User, acting: Device | None) -> datetime | None:
    """Until when `acting` (the device that gave this session's second factor) may not remove
    the user's other devices: it was enrolled with a recovery passcode less than
    UM2FA_RECOVERY_DEVICE_HOLD_HOURS ago, and the user has other active devices (the ones a
    thief holding only a recovery passcode would want gone). None when no hold applies."""
    hours = ctx.settings.recovery_device_hold_hours
    if (acting is None or hours <= 0 or acting.user_id != user.id or not acting.active
            or acting.enrolled_via != "recovery"):
        return None
    until = acting.created_at + timedelta(hours=hours)
    others = [d for d in active_devices(user) if d.id != acting.id]
    return until if until > ctx.now() and others else None


def held_message(ctx: Context, until: datetime) -> str:
    """Why the device may not remove the others yet, and until when (local time, the zone
    named)."""
    return _("This device was added with a recovery passcode, so for your protection it "
             "cannot remove your other devices until %(until)s %(zone)s. If you no longer "
             "have your other device, contact the IT help desk; if you did not add this "
             "device, use the \"This wasn't me\" link in the email we sent you.",
             until=local(until), zone=zone())


def remove(ctx: Context, origin: Origin, user: User, device_id: int, *,
           last_confirmed: bool = False, by_device_id: int | None = None,
           notify: bool = True) -> None:
    """Remove a device. The last one only with `last_confirmed`: the person (or the help desk)
    confirmed that without it they need a recovery passcode to add a device again.
    `by_device_id`: the device that gave the session's second factor (the web doors); while it
    is held (`hold_until`) it may remove only itself. `notify`: tell the user (not when "This
    wasn't me" removes the device it was told about)."""
    device = owned_device(ctx, user, device_id)
    acting = ctx.db.get(Device, by_device_id) if by_device_id is not None else None
    until = hold_until(ctx, user, acting) if acting is not None and acting.id != device.id \
        else None
    if until is not None:
        audit.record(ctx, origin, "device.remove", "held", username=user.username,
                     device=device.name, detail=f"by {acting.name} (recovery) until "
                     f"{until.isoformat(timespec='minutes')}")
        raise HeldError(held_message(ctx, until), until)
    if is_last(user, device) and not last_confirmed:
        raise LastDeviceError(_(LAST_DEVICE_UNCONFIRMED))
    was_default, name = device.is_default, device.name
    ctx.db.delete(device)
    ctx.db.flush()
    ctx.db.refresh(user)
    remaining = active_devices(user)
    if was_default and remaining:
        remaining[0].is_default = True
    audit.record(ctx, origin, "device.remove", "ok", username=user.username, device=name)
    # Whoever else holds a session of this user (a thief's copied cookie) is signed out.
    browser_sessions.end_for_user(ctx, user.id, keep=origin.session_id)
    if notify:
        notices.tell(ctx, origin, user, notices.DEVICE_REMOVED, device_name=name)


def _clean_secret(secret: str) -> str:
    secret = "".join(secret.split()).upper().rstrip("=")
    try:
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError) as exc:
        raise DeviceError("the secret is not valid base32") from exc
    if len(raw) < 10:
        raise DeviceError("the secret is too short (at least 80 bits)")
    return secret


def add_totp(ctx: Context, origin: Origin, user: User, name: str, secret: str | None = None,
             device_type: str = "token") -> tuple[Device, str]:
    """Help-desk enrolment: an active TOTP device, from a given secret or a new one."""
    name = clean_name(name)
    secret = _clean_secret(secret) if secret else totp_factor.new_secret()
    first = not active_devices(user)
    device = new_device(ctx, user, secret, name=name, device_type=device_type,
                         platform="other", active=True, is_default=first)
    mark_enrolled(ctx, user)
    audit.record(ctx, origin, "device.add", "ok", username=user.username, device=name,
                 detail="help desk")
    notices.tell(ctx, origin, user, notices.DEVICE_ADDED, device=device)
    return device, secret


def import_csv(ctx: Context, origin: Origin, stream: IO[str]) -> list[Device]:
    """Hardware tokens from CSV (username, name, secret). All rows or none."""
    reader = csv.DictReader(stream)
    missing = [c for c in ("username", "name", "secret") if c not in (reader.fieldnames or [])]
    if missing:
        raise DeviceError(f"the header line lacks column(s): {', '.join(missing)}")
    added = []
    for line, row in enumerate(reader, start=2):
        try:
            user = users.get(ctx, (row["username"] or "").strip())
            if not (row["secret"] or "").strip():
                raise DeviceError("the secret is empty")
            added.append(add_totp(ctx, origin, user, row["name"] or "", row["secret"])[0])
        except (DeviceError, users.UserError) as exc:
            raise DeviceError(f"line {line}: {exc}") from exc
    return added


def list_for(ctx: Context, user: User) -> list[Device]:
    return list(ctx.db.scalars(select(Device).where(Device.user_id == user.id,
                                                    Device.active.is_(True))
                               .order_by(Device.id)))
