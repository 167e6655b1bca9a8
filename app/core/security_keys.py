"""Security keys and passkeys (WebAuthn, docs/passkeys.md): the registration and authentication
ceremonies, decided here for every web door. py_webauthn parses and verifies (CBOR, COSE,
signatures); this module keeps the rules: the relying party, the challenge (single use, short
lived), unique credential ids, the AAGUID allow-list, the signature counter (a counter that does
not go up is a possible clone: refused and audited "cloned"), lockout and audit.

The doors keep the challenge record in the browser's server-side session, take it out (once)
and hand it back here with the browser's answer. A security key answers only in a browser: the
VPN door never offers it (app/core/devices.py: vpn_devices).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import select, update
from webauthn.helpers import exceptions as webauthn_errors
from webauthn.helpers import structs
from webauthn.registration.verify_registration_response import VerifiedRegistration

from app.core import audit, devices, lockout
from app.core.context import Context, Origin
from app.core.subjects import Subject
from app.i18n import N_, _
from app.models import Device, User, WebAuthnCredential

KIND = "webauthn"
DEVICE_TYPE = "security_key"
PLATFORM = "other"
CHALLENGE_SECONDS = 120
TIMEOUT_MS = CHALLENGE_SECONDS * 1000
REGISTER, SIGN_IN = "register", "sign-in"
_USER_HANDLE = "webauthn-user-handle"

NOT_ACCEPTED = N_("Your security key was not accepted. Please try again.")
EXPIRED = N_("That security key request has expired or was already used. Please try again.")
CLONED = N_("This security key was refused: it may have been copied. Use another device, and "
            "contact the help desk.")
NOT_ALLOWED = N_("This kind of security key is not allowed here. Use one the university gave "
                 "you.")
ALREADY_REGISTERED = N_("This security key is already registered.")
STATUS_TEXTS = {"ok": N_("Success."), "expired": EXPIRED, "cloned": CLONED}  # else NOT_ACCEPTED


@dataclass(frozen=True)
class RelyingParty:
    id: str      # the host name (WebAuthn's RP ID)
    origin: str  # scheme://host[:port], what the browser reports
    name: str


def relying_party(ctx: Context, request_url: str) -> RelyingParty:
    """The relying party: UM2FA_BASE_URL's host, else (the demo) the host the request came to."""
    parts = urlsplit(ctx.settings.base_url or request_url)
    return RelyingParty(id=parts.hostname or "", origin=f"{parts.scheme}://{parts.netloc}",
                        name=ctx.settings.issuer)


# --- the challenge: kept by the door, single use, short lived -------------------------------

def _challenge_record(ctx: Context, purpose: str, challenge: bytes, user: User) -> dict:
    return {"purpose": purpose, "challenge": challenge.hex(), "user": user.id,
            "expires": ctx.clock() + CHALLENGE_SECONDS}


def _challenge(ctx: Context, record: Any, purpose: str, user: User) -> bytes | None:
    """The challenge of a record the door took out of the session, if it is still good."""
    if not isinstance(record, dict) or record.get("purpose") != purpose:
        return None
    if record.get("user") != user.id or ctx.clock() >= float(record.get("expires", 0)):
        return None
    try:
        return bytes.fromhex(str(record.get("challenge", "")))
    except ValueError:
        return None


# --- registration ("Add a new device") ------------------------------------------------------

def _user_handle(ctx: Context, user: User) -> bytes:
    """An opaque, stable user handle (no username or database id leaves in it)."""
    return ctx.keys.keyed_hash(_USER_HANDLE, str(user.id))[:16]


def _credentials(ctx: Context, user: User) -> list[WebAuthnCredential]:
    return list(ctx.db.scalars(
        select(WebAuthnCredential).join(Device, Device.id == WebAuthnCredential.device_id)
        .where(Device.user_id == user.id, Device.active.is_(True), Device.kind == KIND)))


def _descriptors(rows: list[WebAuthnCredential]) -> list[structs.PublicKeyCredentialDescriptor]:
    return [structs.PublicKeyCredentialDescriptor(id=row.credential_id) for row in rows]


def registration_options(ctx: Context, user: User, rp: RelyingParty) -> tuple[str, dict]:
    """The options for navigator.credentials.create (JSON) and the challenge record to keep."""
    attestation = (structs.AttestationConveyancePreference.DIRECT if ctx.settings.webauthn_aaguids
                   else structs.AttestationConveyancePreference.NONE)
    options = webauthn.generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_name=user.username,
        user_id=_user_handle(ctx, user), user_display_name=user.display_name or user.username,
        timeout=TIMEOUT_MS, attestation=attestation,
        authenticator_selection=structs.AuthenticatorSelectionCriteria(
            resident_key=structs.ResidentKeyRequirement.PREFERRED,
            user_verification=structs.UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(_credentials(ctx, user)))
    return webauthn.options_to_json(options), _challenge_record(ctx, REGISTER, options.challenge,
                                                               user)


def aaguid_allowed(ctx: Context, aaguid: str) -> bool:
    """UM2FA_WEBAUTHN_AAGUIDS unset: any authenticator; set: only those listed."""
    allowed = {a.strip().lower() for a in ctx.settings.webauthn_aaguids if a.strip()}
    return not allowed or aaguid.strip().lower() in allowed


class RegistrationError(devices.DeviceError):
    """The security key could not be added; the message is safe to show."""


def register(ctx: Context, origin: Origin, user: User, rp: RelyingParty, credential: Any,
             record: Any, *, enrolled_via: str = "") -> Device:
    """Verify a registration and add the security key as an active device (a default name the
    user may change). Raises RegistrationError, audited, when it is refused."""
    def refuse(message: str, detail: str) -> RegistrationError:
        audit.record(ctx, origin, "device.activate", "fail", username=user.username,
                     detail=f"webauthn:{detail}")
        return RegistrationError(_(message))

    if enrolled_via not in devices.ENROLLED_VIA:
        raise RegistrationError("Unknown way of authenticating the enrolment.")
    challenge = _challenge(ctx, record, REGISTER, user)
    if challenge is None:
        raise refuse(EXPIRED, "expired challenge")
    try:
        verified = webauthn.verify_registration_response(
            credential=_parsed(credential), expected_challenge=challenge,
            expected_rp_id=rp.id, expected_origin=rp.origin)
    except (webauthn_errors.WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise refuse(NOT_ACCEPTED, f"invalid registration ({type(exc).__name__})") from None
    if not aaguid_allowed(ctx, verified.aaguid):
        raise refuse(NOT_ALLOWED, f"aaguid {verified.aaguid} not allowed")
    taken = ctx.db.scalar(select(WebAuthnCredential.id).where(
        WebAuthnCredential.credential_id == verified.credential_id))
    if taken is not None:
        raise refuse(ALREADY_REGISTERED, "credential id already registered")
    return _add(ctx, origin, user, verified, enrolled_via)


def _add(ctx: Context, origin: Origin, user: User,
         verified: VerifiedRegistration, enrolled_via: str) -> Device:
    devices.drop_pending(ctx, user)
    device = devices.new_device(ctx, user, device_type=DEVICE_TYPE, platform=PLATFORM,
                                name=_(devices.DEVICE_TYPES[DEVICE_TYPE]), kind=KIND,
                                enrolled_via=enrolled_via)
    ctx.db.add(WebAuthnCredential(device_id=device.id, credential_id=verified.credential_id,
                                  public_key=verified.credential_public_key,
                                  sign_count=verified.sign_count, aaguid=verified.aaguid,
                                  created_at=ctx.now()))
    ctx.db.flush()
    audit.record(ctx, origin, "device.enrol_start", "ok", username=user.username,
                 detail=f"{DEVICE_TYPE}/{PLATFORM}/{KIND} aaguid {verified.aaguid}"
                        + (" via recovery" if enrolled_via else ""))
    devices.finish_activation(ctx, origin, user, device)
    return device


def _parsed(credential: Any) -> Any:
    if isinstance(credential, str):
        return json.loads(credential)
    if not isinstance(credential, dict):
        raise ValueError("not a credential")
    return credential


# --- authentication (the portal's and the SSO prompt) ---------------------------------------

def has_security_key(user: User) -> bool:
    return any(d.kind == KIND for d in devices.active_devices(user))


def authentication_options(ctx: Context, user: User, rp: RelyingParty) -> tuple[str, dict]:
    """The options for navigator.credentials.get (JSON) and the challenge record to keep."""
    options = webauthn.generate_authentication_options(
        rp_id=rp.id, timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(_credentials(ctx, user)),
        user_verification=structs.UserVerificationRequirement.PREFERRED)
    return webauthn.options_to_json(options), _challenge_record(ctx, SIGN_IN, options.challenge,
                                                               user)


@dataclass
class KeyOutcome:
    """A security key's answer, as a door shows it (the same lockout texts as a passcode)."""

    status: str  # ok, wrong, expired, cloned
    locked: bool = False
    device: Device | None = None
    attempts_left: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.locked

    @property
    def message(self) -> str:
        if self.locked:
            return _(lockout.LOCKED_MESSAGE)
        text = _(STATUS_TEXTS.get(self.status, NOT_ACCEPTED))
        warning = lockout.attempts_left_warning(self.attempts_left)
        return _("%(verdict)s %(warning)s", verdict=text, warning=warning) if warning else text


def authenticate(ctx: Context, origin: Origin, user: User, rp: RelyingParty, credential: Any,
                 record: Any, *, action: str = "factor") -> KeyOutcome:
    """Verify the browser's assertion for one of the user's security keys: lockout first, then
    the challenge, the credential, the signature and the counter; audited either way."""
    ctx.db.flush()
    subject = Subject.of(user)
    try:
        if lockout.is_locked(subject, ctx.now()):
            audit.record(ctx, origin, action, "locked", username=user.username)
            return KeyOutcome("wrong", locked=True)
        challenge = _challenge(ctx, record, SIGN_IN, user)
        if challenge is None:  # nothing was checked: audited, not counted
            audit.record(ctx, origin, action, "fail", username=user.username,
                         detail="webauthn:expired")
            return KeyOutcome("expired")
        return _check(ctx, origin, user, subject, rp, credential, challenge, action)
    finally:
        ctx.db.expire(user, ["failed_factor_count", "locked_at", "locked_until",
                             "lockout_level"])


def _find(ctx: Context, user: User, credential: Any) -> WebAuthnCredential | None:
    raw = credential.get("rawId") if isinstance(credential, dict) else None
    try:
        credential_id = webauthn.base64url_to_bytes(str(raw or ""))
    except (ValueError, TypeError):
        return None
    row = ctx.db.scalar(select(WebAuthnCredential).where(
        WebAuthnCredential.credential_id == credential_id))
    device = ctx.db.get(Device, row.device_id) if row is not None else None
    if device is None or device.user_id != user.id or not device.active or device.kind != KIND:
        return None
    return row


def _check(ctx: Context, origin: Origin, user: User, subject: Subject, rp: RelyingParty,
           credential: Any, challenge: bytes, action: str) -> KeyOutcome:
    try:
        parsed = _parsed(credential)
    except ValueError:
        parsed = None
    row = _find(ctx, user, parsed)
    if row is None:
        return _failed(ctx, origin, subject, None, "wrong", action, "unknown credential")
    device = ctx.db.get(Device, row.device_id)
    try:
        # The counter is checked below, after the signature, so only a signed answer is
        # ever taken for a clone.
        verified = webauthn.verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=row.public_key,
            credential_current_sign_count=0)
    except (webauthn_errors.WebAuthnException, ValueError, TypeError, KeyError) as exc:
        return _failed(ctx, origin, subject, device, "wrong", action,
                       f"invalid assertion ({type(exc).__name__})")
    new, stored = verified.new_sign_count, row.sign_count
    if not _counter_moves(ctx, row, new):
        return _failed(ctx, origin, subject, device, "cloned", action,
                       f"signature counter {new} not above {stored}: possible cloned key")
    lockout.reset(ctx, subject)
    device.last_used_at = ctx.now()
    audit.record(ctx, origin, action, "ok", username=user.username, device=device.name,
                 detail=KIND)
    return KeyOutcome("ok", device=device)


def _counter_moves(ctx: Context, row: WebAuthnCredential, new: int) -> bool:
    """Record the new counter, atomically: refused when it does not go up (when either counter
    is non-zero; an authenticator without a counter always sends 0). One conditional UPDATE, so
    two answers racing with one counter value cannot both win."""
    table = WebAuthnCredential.__table__
    if new == 0:
        return ctx.db.execute(select(table.c.id).where(table.c.id == row.id,
                                                       table.c.sign_count == 0)).first() is not None
    moved = ctx.db.execute(
        update(table).where(table.c.id == row.id, table.c.sign_count < new)
        .values(sign_count=new).execution_options(synchronize_session=False)).rowcount == 1
    if moved:
        ctx.db.expire(row, ["sign_count"])
    return moved


def _failed(ctx: Context, origin: Origin, subject: Subject, device: Device | None, status: str,
            action: str, detail: str) -> KeyOutcome:
    failure = lockout.count_failure(ctx, origin, subject)
    audit.record(ctx, origin, action, "cloned" if status == "cloned" else "fail",
                 username=subject.username, device=device.name if device else "",
                 detail=f"webauthn:{detail}")
    return KeyOutcome(status, locked=failure.locked, device=device,
                      attempts_left=failure.attempts_left)
