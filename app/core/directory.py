"""Primary authentication behind one interface: the local directory today, LDAP and
upstream RADIUS later. A directory answers only "is this the password of this user"."""

from __future__ import annotations

from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the user is unknown, so both cases cost one argon2 verification.
_DUMMY_HASH = _hasher.hash("um2fa-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Directory(Protocol):
    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        ...


class LocalDirectory:
    """Passwords kept in our own database as argon2id hashes."""

    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False
