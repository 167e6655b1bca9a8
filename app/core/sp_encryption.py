"""Which service providers get their assertions encrypted, and with which algorithm.

An SP whose metadata carries an encryption certificate gets every assertion encrypted to it
(unless an operator switched that off for the SP): AES-256-GCM for the data, the AES key
carried by RSA-OAEP. AES-CBC is chosen only for an SP whose metadata lists EncryptionMethods
with a CBC cipher and no GCM one: CBC has no integrity of its own (padding-oracle attacks on
XML Encryption), so it is what an SP gets only when it says it can do nothing better.

The SAML door does the XML; here algorithms are plain URI strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core import service_providers as sps
from app.models import ServiceProvider

XMLENC = "http://www.w3.org/2001/04/xmlenc#"
XMLENC11 = "http://www.w3.org/2009/xmlenc11#"
AES256_GCM = XMLENC11 + "aes256-gcm"
AES128_GCM = XMLENC11 + "aes128-gcm"
AES256_CBC = XMLENC + "aes256-cbc"
AES128_CBC = XMLENC + "aes128-cbc"
RSA_OAEP_MGF1P = XMLENC + "rsa-oaep-mgf1p"
# the data algorithms we encrypt with, best first; the first is the default
DATA_ALGORITHMS = (AES256_GCM, AES128_GCM, AES256_CBC, AES128_CBC)
# the key transport: RSA-OAEP with MGF1 and SHA-1, as Shibboleth SP 3 and python3-saml decrypt
KEY_TRANSPORT = RSA_OAEP_MGF1P


@dataclass(frozen=True)
class AssertionEncryption:
    cert: str  # base64 DER, as the SP's metadata has it
    algorithm: str  # the data algorithm's URI (one of DATA_ALGORITHMS)
    key_transport: str = KEY_TRANSPORT


def data_algorithm(listed: list[str]) -> str:
    """The best of our algorithms among those the SP lists; AES-256-GCM when it lists none
    of them (an SP's list is often empty or only names the key transport)."""
    usable = [a for a in DATA_ALGORITHMS if a in listed]
    return usable[0] if usable else DATA_ALGORITHMS[0]


def for_assertions(sp: ServiceProvider) -> AssertionEncryption | None:
    """How to encrypt this SP's assertions, or None to send them plain (signed, as always).

    The first encryption certificate of its metadata is used."""
    certs = sps.encryption_certs(sp)
    if not certs or not sp.encrypt_assertions:
        return None
    return AssertionEncryption(cert=certs[0], algorithm=data_algorithm(sps.encryption_methods(sp)))
