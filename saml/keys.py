"""The IdP's key pairs in <instance>/saml/: generated on first use on SQLite (one machine), by
`um2fa keys generate` with a shared database; rotated by adding.

Signing keys are key-NNN.pem / cert-NNN.pem: the highest number signs, every one is published
in the metadata so that service providers can move to a new key before the old one goes.

Encryption keys (for what SPs encrypt to us: the NameID of a LogoutRequest) are a separate pair,
enc-key-NNN.pem / enc-cert-NNN.pem: every one is published (the newest first, the one SPs pick)
and every one is tried when decrypting, so an SP that still encrypts to an older one is
understood until that pair is removed by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.config.files import private_directory, write_private
from app.config.keyfiles import MissingKeys

SIGNING = ""  # file-name prefixes of the two kinds of key pair
ENCRYPTION = "enc-"


@dataclass(frozen=True)
class KeyPair:
    number: int
    key_pem: str
    cert_pem: str

    @property
    def cert_b64(self) -> str:
        """The certificate as it goes into <ds:X509Certificate>."""
        lines = self.cert_pem.strip().splitlines()
        return "".join(line for line in lines if not line.startswith("-----"))


SigningKey = KeyPair  # the name the signing code has always used


def _directory(instance_dir: Path) -> Path:
    return instance_dir / "saml"


def _numbers(directory: Path, prefix: str) -> list[int]:
    found = []
    for path in directory.glob(f"{prefix}key-*.pem"):
        stem = path.stem.removeprefix(f"{prefix}key-")
        if stem.isdigit() and (directory / f"{prefix}cert-{stem}.pem").exists():
            found.append(int(stem))
    return sorted(found)


def generate(instance_dir: Path, common_name: str, prefix: str = SIGNING) -> KeyPair:
    """A new RSA-3072 key and self-signed certificate (10 years), numbered after the last."""
    directory = _directory(instance_dir)
    private_directory(instance_dir)
    private_directory(directory)
    number = (_numbers(directory, prefix) or [0])[-1] + 1
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "um2fa")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    write_private(directory / f"{prefix}key-{number:03d}.pem", key_pem)
    # public, but 0600 like every file of the instance directory
    write_private(directory / f"{prefix}cert-{number:03d}.pem", cert_pem)
    return KeyPair(number, key_pem.decode(), cert_pem.decode())


def exists(instance_dir: Path, prefix: str = SIGNING) -> bool:
    """Whether there is a key pair of the kind."""
    directory = _directory(instance_dir)
    return directory.exists() and bool(_numbers(directory, prefix))


def where(instance_dir: Path, prefix: str = SIGNING) -> str:
    """How an error or `um2fa keys generate` names a kind of key pair."""
    kind = "encryption" if prefix == ENCRYPTION else "signing"
    return (f"SAML {kind} key ({_directory(instance_dir)}/{prefix}key-NNN.pem and "
            f"{prefix}cert-NNN.pem)")


def load_all(instance_dir: Path, common_name: str, prefix: str = SIGNING, *,
             make: bool) -> list[KeyPair]:
    """Every key of the kind, oldest first. When there is none: with `make` (SQLite: one
    machine) one is generated, else MissingKeys (app/config/keyfiles.py)."""
    directory = _directory(instance_dir)
    numbers = _numbers(directory, prefix) if directory.exists() else []
    if not numbers:
        if not make:
            raise MissingKeys([where(instance_dir, prefix)])
        return [generate(instance_dir, common_name, prefix)]
    return [KeyPair(n, (directory / f"{prefix}key-{n:03d}.pem").read_text(),
                    (directory / f"{prefix}cert-{n:03d}.pem").read_text()) for n in numbers]
