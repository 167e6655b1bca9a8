"""Email (SMTP, when configured): the one mailer. What to tell whom is decided by the callers
(app/core/notices.py: the user's notices and the help desk's alerts; app/core/push/answers.py:
fraud reports).

A message never carries a passcode or any other secret. A mail server that is down or refuses
the message does not stop the event itself: the failure is logged and audited.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.core import audit
from app.core.after_commit import after_commit
from app.core.context import Context, Origin
from app.i18n import _, local, use_language, zone
from app.models import PushRequest, User

log = logging.getLogger("um2fa.notify")

# Messages waiting for a mail thread; past that they are dropped with a warning.
MAX_QUEUED = 1000
_mailer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail")
_queued = threading.BoundedSemaphore(MAX_QUEUED)
_lock = threading.Lock()
_inflight: set[Future] = set()


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


def message(settings: Settings, to: str | tuple[str, ...], subject: str, when: datetime,
            text: str) -> EmailMessage:
    """A plain-text message from UM2FA_SMTP_FROM."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.smtp_from
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    msg.set_content(text)
    return msg


def send_after_commit(ctx: Context, origin: Origin, msg: EmailMessage, action: str,
                      username: str, detail: str) -> None:
    """Hand `msg` to the mail server once the transaction commits (a rolled-back action tells
    nobody), from a small pool of mail threads: a slow or absent mail server never delays or
    fails the action (a RADIUS batch, a web request). The outcome is audited (`action`: ok or
    fail, in a transaction of its own) and a failure logged, without the message's text."""
    engine = ctx.db.get_bind()

    def submit() -> None:
        if not _queued.acquire(blocking=False):
            log.warning("%s about %s not sent: %d messages already waiting", action, username,
                        MAX_QUEUED)
            return
        try:
            future = _mailer.submit(_deliver, ctx, engine, origin, msg, action, username,
                                    detail)
        except RuntimeError:  # the pool is shut down: the process is exiting
            _queued.release()
            return
        with _lock:
            _inflight.add(future)
        future.add_done_callback(_done)

    after_commit(ctx.db, submit)


def _done(future: Future) -> None:
    with _lock:
        _inflight.discard(future)


def _deliver(ctx: Context, engine: Engine, origin: Origin, msg: EmailMessage, action: str,
             username: str, detail: str) -> None:
    try:
        try:
            send(ctx.settings, msg)
            result = "ok"
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("%s about %s not sent: %s", action, username, type(exc).__name__)
            result, detail = "fail", type(exc).__name__
        with Session(engine) as session:
            audit.record(replace(ctx, db=session), origin, action, result, username=username,
                         detail=detail)
            session.commit()
    except Exception:  # noqa: BLE001 - a mail thread must not die silently
        log.exception("%s about %s: unexpected error", action, username)
    finally:
        _queued.release()


def wait_idle(timeout: float = 10.0) -> bool:
    """Wait (at most `timeout` seconds) until every message handed to the mail threads is
    sent or failed; true when none is left (tests, orderly shutdown)."""
    with _lock:
        pending = list(_inflight)
    done, not_done = wait(pending, timeout=timeout)
    return not not_done


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
    """The administrators' fraud alert, in the current language (times local)."""
    msg = EmailMessage()
    msg["Subject"] = _("UM 2FA: a push to %(username)s was reported as fraud",
                       username=user.username)
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(until)
    msg["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    paragraphs = [
        _("%(username)s (%(name)s) denied a push and reported it as fraud.",
          username=user.username, name=user.display_name or _("no name")),
        "\n".join((
            _("The login was through %(door)s (%(service)s) from the address %(address)s, "
              "started at %(time)s.", door=request.door,
              service=request.service or _("no service named"),
              address=request.client_addr or _("unknown"), time=local(request.created_at)),
            _("Pushes to this user are paused until %(time)s.", time=local(until)))),
        _("Someone probably knows this user's password: check the audit records and contact "
          "the user."),
        _("Times in this message are %(zone)s.", zone=zone()),
        _("This message was sent automatically by %(issuer)s.", issuer=settings.issuer),
    ]
    msg.set_content("\n\n".join(paragraphs) + "\n")
    return msg


def fraud_reported(ctx: Context, origin: Origin, user: User, request: PushRequest,
                   until: datetime) -> bool:
    """Tell the administrators (UM2FA_ADMIN_EMAILS) by email, when SMTP is configured."""
    settings = ctx.settings
    if not settings.smtp_host or not settings.admin_emails:
        return False
    with use_language(settings.default_language):
        msg = fraud_notice(settings, settings.admin_emails, user, request, until)
    return _send_audited(ctx, origin, msg, "push.fraud_notify", user,
                         f"to {len(settings.admin_emails)} administrator(s)")
