"""Email to users about security events on their account (SMTP, when configured).

A message never carries a passcode or any other secret. A mail server that is down or refuses
the message does not stop the event itself: the failure is logged and audited.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from app.config import Settings
from app.core import audit
from app.core.context import Context, Origin
from app.models import PushRequest, User

log = logging.getLogger("um2fa.notify")

RECOVERY_SUBJECT = "UM 2FA: a recovery passcode was issued for your account"


def recovery_notice(settings: Settings, user: User, when: datetime, expires_at: datetime,
                    client_addr: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = RECOVERY_SUBJECT
    msg["From"] = settings.smtp_from
    msg["To"] = user.email
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    name = user.display_name or user.username
    msg.set_content(
        f"Dear {name},\n\n"
        f"a recovery passcode was issued for your account ({user.username}) in the recovery "
        f"portal on {when:%Y-%m-%d %H:%M} UTC, from the address {client_addr or 'unknown'}.\n"
        f"It works once and expires at {expires_at:%Y-%m-%d %H:%M} UTC. Any earlier recovery "
        f"passcode no longer works.\n\n"
        f"If it was you, there is nothing more to do.\n\n"
        f"If it was not you, someone knows your UMPASS password and personal details: change "
        f"your UMPASS password now and contact the IT help desk at once, so that they can lock "
        f"the account and check which devices were added to it.\n\n"
        f"This message was sent automatically by {settings.issuer}; please do not reply.\n")
    return msg


def send(settings: Settings, msg: EmailMessage) -> None:
    """Raises OSError or smtplib.SMTPException when the message cannot be handed over."""
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.smtp_timeout) as smtp:
        if settings.smtp_starttls:
            tls = ssl.create_default_context(cafile=settings.smtp_cafile or None)
            smtp.starttls(context=tls)
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(msg)


def recovery_issued(ctx: Context, origin: Origin, user: User, expires_at: datetime) -> bool:
    """Tell the user a recovery passcode was issued; true when a message was handed over."""
    settings = ctx.settings
    if not settings.smtp_host:
        return False
    if not user.email:
        audit.record(ctx, origin, "recovery.notify", "skipped", username=user.username,
                     detail="no email address")
        return False
    msg = recovery_notice(settings, user, ctx.now(), expires_at, origin.client_addr)
    return _send_audited(ctx, origin, msg, "recovery.notify", user, f"to {user.email}")


def _send_audited(ctx: Context, origin: Origin, msg: EmailMessage, action: str, user: User,
                  detail: str) -> bool:
    """Hand `msg` over and audit it; a mail server that fails is logged and audited only."""
    try:
        send(ctx.settings, msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("%s about %s not sent: %s", action, user.username, type(exc).__name__)
        audit.record(ctx, origin, action, "fail", username=user.username,
                     detail=type(exc).__name__)
        return False
    audit.record(ctx, origin, action, "ok", username=user.username, detail=detail)
    return True


def fraud_notice(settings: Settings, to: tuple[str, ...], user: User, request: PushRequest,
                 until: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"UM 2FA: a push to {user.username} was reported as fraud"
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(until)
    msg["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    msg.set_content(
        f"{user.username} ({user.display_name or 'no name'}) denied a push and reported it as "
        f"fraud.\n\n"
        f"The login was through {request.door} ({request.service or 'no service named'}) from "
        f"the address {request.client_addr or 'unknown'}, started at "
        f"{request.created_at:%Y-%m-%d %H:%M:%S} UTC.\n"
        f"Pushes to this user are paused until {until:%Y-%m-%d %H:%M} UTC.\n\n"
        f"Someone probably knows this user's password: check the audit records and contact "
        f"the user.\n\nThis message was sent automatically by {settings.issuer}.\n")
    return msg


def fraud_reported(ctx: Context, origin: Origin, user: User, request: PushRequest,
                   until: datetime) -> bool:
    """Tell the administrators (UM2FA_ADMIN_EMAILS) by email, when SMTP is configured."""
    settings = ctx.settings
    if not settings.smtp_host or not settings.admin_emails:
        return False
    msg = fraud_notice(settings, settings.admin_emails, user, request, until)
    return _send_audited(ctx, origin, msg, "push.fraud_notify", user,
                         f"to {len(settings.admin_emails)} administrator(s)")
