"""Local rows for users whose password lives in an outside directory (LDAP).

`sync_user` creates the User row the first time a directory user signs in and brings it up to
date afterwards: name, mail, role, and the keyed hashes of date of birth and ID characters (the
same hashes as `users add`, so the recovery portal's identity check works unchanged). The row
has no password hash: the directory checks the password. Fields the directory does not give
(an unmapped attribute, or an empty one) keep their local value.
"""

from __future__ import annotations

from collections.abc import Callable

from app.core import audit, users
from app.core.context import Context, Origin
from app.core.directory import DirectoryUser
from app.models import User

ACTION = "user.provision"


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
              known: User | None = None) -> User:
    """Create or update the local row for a directory user; audited when anything changed.
    Raises users.UserError when the directory's username cannot be one of ours. `known`: a row
    the caller has read already (used when it is this username's)."""
    username = found.username.strip().lower()
    if not users.USERNAME_RE.fullmatch(username):
        raise users.UserError(f"username {username!r} must be 1-64 letters, digits, '.', '-', "
                              "'_'")
    values, bad = _updates(ctx, found)
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
    changed = [column for column, value in values.items() if getattr(user, column) != value]
    for column in changed:
        setattr(user, column, values[column])
    if changed or bad:
        names = ", ".join(column.removesuffix("_hash") for column in changed)
        audit.record(ctx, origin, ACTION, "updated", username=username,
                     detail="; ".join(part for part in (names and f"changed {names}", *bad)
                                      if part))
    return user
