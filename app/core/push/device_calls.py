"""The signed device API: which companion app made a call, and that it made it only once."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from app.core import device_keys
from app.core.context import Context
from app.core.push.activation import can_push
from app.core.push.errors import DeviceAuthError
from app.i18n import N_
from app.models import Device, DeviceNonce

CALL_WINDOW_SECONDS = 60


def authenticate_call(ctx: Context, device_id: str, timestamp: str, signature: str,
                      method: str, path: str, body: bytes) -> Device:
    """The device whose key signed this call, or DeviceAuthError. A call is good for
    ±60 s around its timestamp and only once (its signature's r is remembered)."""
    known = device_id.isascii() and device_id.isdigit() and len(device_id) <= 18
    device = ctx.db.get(Device, int(device_id)) if known else None
    if device is None or not can_push(device):
        raise DeviceAuthError(N_("unknown or inactive device"))
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise DeviceAuthError(N_("bad timestamp: whole seconds since 1970 (Unix time)"))
    stamp = int(timestamp)
    if abs(stamp - ctx.clock()) > CALL_WINDOW_SECONDS:
        raise DeviceAuthError(N_("timestamp outside the allowed window; check the phone's clock"))
    message = device_keys.call_message(method, path, timestamp, body)
    assert device.public_key is not None
    if not device_keys.verify(device.public_key, message, signature):
        raise DeviceAuthError(N_("bad signature"))
    _remember_signature(ctx, device, signature)
    return device


def _remember_signature(ctx: Context, device: Device, signature: str) -> None:
    """Refuse a replay. Keyed on r alone: (r, n - s) is the same signature in another form."""
    r = device_keys.b64url_decode(signature)[:32]
    digest = hashlib.sha256(device.id.to_bytes(8, "big") + r).digest()
    now = ctx.now()
    ctx.db.execute(delete(DeviceNonce).where(DeviceNonce.expires_at < now)
                   .execution_options(synchronize_session=False))
    try:
        with ctx.db.begin_nested():
            ctx.db.add(DeviceNonce(digest=digest, expires_at=now + timedelta(
                seconds=2 * CALL_WINDOW_SECONDS + 5)))
    except IntegrityError as exc:
        raise DeviceAuthError(N_("this call was already made (replay)")) from exc
