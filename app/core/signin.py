"""The password step every door drives first: the directory checks the password, a user the
directory knows is provisioned, and a locked or unknown user fails like a wrong password."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.core import audit, browser_sessions, lockout, password_hashes, provisioning, users
from app.core.context import Context, Origin
from app.core.directory import Directory, DirectoryUser, keeps_passwords, upgraded_hash
from app.core.subjects import Subject
from app.i18n import N_
from app.models import User

# a msgid: each door shows `_(SIGN_IN_FAILED)`
SIGN_IN_FAILED = N_("Incorrect UMPASS ID or password, or the account cannot sign in.")


def sign_in(ctx: Context, origin: Origin, username: str, password: str) -> User | None:
    """The primary (password) step. Unknown, locked and wrong-password users all get None,
    after the same amount of work."""
    user = sign_in_first(ctx, origin, username, (password,))[0]
    assert not isinstance(user, Subject)  # read as a row: no directory answer given
    return user


def sign_out(ctx: Context, origin: Origin, user_id: int | None) -> None:
    """Sign-out ends every session of the user, in every browser (a copied cookie too)."""
    if user_id is None:
        return
    browser_sessions.end_for_user(ctx, user_id)
    audit.record(ctx, origin, "sign_out", "ok", username=users.name_by_id(ctx, user_id))


@dataclass(frozen=True)
class PasswordCheck:
    """What the directory answered for the readings of a typed password: the index of the
    first reading that is the password (-1: none is), and after a match the user's attributes
    from the directory (None from one that keeps none)."""

    matched: int
    found: DirectoryUser | None = None


def check_password(directory: Directory, username: str, stored: str | None,
                   readings: Sequence[str], attributes: bool = True) -> PasswordCheck:
    """Ask the directory: every reading in turn until one is the password (all of them for an
    unknown user too), then the attributes (not when `attributes` is False: the row is fresh,
    `provisioning.attributes_fresh`). Raises DirectoryUnavailable."""
    for index, password in enumerate(readings):
        if directory.check_password(username, stored, password):
            return PasswordCheck(index, directory.lookup(username) if attributes else None)
    return PasswordCheck(-1)


def check_apart(directory: Directory, username: str, readings: Sequence[str],
                attributes: bool = True) -> PasswordCheck | None:
    """`check_password` before the request's transaction, for a directory outside our
    database (LDAP, upstream RADIUS), which needs no stored hash: the slow part of a sign-in
    (the directory's round trips) then holds no transaction, and `sign_in_first` takes the
    answer. None for the local directory: it checks the hash read in the transaction.
    `attributes`: whether to read the user's attributes after a match (`check_password`)."""
    if keeps_passwords(directory):
        return None
    return check_password(directory, username, None, readings, attributes)


def sign_in_first(ctx: Context, origin: Origin, username: str, readings: Sequence[str],
                  checked: PasswordCheck | None = None) -> tuple[User | Subject | None, int]:
    """The primary step when what the user typed can be read more than one way (the VPN door
    tries "password,passcode" split, then whole): the first reading that is the password wins
    and its index is returned. Every reading is tried for unknown users too; one audit record.
    `checked`: the directory's answer for these readings, asked before (`check_apart`). When
    it brings no attributes to store (none read: the row is fresh), the user is read without
    the ORM (a subjects.Subject, as the second-factor door reads it); else as a User row."""
    lean = checked is not None and checked.found is None and not keeps_passwords(ctx.directory)
    user: User | Subject | None = users.subject(ctx, username) if lean \
        else users.find(ctx, username)
    stored = user.password_hash if isinstance(user, User) else None
    if checked is None or keeps_passwords(ctx.directory):
        checked = check_password(ctx.directory, username, stored, readings)
    matched = checked.matched
    ok = matched >= 0
    if ok:  # a directory outside our database (LDAP) creates or refreshes the local row
        found = checked.found
        if found is not None:
            try:
                user = provisioning.sync_user(ctx, origin, found,
                                              user if isinstance(user, User) else None,
                                              typed=username)
            except users.UserError:
                user = None  # a directory username we cannot hold: as unknown
    # A username that matches no user may be a password typed in the wrong field: the audit
    # keeps a keyed hash of it, unless the directory accepted the password (a real name).
    name = (username.strip().lower()[:64] if ok and user is None
            else audit.username_of(ctx.keys, user, username))
    locked = user is not None and lockout.is_locked(user, ctx.now())
    if user is None or not ok or locked:
        reason = "unknown user" if user is None else ("locked" if locked and ok
                                                       else "wrong password")
        audit.record(ctx, origin, "sign_in", "fail", username=name, detail=reason)
        return None, -1
    _upgrade(ctx, origin, user, stored, readings[matched])
    audit.record(ctx, origin, "sign_in", "ok", username=name)
    return user, matched


def _upgrade(ctx: Context, origin: Origin, user: User | Subject, stored: str | None,
             password: str) -> None:
    """An imported directory's hash (or argon2 with older parameters) that the password just
    matched is replaced by a new argon2id hash, once: audited with the formats, no secret."""
    new = upgraded_hash(ctx.directory, stored, password)
    if new is None or stored is None or not isinstance(user, User):
        return
    user.password_hash = new
    audit.record(ctx, origin, "password.rehash", "ok", username=user.username,
                 detail=f"{password_hashes.label(stored)} -> argon2id")
