"""Encrypted assertions (issue 14, point 4): to every SP whose metadata has an encryption key,
AES-256-GCM with RSA-OAEP key transport (AES-CBC only for an SP that lists only CBC), signed
then encrypted; the IdP's own encryption key for NameIDs that SPs encrypt in LogoutRequests."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.core import service_providers as sps
from saml.requests import parse_logout_request, reveal_nameid
from saml.sp_metadata import parse_sp_metadata
from saml.xml import NS, SamlError, inflate
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    make_user,
)
from tests.helpers.sso import (
    IDP,
    go,
    idp_metadata,
    make_sp,
    sign_in_through_prompt,
    signed_in,
    through_the_prompt,
)
from tests.peers.saml_sp import MFA, TestSP, key_and_cert

GCM256 = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
CBC128 = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
CBC256 = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
XENC = "{http://www.w3.org/2001/04/xmlenc#}"


@pytest.fixture
def settings_overrides():
    return {"base_url": IDP}


def signed_in_response(app, client, clock, sp: TestSP) -> tuple[str, str, etree._Element]:
    """alice signs in to `sp` with a passcode: (the Response in base64, the request's ID, the
    Response's XML as sent)."""
    make_user(app, email="alice@example.edu", role="staff", name="Alice Chan")
    device_id, secret = add_totp_device(app)
    response_b64, request_id = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    return response_b64, request_id, etree.fromstring(base64.b64decode(response_b64))


def data_algorithm(root: etree._Element) -> str:
    return root.xpath("saml:EncryptedAssertion/xenc:EncryptedData/xenc:EncryptionMethod/"
                      "@Algorithm", namespaces=NS)[0]


def register_metadata(app, xml: str) -> None:
    with committed(app) as c:
        sps.register(c, TEST_ORIGIN, parse_sp_metadata(xml).registration(), replace=True)


def with_encryption_methods(metadata: str, *algorithms: str) -> str:
    """The SP's metadata with EncryptionMethod elements in its encryption KeyDescriptor."""
    methods = "".join(f'<md:EncryptionMethod Algorithm="{a}"/>' for a in algorithms)
    changed, count = re.subn(r'(<md:KeyDescriptor use="encryption">.*?</ds:KeyInfo>)',
                             r"\1" + methods, metadata, flags=re.S)
    assert count == 1, metadata
    return changed


def test_an_sp_with_an_encryption_key_gets_an_aes256_gcm_encrypted_assertion(app, client,
                                                                             clock):
    sp = make_sp(client, app, encrypted=True)
    response_b64, request_id, root = signed_in_response(app, client, clock, sp)
    # no plain assertion anywhere in what the browser carries
    assert root.xpath("//saml:Assertion", namespaces=NS) == []
    assert b"alice" not in base64.b64decode(response_b64)
    encrypted = root.xpath("saml:EncryptedAssertion/xenc:EncryptedData", namespaces=NS)
    assert len(encrypted) == 1
    assert encrypted[0].get("Type") == "http://www.w3.org/2001/04/xmlenc#Element"
    assert data_algorithm(root) == GCM256
    assert encrypted[0].xpath("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod/@Algorithm",
                              namespaces=NS) == [OAEP]
    # the response itself is signed, over the encrypted assertion
    assert root.xpath("ds:Signature", namespaces=NS)
    auth = sp.acs_post(response_b64, request_id)  # wantAssertionsEncrypted, wantAssertionsSigned
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated() and auth.get_last_authn_contexts() == [MFA]
    assert auth.get_friendlyname_attributes()["uid"] == ["alice"]


def test_the_assertion_is_signed_before_it_is_encrypted(app, client, clock):
    sp = make_sp(client, app, encrypted=True)
    _, _, root = signed_in_response(app, client, clock, sp)
    sp_key = sp.settings().get_sp_key()
    assertion = OneLogin_Saml2_Utils.decrypt_element(
        root.xpath("saml:EncryptedAssertion/xenc:EncryptedData", namespaces=NS)[0], sp_key)
    assert assertion.tag == "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"
    idp = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata(client))["idp"]
    cert = OneLogin_Saml2_Utils.format_cert(idp["x509certMulti"]["signing"][0])
    assert OneLogin_Saml2_Utils.validate_sign(etree.tostring(assertion), cert,
                                              xpath="/saml:Assertion/ds:Signature",
                                              raise_exceptions=True)


def test_an_sp_that_lists_only_cbc_gets_aes256_cbc(app, client, clock):
    sp = TestSP(idp_metadata=idp_metadata(client), encrypted=True)
    register_metadata(app, with_encryption_methods(sp.metadata(), CBC128, CBC256, OAEP))
    response_b64, request_id, root = signed_in_response(app, client, clock, sp)
    assert data_algorithm(root) == CBC256
    auth = sp.acs_post(response_b64, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()


def test_an_sp_that_lists_gcm_and_cbc_gets_gcm(app, client, clock):
    sp = TestSP(idp_metadata=idp_metadata(client), encrypted=True)
    register_metadata(app, with_encryption_methods(sp.metadata(), CBC256, GCM256))
    response_b64, request_id, root = signed_in_response(app, client, clock, sp)
    assert data_algorithm(root) == GCM256
    assert sp.acs_post(response_b64, request_id).is_authenticated()


def test_an_sp_without_an_encryption_key_gets_a_plain_signed_assertion(app, client, clock):
    sp = make_sp(client, app)
    response_b64, request_id, root = signed_in_response(app, client, clock, sp)
    assert root.xpath("saml:EncryptedAssertion", namespaces=NS) == []
    assert root.xpath("saml:Assertion/ds:Signature", namespaces=NS)
    assert sp.acs_post(response_b64, request_id).is_authenticated()


def test_an_sp_switched_off_gets_a_plain_assertion(app, client, clock):
    sp = make_sp(client, app, encrypted=True)
    with committed(app) as c:
        sps.find(c, sp.entity_id).encrypt_assertions = False
    _, _, root = signed_in_response(app, client, clock, sp)
    assert root.xpath("saml:EncryptedAssertion", namespaces=NS) == []
    assert root.xpath("saml:Assertion/ds:Signature", namespaces=NS)


def test_an_unusable_encryption_certificate_gives_an_error_page(app, client, clock):
    sp = make_sp(client, app, encrypted=True)
    with committed(app) as c:
        sps.find(c, sp.entity_id).encryption_certs = '["bm90IGEgY2VydGlmaWNhdGU="]'
    make_user(app)
    device_id, secret = add_totp_device(app)
    page, _ = through_the_prompt(client, sp, clock, secret, device_id)
    assert page.status_code == 400 and "SAMLResponse" not in page.get_data(as_text=True)
    assert "encryption certificate" in page.get_data(as_text=True)


# --- the IdP's metadata and encryption key --------------------------------------------------

def test_metadata_publishes_an_encryption_key_apart_from_the_signing_key(app, client):
    xml = client.get("/saml/metadata?signed=0").get_data(as_text=True)
    root = etree.fromstring(xml.encode())
    idp = root.xpath("md:IDPSSODescriptor", namespaces=NS)[0]
    assert etree.QName(idp[0]).localname == "Extensions"  # shibmd:Scope stays first
    signing = idp.xpath("md:KeyDescriptor[@use='signing']", namespaces=NS)
    encryption = idp.xpath("md:KeyDescriptor[@use='encryption']", namespaces=NS)
    assert len(signing) == 1 and len(encryption) == 1
    assert encryption[0].xpath("md:EncryptionMethod/@Algorithm", namespaces=NS) == [
        GCM256, "http://www.w3.org/2009/xmlenc11#aes128-gcm", CBC256, CBC128, OAEP]
    parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml)["idp"]["x509certMulti"]
    assert len(parsed["signing"]) == 1 and len(parsed["encryption"]) == 1
    assert parsed["signing"] != parsed["encryption"]
    instance = app.config["UM2FA"].instance_dir / "saml"
    for name in ("enc-key-001.pem", "enc-cert-001.pem"):
        assert oct((instance / name).stat().st_mode & 0o777) == "0o600"


def test_rotating_the_encryption_key_publishes_the_new_one_first(app, client, runner):
    before = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata(client))["idp"]
    result = runner.invoke(args=["saml", "rotate-key", "--encryption"])
    assert result.exit_code == 0, result.output
    assert "encryption key 2 added" in result.output
    app.extensions.pop("saml_encryption_keys", None)  # what a restart does
    after = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata(client))["idp"]
    assert after["x509certMulti"]["signing"] == before["x509certMulti"]["signing"]
    encryption = after["x509certMulti"]["encryption"]
    assert len(encryption) == 2 and encryption[1] == before["x509certMulti"]["encryption"][0]


# --- LogoutRequests with an encrypted NameID ------------------------------------------------

def signed_in_at_encrypting_sp(app, client, clock, **kwargs):
    sp = make_sp(client, app, encrypted=True, encrypt_nameid=True, **kwargs)
    response_b64, request_id, _ = signed_in_response(app, client, clock, sp)
    auth = sp.acs_post(response_b64, request_id)
    assert auth.is_authenticated() and signed_in(client)
    return sp, auth


def logout_request_xml(url: str) -> bytes:
    return inflate(parse_qs(urlsplit(url).query)["SAMLRequest"][0])


def test_a_logout_request_with_an_encrypted_nameid_is_understood(app, client, clock):
    sp, auth = signed_in_at_encrypting_sp(app, client, clock)
    url, logout_id = sp.logout(auth.get_nameid(), auth.get_session_index())
    xml = logout_request_xml(url)
    assert b"EncryptedID" in xml and auth.get_nameid().encode() not in xml
    parsed = parse_logout_request(xml)
    assert parsed.nameid == "" and parsed.encrypted_id
    with app.app_context():
        from app.web.sso_base import encryption_keys

        keys = [k.key_pem for k in encryption_keys()]
    assert reveal_nameid(parsed, keys).nameid == auth.get_nameid()
    response = go(client, url)
    assert response.status_code == 302 and response.headers["Location"].startswith(
        "http://sp.test/sls?SAMLResponse=")
    assert sp.sls(response.headers["Location"], logout_id).get_errors() == []
    assert not signed_in(client)


def test_a_nameid_encrypted_to_another_key_is_refused_with_an_error_page(app, client, clock):
    idp = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata(client))["idp"]
    _, other_cert = key_and_cert("someone-else")
    idp["x509certMulti"]["encryption"] = [other_cert]
    sp, auth = signed_in_at_encrypting_sp(app, client, clock, extra={"idp": idp})
    url, _ = sp.logout(auth.get_nameid(), auth.get_session_index())
    response = go(client, url)
    assert response.status_code == 400 and "encrypted" in response.get_data(as_text=True)
    assert signed_in(client)
    assert audit_rows(app, "saml.logout")[-1].result == "refused"


def test_garbage_in_an_encrypted_nameid_is_refused_cleanly():
    xml = (b'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
           b'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_x" Version="2.0">'
           b"<saml:Issuer>http://sp.test/metadata</saml:Issuer><saml:EncryptedID>"
           b'<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">'
           b'<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"/>'
           b"<xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData>"
           b"</xenc:EncryptedData></saml:EncryptedID></samlp:LogoutRequest>")
    key_pem, _ = key_and_cert("x")
    with pytest.raises(SamlError):
        reveal_nameid(parse_logout_request(xml), [key_pem])


def test_after_rotation_a_nameid_encrypted_to_the_older_key_is_still_understood(app, client,
                                                                                clock, runner):
    sp, auth = signed_in_at_encrypting_sp(app, client, clock)  # has the old metadata
    assert runner.invoke(args=["saml", "rotate-key", "--encryption"]).exit_code == 0
    app.extensions.pop("saml_encryption_keys", None)  # what a restart does
    url, _ = sp.logout(auth.get_nameid(), auth.get_session_index())
    response = go(client, url)
    assert response.status_code == 302 and not signed_in(client)


def encrypted_logout_request(cert: str) -> bytes:
    """A LogoutRequest whose NameID python3-saml encrypted to `cert` (AES-128-CBC, RSA-OAEP)."""
    encrypted = OneLogin_Saml2_Utils.generate_name_id(
        "opaque-id", "http://sp.test/metadata",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", cert)
    return (f'<samlp:LogoutRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" '
            f'ID="_x" Version="2.0"><saml:Issuer>http://sp.test/metadata</saml:Issuer>'
            f"{encrypted}</samlp:LogoutRequest>").encode()


@pytest.mark.parametrize(("change", "refused"), [
    (lambda x: x, None),  # as python3-saml sends it: decrypted
    (lambda x: x.replace(b"xmlenc#rsa-oaep-mgf1p", b"xmlenc#rsa-1_5"), "key transport"),
    (lambda x: x.replace(b"xmlenc#aes128-cbc", b"xmlenc#tripledes-cbc"), "data encryption"),
    (lambda x: re.sub(rb"<xenc:CipherValue>[^<]*</xenc:CipherValue>(\s*</xenc:CipherData>\s*"
                      rb"</xenc:EncryptedData>)",
                      rb'<xenc:CipherReference URI="http://127.0.0.1:9/x"/>\1', x),
     "cipher values"),
    (lambda x: re.sub(rb"(<xenc:EncryptedKey>.*</xenc:EncryptedKey>)", rb"\1\1", x, flags=re.S),
     "2 encrypted keys"),
])
def test_only_aes_and_rsa_oaep_with_inline_cipher_text_are_decrypted(change, refused):
    key_pem, cert_pem = key_and_cert("idp-enc")
    logout = parse_logout_request(change(encrypted_logout_request(cert_pem)))
    if refused is None:
        assert reveal_nameid(logout, [key_pem]).nameid == "opaque-id"
        return
    with pytest.raises(SamlError, match=refused):
        reveal_nameid(logout, [key_pem])


def test_a_logout_request_with_two_subjects_is_refused():
    _, cert_pem = key_and_cert("idp-enc")
    xml = encrypted_logout_request(cert_pem).replace(
        b"<saml:EncryptedID>", b"<saml:NameID>someone</saml:NameID><saml:EncryptedID>")
    with pytest.raises(SamlError, match="more than one subject"):
        parse_logout_request(xml)


def test_an_encrypted_nameid_from_an_sp_that_cannot_sign_is_not_decrypted(app, client, clock):
    """An SP registered without a signing certificate is trusted on its word for a plain
    LogoutRequest, but nothing from an unauthenticated sender is decrypted: no oracle."""
    from sqlalchemy import update

    from app.models import ServiceProvider

    sp, auth = signed_in_at_encrypting_sp(app, client, clock)
    with committed(app) as c:
        c.db.execute(update(ServiceProvider).values(certs="[]", sign_requests=False))
    url, _ = sp.logout(auth.get_nameid(), auth.get_session_index())
    unsigned = re.sub(r"&(SigAlg|Signature)=[^&]*", "", url)
    response = go(client, unsigned)
    assert response.status_code == 400
    assert "must come in a signed logout request" in response.get_data(as_text=True)
    assert signed_in(client)
