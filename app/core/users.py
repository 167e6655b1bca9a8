"""The local user directory: create, import, find, lock and unlock users."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, select

from app.core import audit, browser_sessions, lockout, remembered
from app.core.context import Context, Origin
from app.core.password_hashes import hash_password
from app.core.subjects import SUBJECT_SELECT, Subject, subject_of
from app.db import Prepared
from app.models import User

ROLES = ("student", "staff")
DOB_PURPOSE = "date-of-birth"
ID_PURPOSE = "id-last4"
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
NUL = "\x00"  # never sent to the database: PostgreSQL refuses it in a string parameter
MIN_PASSWORD = 8
NAME_MAX, EMAIL_MAX, PART_MAX = 200, 254, 100  # users.display_name, email, given_name/surname


class UserError(ValueError):
    """Bad input for a user operation; the message is safe to show."""


@dataclass
class NewUser:
    username: str
    password: str
    dob: str
    id_last4: str
    role: str = "student"
    name: str = ""
    email: str = ""
    given_name: str = ""
    surname: str = ""


def normalise_dob(value: str) -> str:
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError as exc:
        raise UserError(f"date of birth {value!r} is not a date in YYYY-MM-DD form") from exc


def normalise_id_last4(value: str) -> str:
    value = value.strip().upper()
    if len(value) != 4 or not value.isalnum():
        raise UserError("the last 4 characters of the ID/passport must be 4 letters or digits")
    return value


def check_password_rule(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


def _validate(new: NewUser) -> None:
    """Everything but the password (`check_password_rule`)."""
    if not USERNAME_RE.fullmatch(new.username):
        raise UserError(f"username {new.username!r} must be 1-64 letters, digits, '.', '-', '_'")
    if new.role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if len(new.name) > NAME_MAX:
        raise UserError(f"the name is longer than {NAME_MAX} characters")
    if len(new.email) > EMAIL_MAX:
        raise UserError(f"the email address is longer than {EMAIL_MAX} characters")
    if NUL in new.name or NUL in new.email or NUL in new.given_name or NUL in new.surname:
        raise UserError("a name or email address holds a NUL character")


def prepare(ctx: Context, new: NewUser) -> dict[str, object]:
    """The new user's row, checked, but for its password hash (`add`, and `user_import` for
    many at once). Raises UserError."""
    new.username = new.username.strip().lower()
    _validate(new)
    return {"username": new.username, "display_name": new.name, "email": new.email,
            "role": new.role, "given_name": new.given_name[:PART_MAX],
            "surname": new.surname[:PART_MAX],
            "dob_hash": ctx.keys.keyed_hash(DOB_PURPOSE, normalise_dob(new.dob)),
            "id_last4_hash": ctx.keys.keyed_hash(ID_PURPOSE, normalise_id_last4(new.id_last4)),
            "created_at": ctx.now()}


_SUBJECT = Prepared(SUBJECT_SELECT.where(User.username == bindparam("username")))
_SUBJECT_BY_ID = Prepared(SUBJECT_SELECT.where(User.id == bindparam("id")))


def subject(ctx: Context, username: str) -> Subject | None:
    """The user and their devices in one SELECT, without the ORM (see Subject)."""
    if NUL in username:  # no one's name has one, and PostgreSQL refuses it in a parameter
        return None
    return subject_of(_SUBJECT.execute(ctx.db.connection(),
                                       {"username": username.strip().lower()}).rows)


def subject_by_id(ctx: Context, user_id: int) -> Subject | None:
    """`subject` by the user's id (a signed-in browser session's)."""
    return subject_of(_SUBJECT_BY_ID.execute(ctx.db.connection(), {"id": user_id}).rows)


def find(ctx: Context, username: str) -> User | None:
    if NUL in username:  # no one's name has one, and PostgreSQL refuses it in a parameter
        return None
    return ctx.db.scalar(select(User).where(User.username == username.strip().lower()))


def name_by_id(ctx: Context, user_id: int | None) -> str:
    """The username of a user id, or "" when there is none (for an audit record)."""
    user = ctx.db.get(User, user_id) if user_id is not None else None
    return user.username if user is not None else ""


def get(ctx: Context, username: str) -> User:
    user = find(ctx, username)
    if user is None:
        raise UserError(f"no such user: {username}")
    return user


def add(ctx: Context, origin: Origin, new: NewUser) -> User:
    """One user with a password (many at once: app/core/user_import.py)."""
    columns = prepare(ctx, new)
    check_password_rule(new.password)
    if find(ctx, new.username) is not None:
        raise UserError(f"user {new.username} already exists")
    user = User(**columns, password_hash=hash_password(new.password))
    ctx.db.add(user)
    ctx.db.flush()
    audit.record(ctx, origin, "user.add", "ok", username=user.username)
    return user


def end_everywhere(ctx: Context, user: User) -> None:
    """Every browser session of the user ends, and no browser stays remembered."""
    browser_sessions.end_for_user(ctx, user.id)
    remembered.forget_all(ctx, user.id)


def lock(ctx: Context, origin: Origin, username: str) -> User:
    """The administrator's lock (disabled): no second factor admits the user, who is signed
    out everywhere, until `enable` or `unlock`."""
    user = get(ctx, username)
    user.disabled = True
    end_everywhere(ctx, user)
    audit.record(ctx, origin, "user.lock", "ok", username=user.username)
    return user


def enable(ctx: Context, origin: Origin, username: str) -> User:
    """Lift the administrator's lock only (a second-factor lockout stays)."""
    user = get(ctx, username)
    user.disabled = False
    audit.record(ctx, origin, "user.enable", "ok", username=user.username)
    return user


def unlock(ctx: Context, origin: Origin, username: str) -> User:
    """Lifts both an administrator's lock and a second-factor lockout."""
    user = get(ctx, username)
    user.disabled = False
    lockout.unlock(user)
    browser_sessions.end_for_user(ctx, user.id)  # unlocked: start again from a clean slate
    audit.record(ctx, origin, "user.unlock", "ok", username=user.username)
    return user
