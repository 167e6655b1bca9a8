"""What the help desk reads about a person (the console and the API alike): finding them, their
state, devices, recovery passcodes, remembered browsers and sessions, and their timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from app.core import audit, audit_search, lockout, remembered, users
from app.core.context import Context
from app.i18n import N_, _
from app.models import AuditEvent, Device, RecoveryPasscode, RememberedBrowser, User

PAGE_SIZE = 20
TIMELINE_PAGE = 50
RECENT_PASSCODES = 5
RECENT_ACTIVITY = 10
# What a person sees of their own activity ("My Settings & Devices"): their sign-ins and the
# changes to their devices, (audit action, result) -> words.
ACTIVITY = {
    ("sign_in", "ok"): N_("Signed in with your password"),
    ("factor", "ok"): N_("Confirmed with a second factor"),
    ("radius.access", "accept"): N_("Signed in to the VPN"),
    ("device.activate", "ok"): N_("Device added"),
    ("device.add", "ok"): N_("Device added"),
    ("device.remove", "ok"): N_("Device removed"),
}


class NotFound(LookupError):
    """No such user or device; the message is safe to show."""


def get_user(ctx: Context, username: str) -> User:
    user = users.find(ctx, username)
    if user is None:
        raise NotFound(_("no such user: %(username)s", username=username[:64]))
    return user


def find_users(ctx: Context, text: str, page: int = 1) -> tuple[list[User], bool]:
    """Users whose UMPASS ID, name or email contains `text` (UMPASS IDs that start with it
    first), a page at a time: (the page, whether there are more)."""
    text = text.strip().lower()[:100]
    if not text or users.NUL in text:  # (PostgreSQL refuses a NUL in a parameter)
        return [], False
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    starts = User.username.like(f"{escaped}%", escape="\\")
    query = (select(User)
             .where(or_(User.username.like(like, escape="\\"),
                        func.lower(User.display_name).like(like, escape="\\"),
                        func.lower(User.email).like(like, escape="\\")))
             .order_by(starts.desc(), User.username)
             .offset((max(page, 1) - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    found = list(ctx.db.scalars(query))
    return found[:PAGE_SIZE], len(found) > PAGE_SIZE


def state(ctx: Context, user: User) -> tuple[str, datetime | None]:
    """("disabled", None), ("locked", until) or ("active", None)."""
    if user.disabled:
        return "disabled", None
    until = lockout.locked_until(user, ctx.now())
    return ("locked", until) if until is not None else ("active", None)


def passcode_status(row: RecoveryPasscode, now: datetime) -> str:
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= now else "unused"


@dataclass
class UserView:
    user: User
    state: str
    locked_until: datetime | None
    devices: list[Device]
    passcodes: list[tuple[RecoveryPasscode, str]]
    remembered: list[RememberedBrowser]
    sessions: int


def recent_passcodes(ctx: Context, user: User,
                     limit: int = RECENT_PASSCODES) -> list[RecoveryPasscode]:
    """The person's latest recovery passcodes (their dates; the codes are never kept)."""
    return list(ctx.db.scalars(
        select(RecoveryPasscode).where(RecoveryPasscode.user_id == user.id)
        .order_by(RecoveryPasscode.created_at.desc(), RecoveryPasscode.id.desc())
        .limit(limit)))


def user_view(ctx: Context, username: str) -> UserView:
    user = get_user(ctx, username)
    status, until = state(ctx, user)
    passcodes = recent_passcodes(ctx, user)
    devices = list(ctx.db.scalars(select(Device).where(Device.user_id == user.id)
                                  .order_by(Device.id)))
    return UserView(user=user, state=status, locked_until=until, devices=devices,
                    passcodes=[(p, passcode_status(p, ctx.now())) for p in passcodes],
                    remembered=remembered.listed(ctx, user),
                    sessions=ctx.sessions.count_for_user(ctx.db, user.id, ctx.now()))


def timeline(ctx: Context, username: str, *, door: str = "", result: str = "",
             before: str = "",
             limit: int = TIMELINE_PAGE) -> tuple[list[AuditEvent], str | None]:
    """The audit records about the person, newest first, optionally of one door or outcome
    (the audit search's query and keyset pages): a page, and the cursor of the next page to
    pass as `before` (None at the end). A cursor that is not one: AuditSearchError."""
    user = get_user(ctx, username)
    if users.NUL in door + result:  # (PostgreSQL refuses a NUL in a parameter)
        raise audit_search.AuditSearchError(_("a filter holds a NUL character"))
    if door and door not in audit.DOORS:
        raise audit_search.AuditSearchError(
            _("door: %(door)s is not a door (one of %(choices)s)", door=repr(door[:20]),
              choices=", ".join(audit.DOORS)))
    if result and result not in audit.RESULTS:
        raise audit_search.AuditSearchError(
            _("result: %(result)s is not an outcome (one of %(choices)s)",
              result=repr(result[:20]), choices=", ".join(audit.RESULTS)))
    found = audit_search.page(
        ctx, audit_search.AuditQuery(username=user.username, door=door, result=result),
        size=limit, after=audit_search.parse_cursor(before))
    return found.rows, (str(found.next_cursor) if found.next_cursor else None)


def _is_activity():
    return or_(*(and_(AuditEvent.action == action, AuditEvent.result == result)
                 for action, result in ACTIVITY))


def recent_activity(ctx: Context, user: User,
                    limit: int = RECENT_ACTIVITY) -> list[AuditEvent]:
    """The person's last sign-ins and device changes, newest first (what they may say "This
    wasn't me" about)."""
    return list(ctx.db.scalars(
        select(AuditEvent).where(AuditEvent.username == user.username, _is_activity())
        .order_by(AuditEvent.id.desc()).limit(limit)))


def activity_row(ctx: Context, user: User, event_id: int) -> AuditEvent | None:
    """One row of the person's own activity, else None (another's, or not a sign-in or a
    device change)."""
    return ctx.db.scalar(select(AuditEvent).where(
        AuditEvent.id == event_id, AuditEvent.username == user.username, _is_activity()))


def activity_words(row: AuditEvent, translate: bool = True) -> str:
    """ "Device added: Phone", in the current language (`translate=False`: in English, the
    source text, e.g. for an audit record)."""
    words = ACTIVITY.get((row.action, row.result))
    if words is None:
        return row.action
    if row.device and row.action.startswith("device."):
        if not translate:
            return f"{words}: {row.device}"
        return _("%(what)s: %(device)s", what=_(words), device=row.device)
    return _(words) if translate else words
