"""Telling the user about every change to their second factor, on every channel.

When a recovery passcode is issued, a device is added or removed, or the account is locked
(the second-factor lockout), the user gets an email and every active companion app a notice
(a Web Push wake-up; the app fetches the notices with a signed call). Each says what happened,
when (local time: UM2FA_TIMEZONE), from where (the address and the door), and carries a
"This wasn't me" link: a random single-use token, kept here only as a keyed hash, that expires
after UM2FA_NOTICE_LINK_DAYS days (app/core/wasnt_me.py does what it undoes).

Everything leaves after the transaction commits (a rolled-back action tells nobody), and a
mail or push service that fails never fails the action. No notice carries a secret.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.config import Settings
from app.core import audit, notify, webpush
from app.core.context import Context, Origin
from app.models import Device, Notice, RecoveryPasscode, User

log = logging.getLogger("um2fa.notices")

PURPOSE = "this wasn't me"
PATH = "/this-wasnt-me/"
TOKEN_MAX = 64
RECOVERY_ISSUED, DEVICE_ADDED, DEVICE_REMOVED, ACCOUNT_LOCKED = (
    "recovery_issued", "device_added", "device_removed", "account_locked")
# What the help desk does (app/core/helpdesk.py)
ACCOUNT_UNLOCKED, SESSIONS_ENDED, ACCOUNT_DISABLED, ACCOUNT_ENABLED = (
    "account_unlocked", "sessions_ended", "account_disabled", "account_enabled")
# What happened, for the subject line, the app and the page ({device}: the device's name).
WHAT = {
    RECOVERY_ISSUED: "A recovery passcode was issued for your account",
    DEVICE_ADDED: "A device was added to your account: {device}",
    DEVICE_REMOVED: "A device was removed from your account: {device}",
    ACCOUNT_LOCKED: "Your account was locked after too many failed second factors",
    ACCOUNT_UNLOCKED: "Your account was unlocked by the IT help desk",
    SESSIONS_ENDED: "The IT help desk signed you out everywhere",
    ACCOUNT_DISABLED: "Your account was disabled by the IT help desk",
    ACCOUNT_ENABLED: "Your account was enabled again by the IT help desk",
}
# What "This wasn't me" undoes, besides what it always does.
UNDOES = {
    RECOVERY_ISSUED: "revoke the recovery passcode, ",
    DEVICE_ADDED: "remove the device, ",
}
DOORS = {"portal": "the 2FA portal", "sso": "a web sign-in (SSO)", "radius": "the VPN",
         "recovery": "the recovery portal", "device-api": "the companion app",
         "cli": "the IT help desk", "admin": "the IT help desk", "api": "the IT help desk",
         "test": "a test"}
# The email audit action per event ("recovery.notify" since the recovery portal's first mail).
MAIL_ACTION = {RECOVERY_ISSUED: "recovery.notify"}
RECENT = 20  # notices the companion app lists


@dataclass(frozen=True)
class Told:
    notice: Notice
    token: str  # for the link; never stored


def local_time(settings: Settings, when: datetime) -> str:
    """`when` in the university's time zone, e.g. "2026-12-06 14:05 (Asia/Macau, UTC+08:00)"."""
    local = when.astimezone(ZoneInfo(settings.timezone))
    offset = local.strftime("%z")
    return (f"{local:%Y-%m-%d %H:%M} ({settings.timezone}, "
            f"UTC{offset[:3]}:{offset[3:]})")


def where(notice: Notice) -> str:
    return where_from(notice.door, notice.client_addr)


def where_from(door: str, client_addr: str) -> str:
    """ "the address 10.0.0.5, through the VPN": an origin in words."""
    return f"the address {client_addr or 'unknown'}, through {door_words(door)}"


def door_words(door: str) -> str:
    return DOORS.get(door, door or "unknown")


def what(notice: Notice) -> str:
    return WHAT.get(notice.event, notice.event).format(device=notice.device_name or "a device")


def link(settings: Settings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}{PATH}{token}"


def token_hash(ctx: Context, token: str) -> bytes:
    return ctx.keys.keyed_hash(PURPOSE, token)


def tell(ctx: Context, origin: Origin, user: User, event: str, *, device: Device | None = None,
         device_name: str = "", passcode: RecoveryPasscode | None = None) -> Told:
    """Record the notice and, once the transaction commits, email it and wake the user's
    companion apps."""
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    notice = Notice(user_id=user.id, event=event,
                    device_id=device.id if device is not None else None,
                    device_name=(device.name if device is not None else device_name)[:64],
                    passcode_id=passcode.id if passcode is not None else None,
                    door=origin.door[:16], client_addr=origin.client_addr[:64], created_at=now,
                    token_hash=token_hash(ctx, token),
                    expires_at=now + timedelta(days=ctx.settings.notice_link_days))
    ctx.db.add(notice)
    ctx.db.flush()
    _email(ctx, origin, user, notice, token)
    for phone in _companion_apps(ctx, user):
        if event == DEVICE_ADDED and device is not None and phone.id == device.id:
            continue  # the device just added is not told of itself (it may be the thief's)
        webpush.send_after_commit(ctx, phone.push_subscription or "",
                                  {"type": "notice", "id": str(notice.id)},
                                  ctx.settings.notice_link_days * 86400)
    return Told(notice, token)


def _companion_apps(ctx: Context, user: User) -> list[Device]:
    return list(ctx.db.scalars(select(Device).where(
        Device.user_id == user.id, Device.active.is_(True), Device.kind == "push",
        Device.public_key.is_not(None), Device.push_subscription.is_not(None))))


def _email(ctx: Context, origin: Origin, user: User, notice: Notice, token: str) -> None:
    settings = ctx.settings
    action = MAIL_ACTION.get(notice.event, "notice.email")
    if not settings.smtp_host:
        return
    if not user.email:
        audit.record(ctx, origin, action, "skipped", username=user.username,
                     detail="no email address")
        return
    name = user.display_name or user.username
    text = (
        f"Dear {name},\n\n"
        f"{what(notice)} ({user.username}).\n\n"
        f"When: {local_time(settings, notice.created_at)}\n"
        f"From: {where(notice)}\n\n"
        f"If it was you, there is nothing more to do.\n\n"
        f"If it was not you, open this link and click \"This wasn't me\": it will "
        f"{UNDOES.get(notice.event, '')}sign you out everywhere, lock your account and alert "
        f"the IT help desk, who will contact you. Then change your UMPASS password.\n\n"
        f"    {link(settings, token)}\n\n"
        f"The link works once, until {local_time(settings, notice.expires_at)}.\n\n"
        f"This message was sent automatically by {settings.issuer}; please do not reply.\n")
    msg = notify.message(settings, user.email, f"{settings.issuer}: {what(notice)}",
                         notice.created_at, text)
    notify.send_after_commit(ctx, origin, msg, action, user.username,
                             f"{notice.event} to {user.email}")


@dataclass(frozen=True)
class Reported:
    """What the person said "This wasn't me" about: a notice, or a row of their recent
    activity in "My Settings & Devices" (app/core/support.py: recent_activity)."""

    what: str
    when: datetime
    where: str
    seen: str  # where they saw it: "the notice", "their recent activity"


def reported_notice(notice: Notice) -> Reported:
    return Reported(what(notice), notice.created_at, where(notice), "the notice")


def alert_help_desk(ctx: Context, origin: Origin, user: User, reported: Reported,
                    undone: str) -> None:
    """UM2FA_ADMIN_EMAILS: the user said "This wasn't me" (after the commit, when SMTP is
    configured)."""
    settings = ctx.settings
    if not settings.smtp_host or not settings.admin_emails:
        return
    text = (
        f"{user.username} ({user.display_name or 'no name'}) clicked \"This wasn't me\" on "
        f"{reported.seen}: {reported.what}.\n\n"
        f"That happened at {local_time(settings, reported.when)} from {reported.where}.\n"
        f"\"This wasn't me\" came from the address {origin.client_addr or 'unknown'} at "
        f"{local_time(settings, ctx.now())}.\n\n"
        f"Done: {undone}every session of the user ended, remembered browsers forgotten, the "
        f"account locked (um2fa users unlock {user.username} lifts it).\n\n"
        f"Someone probably knows this user's password and personal details: contact the "
        f"user, check the audit records and their devices before unlocking.\n\n"
        f"This message was sent automatically by {settings.issuer}.\n")
    msg = notify.message(settings, settings.admin_emails,
                         f"{settings.issuer}: {user.username} reported \"This wasn't me\"",
                         ctx.now(), text)
    notify.send_after_commit(ctx, origin, msg, "notice.alert", user.username,
                             f"to {len(settings.admin_emails)} administrator(s)")


def find(ctx: Context, token: str) -> Notice | None:
    """The notice behind a link's token (used or expired too; the caller says which)."""
    if not token or len(token) > TOKEN_MAX:
        return None
    return ctx.db.scalar(select(Notice).where(Notice.token_hash == token_hash(ctx, token)))


def usable(ctx: Context, notice: Notice | None) -> bool:
    return notice is not None and notice.used_at is None and notice.expires_at > ctx.now()


def recent_for(ctx: Context, device: Device) -> list[Notice]:
    """The notices of the device's user a companion app lists (newest first), while their
    links last."""
    return list(ctx.db.scalars(select(Notice).where(
        Notice.user_id == device.user_id, Notice.expires_at > ctx.now())
        .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(RECENT)))


def describe(ctx: Context, notice: Notice) -> dict:
    """A notice as the device API gives it."""
    return {"id": str(notice.id), "event": notice.event, "text": what(notice),
            "at": notice.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "local_time": local_time(ctx.settings, notice.created_at),
            "client_addr": notice.client_addr, "door": notice.door,
            "can_report": usable(ctx, notice)}
