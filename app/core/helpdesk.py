"""What the help desk does for a person (the console and the API alike), each action with the
reason the help-desk person gave, audited with them as the actor, and the person told.

The rules stay where they live (users.unlock, devices.remove, recovery.issue, ...): this
module adds the reason, the notice and the help desk's own confirmations."""

from __future__ import annotations

from dataclasses import replace

from app.core import (
    admins,
    audit,
    devices,
    notices,
    recovery,
    users,
)
from app.core.context import Context, Origin
from app.core.support import NotFound, get_user
from app.i18n import _
from app.models import RecoveryPasscode, User

REASON_MAX = 200


class HelpdeskError(ValueError):
    """The action cannot be taken as asked; the message is safe to show."""


def with_reason(origin: Origin, reason: str) -> Origin:
    """The origin whose audit records carry the reason ("reason: ...")."""
    reason = " ".join(reason.split())
    if not reason:
        raise HelpdeskError(_("Give a reason (it goes into the audit record)."))
    if len(reason) > REASON_MAX:
        raise HelpdeskError(_("Keep the reason under %(num)s characters.", num=REASON_MAX))
    return replace(origin, info="; ".join(p for p in (origin.info, f"reason: {reason}") if p))


def _target(ctx: Context, origin: Origin, username: str) -> User:
    """The person acted on. The help desk does not act on an administrator's account (no
    recovery passcode, no removed device for one): only an administrator (or an operator at
    the command line) does."""
    user = get_user(ctx, username)
    if origin.actor_role and origin.actor_role != admins.ADMIN \
            and admins.role_of(ctx, user) == admins.ADMIN:
        raise HelpdeskError(_("This is an administrator's account: only an administrator can "
                              "do that."))
    return user


def unlock(ctx: Context, origin: Origin, username: str, reason: str) -> User:
    """Lift a second-factor lockout. A disabled account (by an administrator, or after "This
    wasn't me") is enabled again only by a role that may disable accounts: the help desk
    cannot undo an administrator's decision by the back door."""
    acting = with_reason(origin, reason)
    user = _target(ctx, origin, username)
    if user.disabled and origin.actor_role \
            and not admins.can(origin.actor_role, "users.disable"):
        raise HelpdeskError(_("This account is disabled (by an administrator, or after the "
                              "person reported \"This wasn't me\"): an administrator must "
                              "enable it."))
    user = users.unlock(ctx, acting, user.username)
    notices.tell(ctx, acting, user, notices.ACCOUNT_UNLOCKED)
    return user


def remove_device(ctx: Context, origin: Origin, username: str, device_id: int,
                  reason: str) -> None:
    """Remove a device, the last one too (the person lost it: the help desk then issues a
    recovery passcode to add a new one)."""
    acting = with_reason(origin, reason)
    user = _target(ctx, origin, username)
    try:
        devices.remove(ctx, acting, user, device_id, last_confirmed=True)
    except devices.DeviceError as exc:
        raise NotFound(str(exc)) from exc


def end_sessions(ctx: Context, origin: Origin, username: str, reason: str) -> None:
    """Sign the person out everywhere: every browser session, every remembered browser."""
    acting = with_reason(origin, reason)
    user = _target(ctx, origin, username)
    users.end_everywhere(ctx, user)
    audit.record(ctx, acting, "sessions.end", "ok", username=user.username)
    notices.tell(ctx, acting, user, notices.SESSIONS_ENDED)


def issue_recovery(ctx: Context, origin: Origin, username: str, reason: str, *,
                   id_checked: bool) -> tuple[str, RecoveryPasscode]:
    """A recovery passcode for a person who proved who they are: the help-desk person must
    confirm the ID check, which the audit records. The code (and its row) is returned to be
    shown once."""
    if not id_checked:
        raise HelpdeskError(_("Confirm that you checked the person's identity document first."))
    acting = with_reason(origin, reason)
    acting = replace(acting, info=f"{acting.info}; identity checked by the help desk")
    return recovery.issue(ctx, acting, _target(ctx, origin, username))


def set_disabled(ctx: Context, origin: Origin, username: str, disabled: bool,
                 reason: str) -> User:
    """Disable an account (no second factor admits it, its sessions end) or enable it again."""
    acting = with_reason(origin, reason)
    name = get_user(ctx, username).username
    user = users.lock(ctx, acting, name) if disabled else users.enable(ctx, acting, name)
    notices.tell(ctx, acting, user, notices.ACCOUNT_DISABLED if disabled
                 else notices.ACCOUNT_ENABLED)
    return user
