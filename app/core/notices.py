"""Telling the user about every change to their second factor, on every channel.

When a recovery passcode is issued, a device is added or removed, or the account is locked
(the second-factor lockout), the user gets an email and every active companion app a notice
(a Web Push wake-up; the app fetches the notices with a signed call). Each says what happened,
when (local time: UM2FA_TIMEZONE), from where (the address and the door), and carries a
"This wasn't me" link: a random single-use token, kept here only as a keyed hash, that expires
after UM2FA_NOTICE_LINK_DAYS days (app/core/wasnt_me.py does what it undoes).

Everything leaves after the transaction commits (a rolled-back action tells nobody), and a
mail or push service that fails never fails the action. No notice carries a secret.

A user's mail is in their language (their stored choice, else the request's); the help desk's
alerts in UM2FA_DEFAULT_LANGUAGE. Times in mail are local (app.i18n.local), the zone named once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.config import Settings
from app.core import audit, notify, webpush
from app.core.context import Context, Origin
from app.core.preferences import language_of
from app.i18n import N_, _, current_language, local, use_language, zone
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
# What happened, for the subject line, the app and the page (%(device)s: the device's name).
# Marked for the catalogs; what() translates them.
WHAT = {
    RECOVERY_ISSUED: N_("A recovery passcode was issued for your account"),
    DEVICE_ADDED: N_("A device was added to your account: %(device)s"),
    DEVICE_REMOVED: N_("A device was removed from your account: %(device)s"),
    ACCOUNT_LOCKED: N_("Your account was locked after too many failed second factors"),
    ACCOUNT_UNLOCKED: N_("Your account was unlocked by the IT help desk"),
    SESSIONS_ENDED: N_("The IT help desk signed you out everywhere"),
    ACCOUNT_DISABLED: N_("Your account was disabled by the IT help desk"),
    ACCOUNT_ENABLED: N_("Your account was enabled again by the IT help desk"),
}
# What "This wasn't me" undoes, besides what it always does (a fragment the "This wasn't me"
# page places; translate it with _ there).
UNDOES = {
    RECOVERY_ISSUED: N_("revoke the recovery passcode, "),
    DEVICE_ADDED: N_("remove the device, "),
}
# The email's "if it was not you" paragraph, whole, per event (word order differs by language).
IF_NOT_YOU = {
    RECOVERY_ISSUED: N_("If it was not you, open this link and click \"This wasn't me\": it "
                        "will revoke the recovery passcode, sign you out everywhere, lock your "
                        "account and alert the IT help desk, who will contact you. Then change "
                        "your UMPASS password."),
    DEVICE_ADDED: N_("If it was not you, open this link and click \"This wasn't me\": it will "
                     "remove the device, sign you out everywhere, lock your account and alert "
                     "the IT help desk, who will contact you. Then change your UMPASS "
                     "password."),
}
IF_NOT_YOU_OTHER = N_("If it was not you, open this link and click \"This wasn't me\": it "
                      "will sign you out everywhere, lock your account and alert the IT help "
                      "desk, who will contact you. Then change your UMPASS password.")
DOORS = {"portal": N_("the 2FA portal"), "sso": N_("a web sign-in (SSO)"),
         "radius": N_("the VPN"), "recovery": N_("the recovery portal"),
         "device-api": N_("the companion app"), "cli": N_("the IT help desk"),
         "admin": N_("the IT help desk"), "api": N_("the IT help desk"), "test": N_("a test")}
# Pages where the user acts for themselves: a notice mail follows the page's language.
SELF_SERVICE_DOORS = ("portal", "sso", "recovery", "device-api")
# The email audit action per event ("recovery.notify" since the recovery portal's first mail).
MAIL_ACTION = {RECOVERY_ISSUED: "recovery.notify"}
RECENT = 20  # notices the companion app lists


@dataclass(frozen=True)
class Told:
    notice: Notice
    token: str  # for the link; never stored


def local_words(when: datetime) -> str:
    """`when` in local time for the current language, with the zone: "6 Dec 2026, 2:05 pm
    (Macao time (GMT+08:00))" (the companion app's list, where each line stands alone)."""
    return _("%(time)s (%(zone)s)", time=local(when), zone=zone())


def where(notice: Notice) -> str:
    return where_from(notice.door, notice.client_addr)


def where_from(door: str, client_addr: str) -> str:
    """ "the address 10.0.0.5, through the VPN": an origin in words (current language)."""
    return _("the address %(address)s, through %(door)s",
             address=client_addr or _("unknown"), door=door_words(door))


def door_words(door: str) -> str:
    return _(DOORS[door]) if door in DOORS else (door or _("unknown"))


def what(notice: Notice) -> str:
    """What happened, in the current language."""
    if notice.event not in WHAT:
        return notice.event
    return _(WHAT[notice.event], device=notice.device_name or _("a device"))


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
    with use_language(_mail_language(ctx, origin, user)):
        subject, text = _user_mail(settings, user, notice, token)
    msg = notify.message(settings, user.email, subject, notice.created_at, text)
    notify.send_after_commit(ctx, origin, msg, action, user.username,
                             f"{notice.event} to {user.email}")


def _mail_language(ctx: Context, origin: Origin, user: User) -> str:
    """The user's own language; else, when the user acted on a page, that page's language; else
    (the help desk, the VPN) the default language."""
    chosen = language_of(ctx, user.id)
    if chosen:
        return chosen
    return current_language() if origin.door in SELF_SERVICE_DOORS else (
        ctx.settings.default_language)


def _user_mail(settings: Settings, user: User, notice: Notice, token: str) -> tuple[str, str]:
    """The notice's subject and text in the current language."""
    paragraphs = [
        _("Dear %(name)s,", name=user.display_name or user.username),
        _("%(what)s (%(username)s).", what=what(notice), username=user.username),
        "\n".join((_("When: %(time)s", time=local(notice.created_at)),
                   _("From: %(where)s", where=where(notice)))),
        _("If it was you, there is nothing more to do."),
        _(IF_NOT_YOU.get(notice.event, IF_NOT_YOU_OTHER)),
        f"    {link(settings, token)}",
        _("The link works once, until %(time)s.", time=local(notice.expires_at)),
        _("Times in this message are %(zone)s.", zone=zone()),
        _("This message was sent automatically by %(issuer)s; please do not reply.",
          issuer=settings.issuer),
    ]
    subject = _("%(issuer)s: %(what)s", issuer=settings.issuer, what=what(notice))
    return subject, "\n\n".join(paragraphs) + "\n"


@dataclass(frozen=True)
class Reported:
    """What the person said "This wasn't me" about: a notice, or a row of their recent
    activity in "My Settings & Devices" (app/core/support.py: recent_activity)."""

    # What happened and from where, said in the current language when called: the alert is
    # in the help desk's language, not the one of the person who clicked.
    what: Callable[[], str]
    when: datetime
    where: Callable[[], str]
    seen: str  # where they saw it: "the notice", "their recent activity" (N_ marked)
    notice: Notice | None = None  # the notice, for what "This wasn't me" undid


SEEN_NOTICE, SEEN_ACTIVITY = N_("the notice"), N_("their recent activity")


def reported_notice(notice: Notice) -> Reported:
    return Reported(lambda: what(notice), notice.created_at, lambda: where(notice), SEEN_NOTICE,
                    notice)


def alert_help_desk(ctx: Context, origin: Origin, user: User, reported: Reported,
                    undone: str) -> None:
    """UM2FA_ADMIN_EMAILS: the user said "This wasn't me" (after the commit, when SMTP is
    configured)."""
    settings = ctx.settings
    if not settings.smtp_host or not settings.admin_emails:
        return
    with use_language(settings.default_language):
        subject, text = _alert_mail(ctx, origin, user, reported, undone)
    msg = notify.message(settings, settings.admin_emails, subject, ctx.now(), text)
    notify.send_after_commit(ctx, origin, msg, "notice.alert", user.username,
                             f"to {len(settings.admin_emails)} administrator(s)")


def _alert_mail(ctx: Context, origin: Origin, user: User, reported: Reported,
                undone: str) -> tuple[str, str]:
    """The help desk's alert, in the current language (`reported` says itself in it)."""
    settings = ctx.settings
    notice = reported.notice
    paragraphs = [
        _("%(username)s (%(name)s) clicked \"This wasn't me\" on %(seen)s: %(what)s.",
          username=user.username, name=user.display_name or _("no name"),
          seen=_(reported.seen), what=reported.what()),
        "\n".join((
            _("That happened at %(time)s from %(where)s.", time=local(reported.when),
              where=reported.where()),
            _("\"This wasn't me\" came from the address %(address)s at %(time)s.",
              address=origin.client_addr or _("unknown"), time=local(ctx.now())))),
        _(_done_words(notice, undone), device=notice.device_name if notice else "",
          username=user.username),
        _("Someone probably knows this user's password and personal details: contact the "
          "user, check the audit records and their devices before unlocking."),
        _("Times in this message are %(zone)s.", zone=zone()),
        _("This message was sent automatically by %(issuer)s.", issuer=settings.issuer),
    ]
    subject = _("%(issuer)s: %(username)s reported \"This wasn't me\"",
                issuer=settings.issuer, username=user.username)
    return subject, "\n\n".join(paragraphs) + "\n"


def _done_words(notice: Notice | None, undone: str) -> str:
    """What "This wasn't me" did, as one sentence (`undone`: app/core/wasnt_me.py's English
    words for what it undid, "" for nothing)."""
    if undone and notice is not None and notice.event == DEVICE_ADDED:
        return N_("Done: device %(device)s removed, every session of the user ended, "
                  "remembered browsers forgotten, the account locked (um2fa users unlock "
                  "%(username)s lifts it).")
    if undone and notice is not None and notice.event == RECOVERY_ISSUED:
        return N_("Done: recovery passcode revoked, every session of the user ended, "
                  "remembered browsers forgotten, the account locked (um2fa users unlock "
                  "%(username)s lifts it).")
    return N_("Done: every session of the user ended, remembered browsers forgotten, the "
              "account locked (um2fa users unlock %(username)s lifts it).")


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
            "local_time": local_words(notice.created_at),
            "client_addr": notice.client_addr, "door": notice.door,
            "can_report": usable(ctx, notice)}
