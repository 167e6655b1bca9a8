"""The companion app's key: an ECDSA P-256 key made with WebCrypto on the phone.

WebCrypto exports the public key as SubjectPublicKeyInfo (DER) and signs in IEEE P1363 form
(r || s, 64 bytes); both travel base64url-encoded. What is signed is spelled out here, once,
for the server and for every client (docs/device-api.md):

- a call:       "UM2FA-CALL-1\\n{METHOD}\\n{path}\\n{timestamp}\\n{sha256(body) hex}"
- an answer:    "UM2FA-ANSWER-1\\n{request id}\\n{decision}\\n{typed number}"
- activation:   "UM2FA-ACTIVATE-1\\n{activation code}" (proof that the app holds the key)
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

SIGNATURE_BYTES = 64
MAX_KEY_BYTES = 200


class DeviceKeyError(ValueError):
    """A public key or signature that cannot be used; the message is safe to show."""


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DeviceKeyError("not base64url") from exc


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_public_key(spki_b64: str) -> bytes:
    """Check that `spki_b64` is a P-256 public key; return its DER for storage."""
    der = b64url_decode(spki_b64)
    if not der or len(der) > MAX_KEY_BYTES:
        raise DeviceKeyError("the public key has the wrong size")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DeviceKeyError("the public key cannot be read") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise DeviceKeyError("the public key must be ECDSA P-256")
    return der


def verify(public_key_der: bytes, message: str, signature_b64: str) -> bool:
    try:
        raw = b64url_decode(signature_b64)
    except DeviceKeyError:
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    der_sig = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
    key = serialization.load_der_public_key(public_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(der_sig, message.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def call_message(method: str, path: str, timestamp: str, body: bytes) -> str:
    return "\n".join(("UM2FA-CALL-1", method.upper(), path, timestamp,
                      hashlib.sha256(body).hexdigest()))


def answer_message(request_id: str, decision: str, number: str) -> str:
    return "\n".join(("UM2FA-ANSWER-1", request_id, decision, number))


def activation_message(code: str) -> str:
    return "UM2FA-ACTIVATE-1\n" + code
