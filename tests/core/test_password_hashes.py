"""The password hash formats an import may carry (app/core/password_hashes.py): each one as the
tool that makes it wrote it, checked by libpass, refused formats named without their value."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest
from argon2 import PasswordHasher

from app.core import password_hashes
from tests.conftest import PASSWORD


def _ab64(raw: bytes) -> str:
    """The "adapted base64" of OpenLDAP's pw-pbkdf2 and passlib: '.' for '+', no padding."""
    return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")


def _pbkdf2(prefix: str, digest: str, rounds: int = 1000) -> str:
    """A PBKDF2 hash written as OpenLDAP's pw-pbkdf2 (and 389-DS 2.x) writes one, made here
    with hashlib alone: the library that checks it did not make it."""
    salt = bytes(range(16))
    derived = hashlib.pbkdf2_hmac(digest, PASSWORD.encode(), salt, rounds)
    return f"{prefix}{rounds}${_ab64(salt)}${_ab64(derived)}"


# The password of every hash here is tests.conftest.PASSWORD ("correct-horse-9"). Made by:
# htpasswd -nbB -C 4 ($2y$), bcrypt.hashpw ($2a$, $2b$), slappasswd -h {SSHA} / {SSHA256} /
# {SSHA512} (OpenLDAP's pw-sha2) / {CRYPT} -c '$6$rounds=5000$%.16s' / -c '$5$%.16s',
# openssl passwd -6, argon2-cffi at a low cost (older parameters than ours).
FORMATS = {
    "bcrypt $2y$": ("bcrypt", "$2y$04$xCzZqTIpV1icmjUX3QWy5OcJJSXnWnc5pK2RQD.MSMgd4QNNXbRlG"),
    "bcrypt $2a$": ("bcrypt", "$2a$04$9VGd9iOcjyAjfnV3iPnXvuNS/luWrfQAeZO/OzrW4OZJtnEcchQii"),
    "bcrypt $2b$": ("bcrypt", "$2b$04$addxIpTq84IqjhtJ1N0jbOT6KZ3f0ZyjtK7DVh3LKXITgbQJAk03m"),
    "{CRYPT} bcrypt": ("bcrypt", "{CRYPT}$2b$04$addxIpTq84IqjhtJ1N0jbOT6KZ3f0ZyjtK7DVh3LKXITgbQ"
                                 "JAk03m"),
    "{SSHA}": ("SSHA", "{SSHA}SScoO/HjHIFaS1FJD2VvS4qlMJN8B0rc"),
    "{SSHA256}": ("SSHA256", "{SSHA256}Zgkve/hI0/eVruW2o/X2GNYEKFiNmlq/afSpd9T0PIadSCxN15PqiQ=="),
    "{SSHA512}": ("SSHA512", "{SSHA512}Kv5G52JWjMhw+0dTkGisb9GttqQQESlIKCbnXYlAs+gIw7RTJuaKDc9W"
                             "qGaSQ/ygtVA+kZyAJj5+UQ1EkE0sPoycVrdhBIFT"),
    "{PBKDF2}": ("PBKDF2-SHA1", _pbkdf2("{PBKDF2}", "sha1")),
    "{PBKDF2-SHA256}": ("PBKDF2-SHA256", _pbkdf2("{PBKDF2-SHA256}", "sha256")),
    "{PBKDF2-SHA512}": ("PBKDF2-SHA512", _pbkdf2("{PBKDF2-SHA512}", "sha512")),
    "$pbkdf2-sha256$": ("PBKDF2-SHA256", _pbkdf2("$pbkdf2-sha256$", "sha256")),
    "$pbkdf2-sha512$": ("PBKDF2-SHA512", _pbkdf2("$pbkdf2-sha512$", "sha512")),
    "{CRYPT}$6$": ("SHA512-crypt", "{CRYPT}$6$rounds=5000$1eLIvTmrMai6OyJR$aflhBE5ElRmQyI5tdY8YR2x"
                                   "FvS1zokb87eVlvvc1i.J6dgjOcmqUvdCuCg7Ep4/lHy6xqiJg2hrik5VEw4sM"
                                   "n/"),
    "{CRYPT}$5$": ("SHA256-crypt", "{CRYPT}$5$dD09tXqs8WZGz/WS$/cDVPtZqtBBSzw/QY8djZeKO31suv.Sq5Fz"
                                   "Hcs0Wbb8"),
    "$6$": ("SHA512-crypt", "$6$abcdefgh12345678$4s33HYHEaOPBPBYS92hsTSZsbpJv2jYpIX3FZ1abEP0mt0usA"
                            "Eb4R0OkhLhc7dZrfp9Q8wkCehTYX9tjf1m8f0"),
    "argon2id, older parameters": ("argon2id", "$argon2id$v=19$m=8,t=1,p=1$pcFMUIBHlNEyDxf/7P7I"
                                               "TQ$tLGZr8Y3Ayx1rQlKnOPNY95hQtWW7skwULOgSJwniQA"),
    "argon2i": ("argon2i", "$argon2i$v=19$m=8,t=1,p=1$0aRaO+qDfUdsWoOniMk6uw$Q/f5kfMI/HtK9YDzAE4g"
                           "68bgsUsEwzgtbteJgS0crWo"),
}
# Ours, as `users add` stores it: imported as it is, never replaced.
CURRENT_ARGON2ID = ("$argon2id$v=19$m=65536,t=3,p=4$3DzxbtPyYdIJkCVMk8kBgA$P4b8h2QhpwdnTGD0mwoqy"
                    "PJeir+ABrctq2Qm6hZi4dg")

REFUSED = {
    "{SHA}DnbZZXtOAn2bNQ15s8x9m5c5eII=": "unsalted SHA-1",
    "{MD5}RqeI3wP2hP/lvl/C1cIsNA==": "unsalted MD5",
    "{SMD5}uFUfk/Dhg8sZZ1dzv4trcMxmiRc=": "salted MD5",
    "{CRYPT}S956rdtlyKsYUz4a1Au1CiRE": "DES or MD5 {CRYPT}",
    "{CRYPT}$1$abcdefgh$0000000000000000000000": "MD5-crypt",
    "$1$abcdefgh$0000000000000000000000": "MD5-crypt",
    "{CLEARTEXT}correct-horse-9": "clear-text",
    "{SHA512}c2VjcmV0": "unsalted SHA-512",
    "{PBKDF2_SHA256}AAAnEA==": "389 Directory Server's own",
    "$argon2d$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA": "argon2d",
    "correct-horse-9": "not in a format we take",
    "$2b$04$too-short": "not a well-formed bcrypt",
    "$argon2id$v=19$m=8,t=1$missing-p": "not a well-formed argon2",
    "{SSHA}" + "A" * 200: "longer than 200",
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_is_taken_checked_and_marked_for_argon2id(name):
    kind, stored = FORMATS[name]
    assert password_hashes.importable(stored) == kind
    assert password_hashes.verify(stored, PASSWORD)
    assert not password_hashes.verify(stored, PASSWORD + "x")
    assert not password_hashes.verify(stored, "")
    assert password_hashes.needs_upgrade(stored)


def test_our_own_argon2id_is_taken_and_kept():
    assert password_hashes.importable(CURRENT_ARGON2ID) == "argon2id"
    assert password_hashes.verify(CURRENT_ARGON2ID, PASSWORD)
    assert not password_hashes.needs_upgrade(CURRENT_ARGON2ID)
    assert not password_hashes.needs_upgrade(password_hashes.hash_password("another-one-1"))


@pytest.mark.parametrize("stored", sorted(REFUSED))
def test_refused_formats_say_why_without_the_value(stored):
    with pytest.raises(password_hashes.HashFormatError) as refused:
        password_hashes.importable(stored)
    message = str(refused.value)
    assert REFUSED[stored] in message
    body = stored.split("}")[-1].split("$")[-1]
    assert body not in message and PASSWORD not in message
    assert not password_hashes.verify(stored, PASSWORD)


def test_no_hash_costs_one_argon2_check_and_fails():
    assert not password_hashes.verify(None, PASSWORD)
    assert not password_hashes.verify("", PASSWORD)


def test_bcrypt_reads_72_bytes_as_the_directory_that_made_it():
    long = "é" * 40  # 80 bytes of UTF-8
    stored = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    assert password_hashes.verify(stored, long)
    assert password_hashes.verify(stored, long[:36] + "something else")
    assert not password_hashes.verify(stored, long[:35])


def test_hash_many_keeps_the_order_over_several_processes():
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    passwords = [f"password-{n:03}" for n in range(40)]  # 3 chunks
    counted = []
    hashes = password_hashes.hash_many(passwords, workers=2, done=counted.append,
                                       hasher=cheap)
    assert sum(counted) == 40 and len(counted) == 3
    assert all(cheap.verify(h, p) for h, p in zip(hashes, passwords, strict=True))
    assert len(set(hashes)) == 40


def test_an_imported_hash_costs_the_argon2_work_of_everyone_else(monkeypatch):
    checked = []
    real = password_hashes._argon2_verify
    monkeypatch.setattr(password_hashes, "_argon2_verify",
                        lambda stored, password: checked.append(stored) or real(stored, password))
    for _kind, stored in FORMATS.values():
        checked.clear()
        password_hashes.verify(stored, PASSWORD)
        assert len(checked) == 1, stored  # the dummy, or the argon2 hash itself
    checked.clear()
    password_hashes.verify(None, PASSWORD)
    assert checked == [password_hashes.DUMMY_HASH]
