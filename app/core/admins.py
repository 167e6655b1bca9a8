"""Who may use the help-desk console and the admin API, and what each role may do.

Two roles: `helpdesk` (find people, read their timeline, unlock, remove a device, end sessions,
issue a recovery passcode after an ID check) and `admin` (all of that, and the service's own
settings: accounts, RADIUS clients, SPs, admins and API tokens, audit search, the dashboard).
The console and the API ask `can(role, action)` before every action; a page shows only what
its role may do, and the server refuses the rest.
"""

from __future__ import annotations

from sqlalchemy import select

from app.core import audit, users
from app.core.context import Context, Origin
from app.i18n import N_, _
from app.models import Admin, User

HELPDESK, ADMIN = "helpdesk", "admin"
ROLES = (HELPDESK, ADMIN)

# Every action of the console and the API, and the roles that may take it.
HELPDESK_ACTIONS = frozenset({
    "users.read", "users.unlock", "devices.remove", "sessions.end", "recovery.issue",
})
ADMIN_ACTIONS = HELPDESK_ACTIONS | frozenset({
    "users.disable", "radius_clients.manage", "service_providers.manage", "admins.manage",
    "api_tokens.manage", "settings.read", "audit.search", "dashboard.read",
})
ACTIONS = {HELPDESK: HELPDESK_ACTIONS, ADMIN: ADMIN_ACTIONS}


class AdminError(ValueError):
    """The message is safe to show."""


def can(role: str | None, action: str) -> bool:
    if action not in ADMIN_ACTIONS:
        raise KeyError(f"unknown console action {action!r}")
    return role is not None and action in ACTIONS.get(role, frozenset())


def role_of(ctx: Context, user: User) -> str | None:
    """The user's console role: from the admins table, else from the directory's groups
    (UM2FA_ADMIN_GROUPS_ADMIN, UM2FA_ADMIN_GROUPS_HELPDESK), else None. A disabled or
    locked-out user has none."""
    row = ctx.db.scalar(select(Admin).where(Admin.username == user.username))
    if row is not None:
        return row.role
    return role_from_groups(ctx, user.username)


def role_from_groups(ctx: Context, username: str) -> str | None:
    """The role a directory group gives (LDAP only: a directory without groups gives none)."""
    settings = ctx.settings
    member_of = getattr(ctx.directory, "member_of", None)
    if member_of is None:
        return None
    for role, group in ((ADMIN, settings.admin_groups_admin),
                        (HELPDESK, settings.admin_groups_helpdesk)):
        if group and member_of(username, group):
            return role
    return None


SELF_DEMOTION = N_("you cannot take away your own admin role: another administrator must do "
                   "it, so that the console is never left without an administrator by mistake")


def _not_oneself(origin: Origin, row: Admin | None, role: str | None) -> None:
    """An administrator may not lower or remove their own admin role (`role` None: removal)."""
    if (row is not None and row.role == ADMIN and role != ADMIN and origin.actor
            and origin.actor == row.username):
        raise AdminError(_(SELF_DEMOTION))


def add(ctx: Context, origin: Origin, username: str, role: str) -> Admin:
    """Give `username` a console role, or change the role they have."""
    if role not in ROLES:
        raise AdminError(_("role must be one of %(choices)s", choices=", ".join(ROLES)))
    user = users.find(ctx, username)
    if user is None:
        raise AdminError(_("no such user: %(username)s (add the user first)", username=username))
    row = ctx.db.scalar(select(Admin).where(Admin.username == user.username))
    _not_oneself(origin, row, role)
    if row is None:
        row = Admin(username=user.username, role=role, created_at=ctx.now())
        ctx.db.add(row)
    row.role = role
    ctx.db.flush()
    audit.record(ctx, origin, "admin.add", "ok", username=user.username, detail=role)
    return row


def remove(ctx: Context, origin: Origin, username: str) -> None:
    row = ctx.db.scalar(select(Admin).where(Admin.username == username.strip().lower()))
    if row is None:
        raise AdminError(_("%(username)s is not an admin", username=username))
    _not_oneself(origin, row, None)
    ctx.db.delete(row)
    audit.record(ctx, origin, "admin.remove", "ok", username=row.username)


def find(ctx: Context, username: str) -> Admin | None:
    return ctx.db.scalar(select(Admin).where(Admin.username == username.strip().lower()))


def all_admins(ctx: Context) -> list[Admin]:
    return list(ctx.db.scalars(select(Admin).order_by(Admin.username)))
