"""Keys derived from the instance encryption key: one for device secrets, one for keyed hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


class Keys:
    def __init__(self, encryption_key: str) -> None:
        master = encryption_key.encode()
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(master, b"um2fa device secrets")))
        # Keyed with the derived key once; each hash continues a copy. Not hmac.digest():
        # that one call lets go of the GIL around a few microseconds of work, and a web
        # request makes several keyed hashes, each then a hand-over between its threads.
        self._keyed = hmac.new(_derive(master, b"um2fa keyed hashes"), digestmod=hashlib.sha256)

    def encrypt(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise ValueError("device secret cannot be decrypted with this instance key") from exc

    def keyed_hash(self, purpose: str, value: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(purpose.encode() + b"\x00" + value.encode())
        return mac.digest()

    def matches(self, purpose: str, value: str, stored: bytes | None) -> bool:
        if stored is None:
            # Still do the work so that a missing value takes the same time.
            hmac.compare_digest(self.keyed_hash(purpose, value), b"\x00" * 32)
            return False
        return hmac.compare_digest(self.keyed_hash(purpose, value), stored)
