"""Password hashes: the argon2id hashes we make, and the formats an import may carry.

We store argon2id (argon2-cffi's default parameters). `um2fa users import` also takes the hashes
other directories export (docs/admin.md, "Importing users"), kept as they are until the user's
first successful sign-in, when `app/core/signin.py` stores an argon2id hash of the password in
their place (`needs_upgrade`). They are checked by libpass (the maintained fork of passlib,
imported as `passlib`), whose comparisons take constant time:

- argon2id (and argon2i): `$argon2id$v=19$m=…,t=…,p=…$salt$hash`, as we store them;
- bcrypt: `$2b$`, `$2a$`, `$2y$`, also as `{CRYPT}$2b$…` (OpenLDAP, web applications, PHP);
- PBKDF2: `{PBKDF2}`, `{PBKDF2-SHA256}`, `{PBKDF2-SHA512}` as `rounds$salt$hash` (OpenLDAP's
  pw-pbkdf2 module, 389 Directory Server 2.x), and passlib's `$pbkdf2$`, `$pbkdf2-sha256$`,
  `$pbkdf2-sha512$`;
- SHA-crypt: `{CRYPT}$6$…`, `{CRYPT}$5$…`, or without `{CRYPT}` (OpenLDAP, Linux);
- salted SHA: `{SSHA}`, `{SSHA256}`, `{SSHA512}` (OpenLDAP, 389 Directory Server 1.x).

Refused, with a reason: unsalted digests (`{SHA}`, `{SHA256}`, `{SHA512}`, `{MD5}`, `{SMD5}`:
salted MD5), `{CLEARTEXT}`, DES and MD5 `{CRYPT}`, 389-DS's own `{PBKDF2_SHA256}`, and anything
else (a plain password belongs in the `password` column). The messages never repeat the value.

`hash_many` hashes plain passwords over every core (a process pool; the caller keeps the
database)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from passlib.context import CryptContext

ARGON2 = PasswordHasher()
# Verified against when the user is unknown, so both cases cost one argon2 verification: a hash
# made once with ARGON2's parameters (tests/core/test_core_security.py checks that they are
# still the same), written out so that no process pays for a hash when it imports this module.
DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$/rzY4K8z/gQSn3Jv/07hfg"
              "$Oqs4TX4SxH7lTqh2VeFVSYlBam4xpTfTqWdUluFKhqc")
MAX_LENGTH = 200  # users.password_hash
BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; the library refuses longer passwords

_ARGON2_RE = re.compile(r"\$argon2(id|i)\$(v=\d+\$)?m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+"
                        r"\$[A-Za-z0-9+/]+")
# bcrypt as its library reads it (cost 4-31, 22 characters of salt, 31 of hash): the common
# case of a large import is checked without building a handler object per row.
_BCRYPT_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
# libpass scheme -> the label the audit and the import's summary use
_SCHEMES = {
    "bcrypt": "bcrypt", "ldap_bcrypt": "bcrypt",
    "ldap_pbkdf2_sha1": "PBKDF2-SHA1", "ldap_pbkdf2_sha256": "PBKDF2-SHA256",
    "ldap_pbkdf2_sha512": "PBKDF2-SHA512", "pbkdf2_sha1": "PBKDF2-SHA1",
    "pbkdf2_sha256": "PBKDF2-SHA256", "pbkdf2_sha512": "PBKDF2-SHA512",
    "ldap_sha512_crypt": "SHA512-crypt", "sha512_crypt": "SHA512-crypt",
    "ldap_sha256_crypt": "SHA256-crypt", "sha256_crypt": "SHA256-crypt",
    "ldap_salted_sha1": "SSHA", "ldap_salted_sha256": "SSHA256",
    "ldap_salted_sha512": "SSHA512",
}
_BCRYPT = {"bcrypt", "ldap_bcrypt"}
_LIBPASS = CryptContext(schemes=list(_SCHEMES))
# What a refused hash is, by its prefix (checked before the accepted formats).
_REFUSED = {
    "{SHA}": "an unsalted SHA-1 hash", "{SHA256}": "an unsalted SHA-256 hash",
    "{SHA384}": "an unsalted SHA-384 hash", "{SHA512}": "an unsalted SHA-512 hash",
    "{MD5}": "an unsalted MD5 hash", "{SMD5}": "a salted MD5 hash",
    "{CLEARTEXT}": "a clear-text password", "{PBKDF2_SHA256}":
    "389 Directory Server's own {PBKDF2_SHA256} format (not supported: only its "
    "{PBKDF2-SHA512} and {PBKDF2-SHA256})", "$1$": "an MD5-crypt hash",
    "{CRYPT}$1$": "an MD5-crypt hash", "$argon2d$": "an argon2d hash (not meant for passwords)",
    "$2x$": "a bcrypt hash from a known-buggy implementation ($2x$)",
}
_CRYPT_OK = re.compile(r"\{CRYPT\}\$(2[aby]|5|6)\$", re.IGNORECASE)
_CHUNK = 16  # passwords per task of the process pool


class HashFormatError(ValueError):
    """A password hash an import cannot take; the message never holds the value."""


def hash_password(password: str) -> str:
    return ARGON2.hash(password)


def _hash_chunk(hasher: PasswordHasher, passwords: Sequence[str]) -> list[str]:
    return [hasher.hash(password) for password in passwords]


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def hash_many(passwords: Sequence[str], *, workers: int | None = None,
              done: Callable[[int], None] = lambda _n: None,
              hasher: PasswordHasher = ARGON2) -> list[str]:
    """argon2id hashes of the passwords, in order, over `workers` processes (every core by
    default); `done(n)` after each n hashed. A few passwords, or one worker: in this process.
    (`hasher`: ours; a test passes a cheaper one.)"""
    workers = max(1, workers or cores())
    if workers == 1 or len(passwords) <= _CHUNK:
        hashes = []
        for password in passwords:
            hashes.append(hasher.hash(password))
            done(1)
        return hashes
    chunks = [passwords[i:i + _CHUNK] for i in range(0, len(passwords), _CHUNK)]
    hashes = []
    # spawn: a fresh interpreter for each worker, nothing of this process (its connections,
    # threads, locks) is copied into them.
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                             mp_context=get_context("spawn")) as pool:
        for chunk in pool.map(_hash_chunk, [hasher] * len(chunks), chunks):
            hashes.extend(chunk)
            done(len(chunk))
    return hashes


def _refusal(stored: str) -> str | None:
    if not stored.startswith(("{", "$1$", "$2x$", "$argon2d$")):
        return None
    upper = stored[:16].upper()
    for prefix, what in _REFUSED.items():
        if upper.startswith(prefix.upper()):
            return what
    if upper.startswith("{CRYPT}") and not _CRYPT_OK.match(stored):
        return "a DES or MD5 {CRYPT} hash"
    return None


def importable(stored: str) -> str:
    """The label of a hash an import may store as it is (see the table above); raises
    HashFormatError saying why not."""
    if len(stored) > MAX_LENGTH:
        raise HashFormatError(f"the password hash is longer than {MAX_LENGTH} characters")
    if _BCRYPT_RE.fullmatch(stored):
        return "bcrypt"
    what = _refusal(stored)
    if what is not None:
        raise HashFormatError(f"password_hash is {what}, which cannot be imported; leave it "
                              "empty and give the user a password (password column)")
    if stored.startswith("$argon2"):
        if not _ARGON2_RE.fullmatch(stored):
            raise HashFormatError("password_hash is not a well-formed argon2 hash")
        return stored[1:stored.index("$", 1)]
    scheme = _LIBPASS.identify(stored)
    if scheme is None:
        raise HashFormatError(
            "password_hash is not in a format we take (argon2id, bcrypt, PBKDF2, SHA-crypt, "
            "salted SHA: docs/admin.md); a plain password belongs in the password column")
    try:
        _parse(_LIBPASS.handler(scheme), stored)
    except (ValueError, TypeError) as exc:
        raise HashFormatError(f"password_hash is not a well-formed {_SCHEMES[scheme]} "
                              "hash") from exc
    return _SCHEMES[scheme]


def _parse(handler: Any, stored: str) -> None:
    """Parse the hash as its handler reads it (ValueError when malformed)."""
    wrapped = getattr(handler, "wrapped", None)
    if wrapped is not None:  # a prefix wrapper ({CRYPT}…, {PBKDF2-…}): the hash it wraps
        _parse(wrapped, handler.orig_prefix + stored[len(handler.prefix):])
    else:
        handler.from_string(stored)


def label(stored: str) -> str:
    """What kind of hash this is, for the audit: "bcrypt", "SSHA", "argon2id m=65536,t=3,p=4"
    (argon2's parameters: they are why an argon2id hash is replaced)."""
    try:
        kind = importable(stored)
    except HashFormatError:
        return "unknown"
    if kind.startswith("argon2"):
        return f"{kind} {stored.split('$')[-3]}"
    return kind


def verify(stored: str | None, password: str) -> bool:
    """Whether the password matches the stored hash, in constant time for the format. No hash:
    a dummy argon2id hash is checked instead and the answer is False (an unknown user costs the
    same as a known one). An imported format costs that argon2 check and its own."""
    if not stored:
        _argon2_verify(DUMMY_HASH, password)
        return False
    if stored.startswith("$argon2"):
        return _argon2_verify(stored, password)
    # Another format may be much cheaper than argon2id: the same argon2 work as for everyone
    # else first, so the answer for a user with an imported hash comes no sooner.
    _argon2_verify(DUMMY_HASH, password)
    scheme = _LIBPASS.identify(stored)
    if scheme is None:
        return False
    secret: str | bytes = password
    if scheme in _BCRYPT:  # as the directory that made it: only the first 72 bytes count
        secret = password.encode()[:BCRYPT_MAX_BYTES]
    try:
        return bool(_LIBPASS.handler(scheme).verify(secret, stored))
    except (ValueError, TypeError):  # a malformed hash: nothing matches it
        return False


def _argon2_verify(stored: str, password: str) -> bool:
    try:
        return ARGON2.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_upgrade(stored: str) -> bool:
    """True when a hash the password just matched should be replaced by a new argon2id hash:
    another format, or argon2 with other parameters than ours."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return ARGON2.check_needs_rehash(stored)
    except InvalidHashError:
        return True
