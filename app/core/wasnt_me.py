""" "This wasn't me": what a notice's link (or the companion app's button) does, once.

It removes the device just added (or revokes the recovery passcode just issued), ends every
session of the user, forgets their remembered browsers, locks the account (the
administrator's lock: it never lifts by itself), alerts the help desk and audits it. The token
is claimed by one conditional UPDATE, so a second use (another node, a double click) does
nothing; an expired or unknown token does nothing either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from app.core import audit, devices, notices, support, users
from app.core.context import Context, Origin
from app.models import Device, Notice, RecoveryPasscode, User

USED = "used"
EXPIRED = "expired"
UNKNOWN = "unknown"
DONE = "done"


@dataclass(frozen=True)
class Result:
    status: str              # done, used, expired, unknown
    notice: Notice | None = None


def check(ctx: Context, token: str) -> Result:
    """What the link's page shows (a GET changes nothing)."""
    notice = notices.find(ctx, token)
    return Result(_status(ctx, notice), notice)


def _status(ctx: Context, notice: Notice | None) -> str:
    if notice is None:
        return UNKNOWN
    if notice.used_at is not None:
        return USED
    if notice.expires_at <= ctx.now():
        return EXPIRED
    return DONE


def by_link(ctx: Context, origin: Origin, token: str) -> Result:
    notice = notices.find(ctx, token)
    return _report(ctx, origin, notice, "link")


def by_device(ctx: Context, origin: Origin, device: Device, notice_id: int) -> Result:
    """The companion app's "This wasn't me" on a notice of its own user."""
    notice = ctx.db.get(Notice, notice_id)
    if notice is None or notice.user_id != device.user_id:
        notice = None
    return _report(ctx, origin, notice, f"companion app {device.name}")


def _report(ctx: Context, origin: Origin, notice: Notice | None, how: str) -> Result:
    status = _status(ctx, notice)
    if notice is None or status != DONE or not _claim(ctx, notice):
        status = USED if status == DONE else status
        user_id = notice.user_id if notice is not None else None
        audit.record(ctx, origin, "notice.wasnt_me", "fail",
                     username=users.name_by_id(ctx, user_id), detail=f"{status} ({how})")
        return Result(status, notice)
    user = ctx.db.get(User, notice.user_id)
    assert user is not None
    undone = _undo(ctx, origin, user, notice)
    _secure(ctx, origin, user)
    audit.record(ctx, origin, "notice.wasnt_me", "ok", username=user.username,
                 detail=f"{notice.event}; {undone}sessions ended, locked ({how})")
    notices.alert_help_desk(ctx, origin, user, notices.reported_notice(notice), undone)
    return Result(DONE, notice)


def by_activity(ctx: Context, origin: Origin, user: User, event_id: int) -> bool:
    """ "This wasn't me" on a row of the person's recent activity ("My Settings & Devices"):
    what the notice's link does, without a device or passcode to undo. False (nothing done)
    for a row that is not one of their sign-ins or device changes."""
    row = support.activity_row(ctx, user, event_id)
    if row is None:
        audit.record(ctx, origin, "activity.wasnt_me", "fail", username=user.username,
                     detail=f"no such activity: {event_id}")
        return False
    _secure(ctx, origin, user)
    audit.record(ctx, origin, "activity.wasnt_me", "ok", username=user.username,
                 device=row.device, detail=f"{support.activity_words(row, translate=False)} "
                                           f"(audit {row.id}); sessions ended, locked")
    notices.alert_help_desk(ctx, origin, user, notices.Reported(
        lambda: support.activity_words(row), row.at,
        lambda: notices.where_from(row.door, row.client_addr), notices.SEEN_ACTIVITY), "")
    return True


def _secure(ctx: Context, origin: Origin, user: User) -> None:
    """Sign the person out everywhere, forget their remembered browsers, lock the account
    (the administrator's lock: an administrator enables it after talking to them)."""
    if user.disabled:
        users.end_everywhere(ctx, user)
    else:
        users.lock(ctx, origin, user.username)


def _claim(ctx: Context, notice: Notice) -> bool:
    now = ctx.now()
    claimed = ctx.db.execute(
        update(Notice).where(Notice.id == notice.id, Notice.used_at.is_(None),
                             Notice.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount == 1
    if claimed:
        ctx.db.refresh(notice)
    return claimed


def _undo(ctx: Context, origin: Origin, user: User, notice: Notice) -> str:
    """Remove the device just added / revoke the passcode just issued; says what was done."""
    if notice.event == notices.DEVICE_ADDED and notice.device_id is not None:
        device = ctx.db.get(Device, notice.device_id)
        if device is not None and device.user_id == user.id and device.active:
            devices.remove(ctx, origin, user, device.id, last_confirmed=True, notify=False)
            return f"device {notice.device_name} removed, "
    if notice.event == notices.RECOVERY_ISSUED and notice.passcode_id is not None:
        revoked = ctx.db.execute(
            update(RecoveryPasscode).where(RecoveryPasscode.id == notice.passcode_id,
                                           RecoveryPasscode.user_id == user.id,
                                           RecoveryPasscode.revoked_at.is_(None))
            .values(revoked_at=ctx.now()).execution_options(synchronize_session=False)).rowcount
        if revoked:
            return "recovery passcode revoked, "
    return ""
