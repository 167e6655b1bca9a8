"""Primary authentication behind one interface: the local directory (here), LDAP
(app/core/directory_ldap.py) and an upstream RADIUS server (radius/upstream.py: it speaks
RADIUS with pyrad, so it is not in app/core). app/bootstrap.py's `make_directory` picks the one
that `settings.directory` names. A directory answers "is this the password of this user"; one
outside our database can also describe a user (`lookup`), for app/core/provisioning.py to create
or update the local row.

A directory that cannot be asked (server down, TLS refused, timeout) raises
DirectoryUnavailable instead of answering False: doors answer "temporarily unavailable"
(web: HTTP 503; RADIUS: the client's fail mode), never "wrong password"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the user is unknown, so both cases cost one argon2 verification: a hash
# made once with _hasher's parameters (tests/core/test_core_security.py checks that they are
# still the same), written out so that no process pays for a hash when it imports this module.
_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$/rzY4K8z/gQSn3Jv/07hfg"
               "$Oqs4TX4SxH7lTqh2VeFVSYlBam4xpTfTqWdUluFKhqc")


class DirectoryUnavailable(Exception):
    """The directory cannot answer now. The message names the cause, never a password."""


@dataclass(frozen=True)
class DirectoryUser:
    """A user as the directory describes them; None where the directory does not say.
    `dob` and `id_last4` are raw directory values, normalised by provisioning."""

    username: str
    display_name: str | None = None
    email: str | None = None
    role: str | None = None
    given_name: str | None = None
    surname: str | None = None
    dob: str | None = field(default=None, repr=False)
    id_last4: str | None = field(default=None, repr=False)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Directory(Protocol):
    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        """Raises DirectoryUnavailable when the directory cannot be asked."""
        ...

    def lookup(self, username: str) -> DirectoryUser | None:
        """The user's attributes, or None (unknown, or a directory that keeps none)."""
        ...


class LocalDirectory:
    """Passwords kept in our own database as argon2id hashes."""

    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    def lookup(self, username: str) -> DirectoryUser | None:
        return None  # our users are rows already
