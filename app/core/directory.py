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

from app.core import password_hashes


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
    return password_hashes.hash_password(password)


class Directory(Protocol):
    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        """Raises DirectoryUnavailable when the directory cannot be asked."""
        ...

    def lookup(self, username: str) -> DirectoryUser | None:
        """The user's attributes, or None (unknown, or a directory that keeps none)."""
        ...


class LocalDirectory:
    """Passwords kept in our own database: argon2id hashes, or an imported directory's hashes
    until the user's first sign-in (app/core/password_hashes.py). An unknown user (no hash)
    costs one argon2 verification too."""

    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        return password_hashes.verify(password_hash, password)

    def lookup(self, username: str) -> DirectoryUser | None:
        return None  # our users are rows already


def keeps_passwords(directory: Directory) -> bool:
    """Whether this directory checks the password hashes in our database (the local one);
    another (LDAP, upstream RADIUS) checks passwords itself and our rows have none."""
    return isinstance(directory, LocalDirectory)


def upgraded_hash(directory: Directory, password_hash: str | None, password: str) -> str | None:
    """After `password` matched `password_hash`: the argon2id hash to store in its place when
    it is another format or older parameters, else None. Only the local directory checks our
    hashes; another (LDAP) never has one rewritten from a password it checked itself."""
    if (not keeps_passwords(directory) or not password_hash
            or not password_hashes.needs_upgrade(password_hash)):
        return None
    return password_hashes.hash_password(password)
