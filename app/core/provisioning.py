"""Local rows for users whose password lives in an outside directory (LDAP).

`sync_user` creates the User row the first time a directory user signs in and brings it up to
date afterwards: name, mail, role, and the keyed hashes of date of birth and ID characters (the
same hashes as `users add`, so the recovery portal's identity check works unchanged). The row
has no password hash: the directory checks the password. Fields the directory does not give
(an unmapped attribute, or an empty one) keep their local value.

How fresh: a sign-in by the row's own username that read the attributes marks the row
(`directory_synced_at`); a VPN login within UM2FA_LDAP_ATTRIBUTE_MAX_AGE seconds of the mark
does not read them again (`attributes_fresh`), while the directory still checks its password.
Never when the role decides what the VPN is told (UM2FA_RADIUS_ROLE_ATTRIBUTES with a role
attribute mapped): then every login reads it. The web doors always read them (`sign_in`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import bindparam, select

from app.config import Settings
from app.core import audit, users
from app.core.context import Context, Origin
from app.core.directory import DirectoryUser
from app.db import Prepared
from app.models import User

ACTION = "user.provision"
_SYNCED_AT = Prepared(select(User.__table__.c.directory_synced_at)
                      .where(User.__table__.c.username == bindparam("username")))


def keeps_attributes_a_while(settings: Settings) -> bool:
    """Whether a VPN login may go without reading the directory's attributes: LDAP, a window
    (UM2FA_LDAP_ATTRIBUTE_MAX_AGE > 0), and no attribute that decides access read from them
    (the role, when UM2FA_RADIUS_ROLE_ATTRIBUTES gives roles their own reply attributes)."""
    role_decides = bool(settings.radius_role_attributes and settings.ldap_attributes.get("role"))
    return settings.directory == "ldap" and settings.ldap_attribute_max_age > 0 \
        and not role_decides


def attributes_fresh(ctx: Context, username: str) -> bool:
    """Whether the row of the typed username was brought up to date from the directory within
    UM2FA_LDAP_ATTRIBUTE_MAX_AGE seconds (`keeps_attributes_a_while`): then a VPN login need
    not read them again. One plain SELECT; False for a username we do not hold."""
    if not keeps_attributes_a_while(ctx.settings) or users.NUL in username:
        return False
    rows = _SYNCED_AT.execute(ctx.db.connection(), {"username": username.strip().lower()}).rows
    synced = rows[0][0] if rows else None
    if synced is None:
        return False
    age = ctx.now() - synced
    return timedelta(0) <= age < timedelta(seconds=ctx.settings.ldap_attribute_max_age)


def _hash(ctx: Context, purpose: str, value: str | None,
          normalise: Callable[[str], str]) -> tuple[bytes | None, bool]:
    """(keyed hash, True) of a value the directory gave in a usable form; (None, False) when it
    gave none; (None, True) when it gave one that is not usable (left out, noted in the audit)."""
    if value is None:
        return None, False
    try:
        return ctx.keys.keyed_hash(purpose, normalise(value)), True
    except users.UserError:
        return None, True


def _updates(ctx: Context, found: DirectoryUser) -> tuple[dict[str, object], list[str]]:
    """The column values the directory gives, and the names of unusable values."""
    values: dict[str, object] = {}
    bad: list[str] = []
    for column, value, limit in (("display_name", found.display_name, 200),
                                 ("email", found.email, 254), ("role", found.role, 32),
                                 ("given_name", found.given_name, 100),
                                 ("surname", found.surname, 100)):
        if value is not None:
            values[column] = value[:limit]
    for column, label, purpose, value, normalise in (
            ("dob_hash", "date of birth", users.DOB_PURPOSE, found.dob, users.normalise_dob),
            ("id_last4_hash", "ID characters", users.ID_PURPOSE, found.id_last4,
             users.normalise_id_last4)):
        digest, given = _hash(ctx, purpose, value, normalise)
        if digest is not None:
            values[column] = digest
        elif given:
            bad.append(f"unusable {label} in the directory")
    return values, bad


def sync_user(ctx: Context, origin: Origin, found: DirectoryUser,
              known: User | None = None, typed: str | None = None) -> User:
    """Create or update the local row for a directory user; audited when anything changed.
    Raises users.UserError when the directory's username cannot be one of ours. `known`: a row
    the caller has read already (used when it is this username's). `typed`: the username the
    person signed in with (LDAP): when it is the row's own, the row is marked as read from the
    directory now (`attributes_fresh`); a login by another name (e.g. a mail address) is not."""
    username = found.username.strip().lower()
    if not users.USERNAME_RE.fullmatch(username):
        raise users.UserError(f"username {username!r} must be 1-64 letters, digits, '.', '-', "
                              "'_'")
    values, bad = _updates(ctx, found)
    if typed is not None and typed.strip().lower() == username \
            and keeps_attributes_a_while(ctx.settings):
        values["directory_synced_at"] = ctx.now()
    user = known if known is not None and known.username == username else None
    user = user or users.find(ctx, username)
    if user is None:
        user = User(username=username, password_hash=None, created_at=ctx.now(),
                    **{"role": "", **values})
        ctx.db.add(user)
        ctx.db.flush()
        audit.record(ctx, origin, ACTION, "created", username=username,
                     detail="; ".join(["from the directory", *bad]))
        return user
    synced = values.pop("directory_synced_at", None)
    if synced is not None:
        user.directory_synced_at = synced  # set, never compared: no read of the deferred column
    changed = [column for column, value in values.items() if getattr(user, column) != value]
    for column in changed:
        setattr(user, column, values[column])
    if changed or bad:
        names = ", ".join(column.removesuffix("_hash") for column in changed)
        audit.record(ctx, origin, ACTION, "updated", username=username,
                     detail="; ".join(part for part in (names and f"changed {names}", *bad)
                                      if part))
    return user
