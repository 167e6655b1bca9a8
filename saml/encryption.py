"""XML Encryption with xmlsec: our signed assertions to an SP's certificate
(<saml:EncryptedAssertion>), and the NameIDs SPs encrypt to our key (<saml:EncryptedID>).

Standard shape, the one Shibboleth SP 3 and python3-saml decrypt: an xenc:EncryptedData
(Type Element) whose ds:KeyInfo holds the xenc:EncryptedKey (RSA-OAEP, MGF1 with SHA-1: the
rsa-oaep-mgf1p URI) with the SP's certificate in its own ds:KeyInfo. The decision of whether and
with which data algorithm is app/core/sp_encryption.py's.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Sequence
from copy import deepcopy

import xmlsec
from lxml import etree

from app.core.sp_encryption import (
    AES128_CBC,
    AES128_GCM,
    AES256_CBC,
    AES256_GCM,
    RSA_OAEP_MGF1P,
    XMLENC,
    XMLENC11,
    AssertionEncryption,
)
from app.i18n import N_
from saml.xml import NS, SamlError, parse, xpath

# what we encrypt with: the data algorithm's xmlsec transform and key size in bits
_DATA_TRANSFORMS = {
    AES256_GCM: (xmlsec.Transform.AES256_GCM, 256),
    AES128_GCM: (xmlsec.Transform.AES128_GCM, 128),
    AES256_CBC: (xmlsec.Transform.AES256, 256),
    AES128_CBC: (xmlsec.Transform.AES128, 128),
}
_KEY_TRANSPORTS = {RSA_OAEP_MGF1P: xmlsec.Transform.RSA_OAEP}
# what we decrypt: AES (GCM or CBC) and RSA-OAEP only; never RSA PKCS#1 v1.5 (Bleichenbacher)
# nor anything that fetches its cipher text from elsewhere (CipherReference)
_ACCEPTED_DATA = {XMLENC11 + f"aes{bits}-gcm" for bits in (128, 192, 256)} | {
    XMLENC + f"aes{bits}-cbc" for bits in (128, 192, 256)}
_ACCEPTED_KEY_TRANSPORT = {RSA_OAEP_MGF1P, XMLENC11 + "rsa-oaep"}
_ELEMENT = XMLENC + "Element"
_SAML = "{" + NS["saml"] + "}"
_XENC = "{" + NS["xenc"] + "}"
_DS = "{" + NS["ds"] + "}"
UNDECRYPTABLE = N_("The NameID of the logout request is encrypted to a key this sign-in service "
                 "does not have, or cannot be decrypted.")


def _certificate_key(cert_b64: str) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(base64.b64decode(cert_b64, validate=True),
                                      xmlsec.KeyFormat.CERT_DER, None)
    except (binascii.Error, ValueError, xmlsec.Error) as exc:
        raise SamlError(N_("The service provider's encryption certificate in its metadata cannot "
                        "be used. Ask its administrators for new metadata.")) from exc


_LOCAL = threading.local()
_MANAGERS_PER_THREAD = 64


def _manager(cert_b64: str) -> xmlsec.KeysManager:
    """A keys manager holding the SP's certificate, kept per thread: making one costs about
    10 ms (benchmarks/saml_response.py), more than the encryption itself."""
    managers: dict[str, xmlsec.KeysManager] = _LOCAL.__dict__.setdefault("managers", {})
    manager = managers.get(cert_b64)
    if manager is None:
        manager = xmlsec.KeysManager()
        manager.add_key(_certificate_key(cert_b64))
        if len(managers) >= _MANAGERS_PER_THREAD:
            managers.pop(next(iter(managers)))
        managers[cert_b64] = manager
    return manager


def encrypt_assertion(signed_assertion: str, encryption: AssertionEncryption) -> str:
    """The signed assertion inside an <saml:EncryptedAssertion>, encrypted to the SP's
    certificate; a SamlError (safe to show) if that certificate cannot be used."""
    transform, bits = _DATA_TRANSFORMS[encryption.algorithm]
    # Parsed together, the assertion keeps its own namespace declarations, so the encrypted
    # text stands alone (appended to a new parent, lxml would drop them as redundant).
    wrapper = parse(f'<saml:EncryptedAssertion xmlns:saml="{NS["saml"]}">{signed_assertion}'
                    "</saml:EncryptedAssertion>")
    assertion = wrapper[0]
    manager = _manager(encryption.cert)
    data = xmlsec.template.encrypted_data_create(wrapper, transform,
                                                 type=xmlsec.EncryptionType.ELEMENT, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(data, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(
        key_info, _KEY_TRANSPORTS[encryption.key_transport])
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    # the SP's certificate, so that an SP with several keys knows which one to use
    xmlsec.template.add_x509_data(xmlsec.template.encrypted_data_ensure_key_info(encrypted_key))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(xmlsec.KeyData.AES, bits, xmlsec.KeyDataType.SESSION)
    try:
        context.encrypt_xml(data, assertion)
    except xmlsec.Error as exc:  # e.g. not an RSA key
        raise SamlError(N_("The service provider's encryption certificate in its metadata cannot "
                        "be used. Ask its administrators for new metadata.")) from exc
    return etree.tostring(wrapper).decode()


def _one(node: etree._Element, path: str, what: str) -> etree._Element:
    found = xpath(node, path)
    if len(found) != 1:
        raise SamlError(N_("The logout request's encrypted NameID has %(count)d %(what)s."),
                        count=len(found), what=what)
    return found[0]


def _checked_cipher(node: etree._Element, accepted: set[str], what: str) -> None:
    """An EncryptedData or EncryptedKey with one accepted algorithm and its cipher text inline."""
    method = _one(node, "xenc:EncryptionMethod", f"{what} methods")
    if method.get("Algorithm") not in accepted:
        raise SamlError(N_("The logout request's encrypted NameID uses a %(what)s algorithm "
                           "that is not accepted."), what=what)
    _one(node, "xenc:CipherData/xenc:CipherValue", f"{what} cipher values")
    if xpath(node, "xenc:CipherData/xenc:CipherReference"):
        raise SamlError(N_("The logout request's encrypted NameID refers to data elsewhere."))


def _normalised(encrypted_id: etree._Element) -> etree._Element:
    """A copy of the EncryptedID whose EncryptedData is checked and carries its one
    EncryptedKey (from its KeyInfo, or beside it in the EncryptedID as SAML allows) in its
    KeyInfo, without any KeyInfo of the key's own: we try our keys ourselves."""
    copy = deepcopy(encrypted_id)
    data = _one(copy, "xenc:EncryptedData", "EncryptedData elements")
    if data.get("Type", _ELEMENT) != _ELEMENT:
        raise SamlError(N_("The logout request's encrypted NameID is not an encrypted element."))
    _checked_cipher(data, _ACCEPTED_DATA, "data encryption")
    keys = xpath(data, "ds:KeyInfo/xenc:EncryptedKey") + xpath(copy, "xenc:EncryptedKey")
    if len(keys) != 1:
        raise SamlError(N_("The logout request's encrypted NameID has %(count)d encrypted keys."),
                        count=len(keys))
    key = keys[0]
    _checked_cipher(key, _ACCEPTED_KEY_TRANSPORT, "key transport")
    for info in xpath(key, "ds:KeyInfo"):
        key.remove(info)
    for info in xpath(data, "ds:KeyInfo"):
        data.remove(info)
    key_info = etree.Element(_DS + "KeyInfo", nsmap={"ds": NS["ds"]})
    key_info.append(key)
    method = xpath(data, "xenc:EncryptionMethod")[0]
    data.insert(data.index(method) + 1, key_info)
    return copy


def decrypt_nameid(encrypted_id: etree._Element, key_pems: Sequence[str]) -> etree._Element:
    """The <saml:NameID> inside an <saml:EncryptedID>, decrypted with one of our encryption
    keys (tried in turn), or a SamlError (safe to show; one message for every failure to
    decrypt)."""
    checked = _normalised(encrypted_id)
    for pem in key_pems:
        attempt = deepcopy(checked)
        manager = xmlsec.KeysManager()
        try:
            manager.add_key(xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None))
            nameid = xmlsec.EncryptionContext(manager).decrypt(
                _one(attempt, "xenc:EncryptedData", "EncryptedData elements"))
        except xmlsec.Error:
            continue
        if not isinstance(nameid, etree._Element) or nameid.tag != _SAML + "NameID":
            break  # the same answer as any other failure: no oracle on what decrypted
        return nameid
    raise SamlError(UNDECRYPTABLE)
