"""The recovery portal's identity check: role, UMPASS ID, date of birth, last 4 ID characters.

Every check runs whatever the outcome of the others, and an unknown UMPASS ID costs the same
keyed-hash work as a known one, so neither the answer nor its timing says which part was wrong.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from app.core import lockout, users
from app.core.context import Context
from app.i18n import _
from app.models import User


@dataclass(frozen=True)
class Identity:
    """The typed answers, already normalised (see `normalise`)."""

    role: str
    username: str
    dob: str
    id_last4: str


@dataclass(frozen=True)
class IdentityCheck:
    user: User | None
    ok: bool
    # Names of the failed checks, for the audit record only.
    failed: tuple[str, ...]


def normalise(role: str, username: str, dob: str, id_last4: str) -> Identity:
    """Raises users.UserError (a message safe to show, in the person's language) when a value
    has the wrong shape."""
    name = username.strip().lower()
    if not name or len(name) > 64:
        raise users.UserError(_("Enter your UMPASS ID."))
    try:
        dob = users.normalise_dob(dob)
    except users.UserError as exc:
        raise users.UserError(_("date of birth %(value)s is not a date in YYYY-MM-DD form",
                                value=repr(dob))) from exc
    try:
        id_last4 = users.normalise_id_last4(id_last4)
    except users.UserError as exc:
        raise users.UserError(_("the last 4 characters of the ID/passport must be 4 letters "
                                "or digits")) from exc
    return Identity(role=role.strip().lower(), username=name, dob=dob, id_last4=id_last4)


def check(ctx: Context, answers: Identity) -> IdentityCheck:
    user = users.find(ctx, answers.username)
    # Both keyed hashes are computed for known and unknown users alike (matches() does the
    # work even when there is nothing stored), and compared in constant time.
    dob_ok = ctx.keys.matches(users.DOB_PURPOSE, answers.dob, user.dob_hash if user else None)
    id_ok = ctx.keys.matches(users.ID_PURPOSE, answers.id_last4,
                             user.id_last4_hash if user else None)
    role_ok = hmac.compare_digest((user.role if user else "").encode(), answers.role.encode())
    locked = user is not None and lockout.is_locked(user, ctx.now())
    failed = tuple(name for name, good in (
        ("unknown user", user is not None), ("account locked", not locked),
        ("wrong role", role_ok), ("wrong date of birth", dob_ok), ("wrong ID characters", id_ok),
    ) if not good)
    if user is None:
        failed = ("unknown user",)
    return IdentityCheck(user=user, ok=not failed, failed=failed)
