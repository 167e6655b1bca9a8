"""An SMTP inbox for aiosmtpd (the recovery email and device API tests)."""

from __future__ import annotations

from aiosmtpd.smtp import AuthResult

SMTP_USER, SMTP_PASSWORD = "um2fa-mailer", "mailer-secret-1"


class Inbox:
    """aiosmtpd handler: keeps what it receives, and who logged in."""

    def __init__(self) -> None:
        self.messages: list = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (SMTP_USER,
                                                                          SMTP_PASSWORD)
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)
