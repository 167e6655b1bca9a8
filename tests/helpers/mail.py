"""An SMTP inbox for aiosmtpd (the recovery email, notices and device API tests)."""

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


def delivered(box: Inbox, timeout: float = 10.0) -> list:
    """The box's messages once the mail threads are idle (notices leave after the commit, from
    app/core/notify.py's threads)."""
    from app.core import notify

    assert notify.wait_idle(timeout), f"mail still being sent after {timeout} s"
    return list(box.messages)


class running_inbox:  # noqa: N801 - used as a context manager, like a function
    """An aiosmtpd server on 127.0.0.1:`port` speaking real SMTP, with an Inbox."""

    def __init__(self, port: int, **controller_options) -> None:
        from aiosmtpd.controller import Controller

        self.box = Inbox()
        self.controller = Controller(self.box, hostname="127.0.0.1", port=port,
                                     **controller_options)

    def __enter__(self) -> Inbox:
        self.controller.start()
        return self.box

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
