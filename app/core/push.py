"""Push to the companion app: activation, "Send me a Push", the device's signed answer.

A push lives in the database (`PushRequest`), so any node can start it, any node can take the
phone's answer and any node (or the RADIUS door) can see the outcome. Its status only moves
forward, by conditional UPDATEs: pending -> approved | denied | mismatch | fraud | expired, and
approved -> used when the login it was for completes (once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from app.core import audit, device_keys, devices, webpush
from app.core.after_commit import after_commit
from app.core.context import Context, Origin
from app.core.factors import totp as totp_factor
from app.models import ActivationCode, Device, DeviceNonce, PushRequest, User

log = logging.getLogger("um2fa.push")

KIND = "push"
ACTIVATION_PURPOSE = "activation"
CALL_WINDOW_SECONDS = 60
DECISIONS = ("approve", "deny", "fraud")
FINAL = {"approved": "approved", "deny": "denied", "fraud": "fraud"}

MESSAGES = {
    "pending": "Push sent. Check your phone.",
    "approved": "Approved.",
    "used": "This push was already used to sign in.",
    "denied": "The push was denied.",
    "mismatch": "The number typed on the phone did not match. Please try again.",
    "fraud": "The push was denied and reported as fraud. Contact the IT help desk if this "
             "was a mistake.",
    "expired": "The push expired before it was answered. Send another one or enter a "
               "passcode.",
}
BLOCKED = ("Pushes to your account are paused because a push was reported as fraud. Enter a "
           "passcode instead, or try again later.")
TOO_MANY = "You have too many pushes waiting. Answer or wait for one of them, then try again."
NOT_PUSH = "That device cannot receive pushes. Enter a passcode instead."


class PushError(ValueError):
    """A push that cannot be started or answered; the message is safe to show."""


class UnknownRequest(PushError):
    """No such push request for this device."""


class AlreadyAnswered(PushError):
    """The push was answered already, or expired before the answer came."""


class BadAnswerSignature(PushError):
    """The answer is not signed by the device's key."""


class DeviceAuthError(ValueError):
    """A device API call that is not properly signed; the message is safe to show."""


@dataclass(frozen=True)
class Activation:
    device: Device
    totp_secret: str


# --- devices that push ----------------------------------------------------------------------

def can_push(device: Device | None) -> bool:
    return (device is not None and device.active and device.kind == KIND
            and device.public_key is not None)


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
        raise PushError("This activation link is not valid: it was used already or has "
                        "expired. Start again from \"Add a new device\".")
    try:
        der = device_keys.load_public_key(public_key_b64)
    except device_keys.DeviceKeyError as exc:
        raise PushError(f"Activation failed: {exc}.") from exc
    if not device_keys.verify(der, device_keys.activation_message(code.strip()), proof):
        raise PushError("Activation failed: the key's signature does not match.")
    try:
        cleaned = webpush.clean_subscription(ctx.settings, subscription) if subscription else None
    except webpush.SubscriptionError as exc:
        raise PushError(f"Activation failed: {exc}.") from exc
    used = ctx.db.execute(update(ActivationCode)
                          .where(ActivationCode.id == row.id, ActivationCode.used_at.is_(None))
                          .values(used_at=now)
                          .execution_options(synchronize_session=False)).rowcount == 1
    if not used:
        raise PushError("This activation link was used already.")
    user = ctx.db.get(User, device.user_id)
    assert user is not None
    device.public_key = der
    device.push_subscription = cleaned
    device.is_default = not devices.active_devices(user)
    device.active = True
    device.last_used_at = now
    ctx.db.flush()
    ctx.db.refresh(user)
    audit.record(ctx, origin, "device.activate", "ok", username=user.username,
                 device=device.name, detail="companion app"
                 + (", Web Push" if device.push_subscription else ", no Web Push"))
    return Activation(device, totp_factor.device_secret(ctx, device))


def set_subscription(ctx: Context, origin: Origin, device: Device,
                     subscription: dict | None) -> None:
    device.push_subscription = (webpush.clean_subscription(ctx.settings, subscription)
                                if subscription else None)
    audit.record(ctx, origin, "device.subscription", "ok", username=device.user.username,
                 device=device.name, detail="set" if subscription else "removed")


# --- the signed device API ------------------------------------------------------------------

def authenticate_call(ctx: Context, device_id: str, timestamp: str, signature: str,
                      method: str, path: str, body: bytes) -> Device:
    """The device whose key signed this call, or DeviceAuthError. A call is good for
    ±60 s around its timestamp and only once (its signature's r is remembered)."""
    known = device_id.isascii() and device_id.isdigit() and len(device_id) <= 18
    device = ctx.db.get(Device, int(device_id)) if known else None
    if device is None or not can_push(device):
        raise DeviceAuthError("unknown or inactive device")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise DeviceAuthError("bad timestamp: whole seconds since 1970 (Unix time)")
    stamp = int(timestamp)
    if abs(stamp - ctx.clock()) > CALL_WINDOW_SECONDS:
        raise DeviceAuthError("timestamp outside the allowed window; check the phone's clock")
    message = device_keys.call_message(method, path, timestamp, body)
    assert device.public_key is not None
    if not device_keys.verify(device.public_key, message, signature):
        raise DeviceAuthError("bad signature")
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
        raise DeviceAuthError("this call was already made (replay)") from exc


# --- starting and following a push ----------------------------------------------------------

def _expire_stale(ctx: Context, user_id: int) -> None:
    ctx.db.execute(update(PushRequest)
                   .where(PushRequest.user_id == user_id, PushRequest.status == "pending",
                          PushRequest.expires_at <= ctx.now())
                   .values(status="expired").execution_options(synchronize_session=False))


def expire(ctx: Context, public_id: str) -> None:
    """End a pending push whose login stopped waiting (the VPN door's wait ran out)."""
    ctx.db.execute(update(PushRequest)
                   .where(PushRequest.public_id == public_id, PushRequest.status == "pending")
                   .values(status="expired").execution_options(synchronize_session=False))


def is_blocked(ctx: Context, user: User) -> bool:
    return user.push_blocked_until is not None and user.push_blocked_until > ctx.now()


def start(ctx: Context, origin: Origin, user: User, device: Device | None, *, service: str,
          timeout: int | None = None, verified: bool | None = None) -> PushRequest:
    """Send a push to `device` (the user's default push device when None). `verified` (default:
    the Verified Push policy) is off where no screen can show the number (the VPN door)."""
    device = device if device is not None else next(iter(push_devices(user)), None)
    if not can_push(device) or device is None or device.user_id != user.id:
        raise PushError(NOT_PUSH)
    if user.is_locked:
        raise PushError("Your account is locked. Please contact the IT help desk.")
    if is_blocked(ctx, user):
        audit.record(ctx, origin, "push.start", "blocked", username=user.username,
                     device=device.name)
        raise PushError(BLOCKED)
    # One start per user at a time (on PostgreSQL; SQLite has one writer anyway): another
    # node's count and insert must not interleave with ours, or the limit is passed.
    ctx.db.execute(select(User.id).where(User.id == user.id).with_for_update())
    _expire_stale(ctx, user.id)
    pending = ctx.db.scalar(select(func.count()).select_from(PushRequest).where(
        PushRequest.user_id == user.id, PushRequest.status == "pending")) or 0
    if pending >= ctx.settings.push_max_pending:
        audit.record(ctx, origin, "push.start", "refused", username=user.username,
                     device=device.name, detail=f"{pending} pending")
        raise PushError(TOO_MANY)
    now = ctx.now()
    request = PushRequest(
        public_id=secrets.token_urlsafe(16), user_id=user.id, device_id=device.id,
        status="pending", number=f"{secrets.randbelow(1000):03d}"
        if (ctx.settings.verified_push if verified is None else verified) else "",
        door=origin.door, service=service[:200],
        client_addr=origin.client_addr[:64], created_at=now,
        expires_at=now + timedelta(seconds=timeout or ctx.settings.push_timeout))
    ctx.db.add(request)
    ctx.db.flush()
    audit.record(ctx, origin, "push.start", "ok", username=user.username, device=device.name,
                 detail=service[:120])
    if device.push_subscription:
        webpush.wake_after_commit(ctx, device.push_subscription, request.public_id)
    return request


def _well_formed(public_id: str) -> bool:
    """A public id as `start` makes them (token_urlsafe): anything else matches no row, and
    is not sent to the database at all (PostgreSQL refuses a NUL in a string parameter)."""
    return (isinstance(public_id, str) and 0 < len(public_id) <= 32 and public_id.isascii()
            and all(ch.isalnum() or ch in "-_" for ch in public_id))


def find(ctx: Context, user: User, public_id: str) -> PushRequest | None:
    if not _well_formed(public_id):
        return None
    request = ctx.db.scalar(select(PushRequest).where(PushRequest.public_id == public_id))
    if request is None or request.user_id != user.id:
        return None
    return request


def status(ctx: Context, user: User, public_id: str) -> str:
    """Where a push stands, for the login page (expiring it when its time is up)."""
    request = find(ctx, user, public_id)
    if request is None:
        return "expired"
    if request.status == "pending" and request.expires_at <= ctx.now():
        _expire_stale(ctx, user.id)
        ctx.db.refresh(request)
    return request.status


def statuses(ctx: Context, public_ids: list[str]) -> dict[str, str]:
    """The status of many pushes in one query (the RADIUS door's waiter)."""
    if not public_ids:
        return {}
    now = ctx.now()
    rows = ctx.db.execute(select(PushRequest.public_id, PushRequest.status,
                                 PushRequest.expires_at)
                          .where(PushRequest.public_id.in_(public_ids))).all()
    return {pid: ("expired" if st == "pending" and exp <= now else st)
            for pid, st, exp in rows}


def complete(ctx: Context, origin: Origin, user: User, public_id: str, *,
             action: str = "factor") -> bool:
    """Use an approved push for the login it was sent for: true once, false ever after.
    Like a good passcode, it resets the failure count and is audited as the second factor.
    A user locked since the push was sent (failures at another door) is not let in by it."""
    request = find(ctx, user, public_id)
    if request is None:
        return False
    ctx.db.flush()
    ctx.db.refresh(user)
    if user.is_locked:
        audit.record(ctx, origin, action, "locked", username=user.username, detail="push")
        return False
    if is_blocked(ctx, user):  # a push was reported as fraud since this one was approved
        audit.record(ctx, origin, action, "blocked", username=user.username, detail="push")
        return False
    used = ctx.db.execute(update(PushRequest)
                          .where(PushRequest.id == request.id,
                                 PushRequest.status == "approved")
                          .values(status="used")
                          .execution_options(synchronize_session=False)).rowcount == 1
    if not used:
        return False
    ctx.db.refresh(request)
    device = ctx.db.get(Device, request.device_id)
    ctx.db.execute(update(User).where(User.id == user.id).values(failed_factor_count=0)
                   .execution_options(synchronize_session=False))
    ctx.db.refresh(user)
    audit.record(ctx, origin, action, "ok", username=user.username,
                 device=device.name if device else "", detail="push")
    return True


# --- the phone's side -----------------------------------------------------------------------

def pending_for(ctx: Context, device: Device) -> list[PushRequest]:
    return list(ctx.db.scalars(select(PushRequest).where(
        PushRequest.device_id == device.id, PushRequest.status == "pending",
        PushRequest.expires_at > ctx.now()).order_by(PushRequest.id)))


def request_for_device(ctx: Context, device: Device, public_id: str) -> PushRequest:
    if not _well_formed(public_id):
        raise UnknownRequest("No such request for this device.")
    request = ctx.db.scalar(select(PushRequest).where(PushRequest.public_id == public_id))
    if request is None or request.device_id != device.id:
        raise UnknownRequest("No such request for this device.")
    return request


def answer(ctx: Context, origin: Origin, device: Device, public_id: str, decision: str,
           number: str, signature: str) -> str:
    """The phone's answer, signed over the request id, the decision and the typed number.
    Returns the push's new status."""
    from app.core import prompt  # prompt imports the factors, which import this module

    if decision not in DECISIONS:
        raise PushError("The decision must be approve, deny or fraud.")
    request = request_for_device(ctx, device, public_id)
    assert device.public_key is not None
    message = device_keys.answer_message(public_id, decision, number)
    if not device_keys.verify(device.public_key, message, signature):
        audit.record(ctx, origin, "push.answer", "bad-signature", username=device.user.username,
                     device=device.name)
        raise BadAnswerSignature("The answer's signature does not match this device's key.")
    now = ctx.now()
    if request.status != "pending" or request.expires_at <= now:
        raise AlreadyAnswered(MESSAGES["expired"] if request.status in ("pending", "expired")
                              else "This request was already answered.")
    new = FINAL["approved" if decision == "approve" else decision]
    if decision == "approve" and request.number and not hmac.compare_digest(
            number.strip().encode(), request.number.encode()):
        new = "mismatch"
    moved = ctx.db.execute(update(PushRequest)
                           .where(PushRequest.id == request.id,
                                  PushRequest.status == "pending")
                           .values(status=new, answered_at=now,
                                   answer_signature=device_keys.b64url_decode(signature))
                           .execution_options(synchronize_session=False)).rowcount == 1
    if not moved:
        raise AlreadyAnswered("This request was already answered.")
    _announce_after_commit(ctx, [public_id])
    ctx.db.refresh(request)
    user = device.user
    audit.record(ctx, origin, "push.answer", new, username=user.username, device=device.name,
                 detail=f"push for {request.door}")
    if new == "mismatch":
        prompt._register_failure(ctx, origin, user)  # noqa: SLF001 - same lockout counter
    if new == "fraud":
        _report_fraud(ctx, origin, user, device, request)
    return new


def _announce_after_commit(ctx: Context, public_ids: list[str]) -> None:
    """Push fan-out (app/core/push_events.py): waiting nodes look in the database at once."""
    if not public_ids:
        return
    events = ctx.push_events

    def announce() -> None:
        for public_id in public_ids:
            events.answered(public_id)

    after_commit(ctx.db, announce)


def _report_fraud(ctx: Context, origin: Origin, user: User, device: Device,
                  request: PushRequest) -> None:
    from app.core import notify

    until = ctx.now() + timedelta(minutes=ctx.settings.push_fraud_block_minutes)
    ctx.db.execute(update(User).where(User.id == user.id).values(push_blocked_until=until)
                   .execution_options(synchronize_session=False))
    # The block covers the pushes already waiting (likely the same attacker's): a later tap on
    # "Approve" must not let one of them in.
    denied = ctx.db.execute(update(PushRequest)
                            .where(PushRequest.user_id == user.id,
                                   PushRequest.status == "pending")
                            .values(status="denied", answered_at=ctx.now())
                            .returning(PushRequest.public_id)
                            .execution_options(synchronize_session=False)).scalars().all()
    _announce_after_commit(ctx, denied)
    ctx.db.refresh(user)
    audit.record(ctx, origin, "push.fraud", "blocked", username=user.username,
                 device=device.name,
                 detail=f"pushes paused until {until:%Y-%m-%d %H:%M} UTC; login from "
                        f"{request.client_addr or 'unknown'} via {request.door}")
    log.warning(json.dumps({"alert": "push reported as fraud", "user": user.username,
                            "device": device.name, "door": request.door,
                            "login_from": request.client_addr,
                            "service": request.service}))
    notify.fraud_reported(ctx, origin, user, request, until)


def describe(request: PushRequest, username: str) -> dict:
    """What the phone shows about a request (the Verified Push number is typed, not shown)."""
    return {"id": request.public_id, "username": username, "door": request.door,
            "service": request.service,
            "client_addr": request.client_addr,
            "created_at": _iso(request.created_at), "expires_at": _iso(request.expires_at),
            "verified": bool(request.number)}


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
