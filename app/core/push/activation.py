"""Companion-app devices: which ones can receive a push, and how one is activated from the
QR code's link with its new key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from app.core import audit, device_keys, devices, notices, preferences, webpush
from app.core.context import Context, Origin
from app.core.factors import totp as totp_factor
from app.core.push.errors import ActivationError
from app.i18n import _
from app.models import ActivationCode, Device, User

KIND = "push"
ACTIVATION_PURPOSE = "activation"


@dataclass(frozen=True)
class Activation:
    device: Device
    totp_secret: str


def can_push(device: Device | None) -> bool:
    return (device is not None and device.active and device.kind == KIND
            and device.public_key is not None)


def sends_at_once(ctx: Context, user: User, device: Device | None) -> bool:
    """Whether a 2FA prompt sends the push as it opens, before any click: the user asked for
    it ("Automatically send me a push") and `device`, the one the prompt has chosen (their
    default unless they picked another), can receive pushes. The setting is read first: one row
    by its key, and every prompt then proves that a schema without the column (read as off,
    app/core/preferences.py) signs people in all the same (tests/ops/test_db_upgrade_live.py)."""
    return preferences.auto_push(ctx, user.id) and can_push(device)


def push_devices(user: User) -> list[Device]:
    """The user's push-capable devices, the default one first."""
    found = [d for d in devices.active_devices(user) if can_push(d)]
    return sorted(found, key=lambda d: (not d.is_default, d.id))


def new_activation(ctx: Context, device: Device) -> str:
    """A fresh single-use activation code for a pending companion-app device."""
    ctx.db.execute(delete(ActivationCode).where(ActivationCode.device_id == device.id))
    code = secrets.token_urlsafe(24)
    ctx.db.add(ActivationCode(device_id=device.id,
                              code_hash=ctx.keys.keyed_hash(ACTIVATION_PURPOSE, code),
                              expires_at=ctx.now() + timedelta(
                                  seconds=ctx.settings.activation_ttl_seconds)))
    ctx.db.flush()
    return code


def activation_link(base_url: str, code: str) -> str:
    """The https link in the QR code: the code rides in the fragment, never sent to a server
    by the browser, and read by the companion app's page."""
    return f"{base_url.rstrip('/')}/app/#activate={code}"


def activate(ctx: Context, origin: Origin, code: str, public_key_b64: str, proof: str,
             subscription: dict | None) -> Activation:
    """The companion app presents the code from the link with its new public key and a
    signature by that key over the code."""
    now = ctx.now()
    row = ctx.db.scalar(select(ActivationCode).where(
        ActivationCode.code_hash == ctx.keys.keyed_hash(ACTIVATION_PURPOSE, code.strip())))
    device = ctx.db.get(Device, row.device_id) if row is not None else None
    if (row is None or device is None or row.used_at is not None or row.expires_at <= now
            or device.active or device.kind != KIND):
        audit.record(ctx, origin, "device.activate", "fail", detail="unknown, used or expired "
                     "activation code")
        raise ActivationError(_("This activation link is not valid: it was used already or "
                                "has expired. Start again from \"Add a new device\"."))
    try:
        der = device_keys.load_public_key(public_key_b64)
    except device_keys.DeviceKeyError as exc:
        raise ActivationError(_("Activation failed: %(reason)s.", reason=exc)) from exc
    if not device_keys.verify(der, device_keys.activation_message(code.strip()), proof):
        raise ActivationError(_("Activation failed: the key's signature does not match."))
    try:
        cleaned = webpush.clean_subscription(ctx.settings, subscription) if subscription else None
    except webpush.SubscriptionError as exc:
        raise ActivationError(_("Activation failed: %(reason)s.", reason=exc)) from exc
    used = ctx.db.execute(update(ActivationCode)
                          .where(ActivationCode.id == row.id, ActivationCode.used_at.is_(None))
                          .values(used_at=now)
                          .execution_options(synchronize_session=False)).rowcount == 1
    if not used:
        raise ActivationError(_("This activation link was used already."))
    user = ctx.db.get(User, device.user_id)
    assert user is not None
    device.public_key = der
    device.push_subscription = cleaned
    device.is_default = not devices.active_devices(user)
    device.active = True
    device.last_used_at = now
    devices.mark_enrolled(ctx, user)
    ctx.db.flush()
    ctx.db.refresh(user)
    audit.record(ctx, origin, "device.activate", "ok", username=user.username,
                 device=device.name, detail="companion app"
                 + (", Web Push" if device.push_subscription else ", no Web Push"))
    notices.tell(ctx, origin, user, notices.DEVICE_ADDED, device=device)
    return Activation(device, totp_factor.device_secret(ctx, device))


def set_subscription(ctx: Context, origin: Origin, device: Device,
                     subscription: dict | None) -> None:
    device.push_subscription = (webpush.clean_subscription(ctx.settings, subscription)
                                if subscription else None)
    audit.record(ctx, origin, "device.subscription", "ok", username=device.user.username,
                 device=device.name, detail="set" if subscription else "removed")
