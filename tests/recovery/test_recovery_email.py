"""The "a recovery passcode was issued" email, against a real SMTP server (aiosmtpd) on
127.0.0.1: plain, STARTTLS with login, and mail servers that fail."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import audit_rows, make_user
from tests.helpers import recovery_steps as steps
from tests.helpers.mail import SMTP_PASSWORD, SMTP_USER, Inbox, delivered
from tests.peers.live import free_port


def self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "um2fa test smtp")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


SMTP_PORT = "the test's own"  # replaced by `smtp_port`, picked just before the server binds it


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def settings_overrides(request, smtp_port) -> dict:
    """The test's settings (STARTTLS tests' from tls_settings, the others' from parametrize),
    with its SMTP server's port: picked per test, not at import (a port free when the module
    was imported may be taken by the time its tests run)."""
    if "tls_settings" in request.fixturenames:
        wanted = dict(request.getfixturevalue("tls_settings"))
    else:
        wanted = dict(getattr(request, "param", {}))
    if wanted.get("smtp_port") == SMTP_PORT:
        wanted["smtp_port"] = smtp_port
    return wanted


@pytest.fixture
def inbox(smtp_port):
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def tls_inbox(tmp_path_factory, smtp_port):
    cert, key = self_signed(tmp_path_factory.mktemp("smtp-tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Inbox()
    box.cafile = cert
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port, tls_context=context,
                            require_starttls=True, authenticator=box.authenticate,
                            auth_require_tls=True)
    controller.start()
    yield box
    controller.stop()


SMTP = {"smtp_host": "127.0.0.1", "smtp_port": SMTP_PORT, "smtp_from": "2fa@um.example.edu",
        "smtp_timeout": 5}


@pytest.mark.parametrize("settings_overrides", [SMTP], indirect=True)
def test_issuing_a_passcode_sends_a_notice_without_the_passcode(app, client, inbox):
    make_user(app)
    code = steps.passcode_of(steps.walk(client)[2])
    [(sender, recipients, raw)] = delivered(inbox)
    assert sender == "2fa@um.example.edu" and recipients == ["alice@example.edu"]
    msg = message_from_bytes(raw, policy=default_policy)
    assert msg["Subject"] == "UM 2FA: A recovery passcode was issued for your account"
    text = msg.get_content()
    assert "A recovery passcode was issued for your account (alice)" in text
    assert "If it was not you" in text and "127.0.0.1" in text and "/this-wasnt-me/" in text
    grouped = f"{code[:3]} {code[3:6]} {code[6:]}"
    assert code not in raw.decode() and grouped not in raw.decode()
    [notice] = audit_rows(app, "recovery.notify")
    assert notice.result == "ok" and notice.username == "alice"


@pytest.mark.parametrize("settings_overrides", [SMTP], indirect=True)
def test_a_failed_verification_sends_nothing(app, client, inbox):
    make_user(app)
    assert steps.walk(client, dob="1970-01-01")[2].status_code == 401
    assert delivered(inbox) == [] and audit_rows(app, "recovery.notify") == []


@pytest.mark.parametrize("settings_overrides", [SMTP], indirect=True)
def test_a_user_without_an_email_address_is_skipped(app, client, inbox):
    make_user(app, email="")
    assert steps.passcode_of(steps.walk(client)[2])
    assert delivered(inbox) == []
    [notice] = audit_rows(app, "recovery.notify")
    assert notice.result == "skipped"


@pytest.fixture
def tls_settings(tls_inbox) -> dict:
    return {**SMTP, "smtp_starttls": "true", "smtp_user": SMTP_USER,
            "smtp_password": SMTP_PASSWORD, "smtp_cafile": tls_inbox.cafile}


def test_starttls_and_login(tls_settings, app, client, tls_inbox):
    make_user(app)
    assert steps.passcode_of(steps.walk(client)[2])
    assert len(delivered(tls_inbox)) == 1 and tls_inbox.logins == [SMTP_USER]
    [notice] = audit_rows(app, "recovery.notify")
    assert notice.result == "ok" and SMTP_PASSWORD not in notice.detail


@pytest.mark.parametrize("settings_overrides", [{**SMTP, "smtp_starttls": "true"}], indirect=True)
def test_an_untrusted_certificate_is_refused_and_recovery_still_works(app, client, tls_inbox):
    make_user(app)
    response = steps.walk(client)[2]
    assert response.status_code == 200 and steps.passcode_of(response)
    assert delivered(tls_inbox) == []
    [notice] = audit_rows(app, "recovery.notify")
    assert notice.result == "fail" and "SSL" in notice.detail


@pytest.mark.parametrize("settings_overrides", [{**SMTP, "smtp_port": free_port()}], indirect=True)
def test_a_mail_server_that_is_down_does_not_stop_recovery(app, client, caplog):
    make_user(app)
    response = steps.walk(client)[2]
    code = steps.passcode_of(response)
    delivered(Inbox())  # the mail threads are done
    [notice] = audit_rows(app, "recovery.notify")
    assert notice.result == "fail" and "Connection" in notice.detail
    assert "not sent" in caplog.text and code not in caplog.text
