"""`um2fa users export`: every user as a row for the help desk's spreadsheets (docs/admin.md,
"Exporting users"). No secret leaves: no password hash, no keyed hash of a date of birth or ID
characters, nothing of a device but how many of which kind are active.

Read a page of users at a time (keyset on the username) with one query for their devices, so
100,000 users stream in bounded memory."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

from sqlalchemy import func, select

from app.core import support
from app.core.context import Context
from app.models import Device, User

COLUMNS = ("username", "name", "given_name", "surname", "email", "role", "state",
           "locked_until", "created", "devices", "device_kinds")
# The columns an import reads under the same name (it also needs dob, id_last4 and, with the
# local directory, a password or password_hash: none of them is exported).
IMPORTABLE = ("username", "name", "given_name", "surname", "email", "role")
PAGE = 2000
_U, _D = User.__table__, Device.__table__


def count(ctx: Context) -> int:
    return ctx.db.scalar(select(func.count()).select_from(_U)) or 0


def _kinds(ctx: Context, ids: list[int]) -> dict[int, Counter[str]]:
    kinds: dict[int, Counter[str]] = defaultdict(Counter)
    for user_id, kind, n in ctx.db.execute(
            select(_D.c.user_id, _D.c.kind, func.count())
            .where(_D.c.user_id.in_(ids), _D.c.active.is_(True))
            .group_by(_D.c.user_id, _D.c.kind)):
        kinds[user_id][kind] = n
    return kinds


def rows(ctx: Context, *, page: int = PAGE) -> Iterator[tuple[str, ...]]:
    """One tuple of strings per user (COLUMNS), by username. Times are UTC, ISO 8601."""
    last = ""
    while True:
        batch = ctx.db.execute(
            select(_U.c.id, _U.c.username, _U.c.display_name, _U.c.given_name, _U.c.surname,
                   _U.c.email, _U.c.role, _U.c.disabled, _U.c.locked_at, _U.c.locked_until,
                   _U.c.created_at)
            .where(_U.c.username > last).order_by(_U.c.username).limit(page)).all()
        if not batch:
            return
        kinds = _kinds(ctx, [user.id for user in batch])
        for user in batch:
            state, until = support.state(ctx, user)  # type: ignore[arg-type]  # a Row of User
            devices = kinds.get(user.id, Counter())
            yield (user.username, user.display_name, user.given_name, user.surname, user.email,
                   user.role, state,
                   "" if until is None or until.year == 9999 else
                   until.isoformat(timespec="seconds"),
                   user.created_at.isoformat(timespec="seconds") if user.created_at else "",
                   str(sum(devices.values())),
                   " ".join(f"{kind}:{n}" for kind, n in sorted(devices.items())))
        last = batch[-1].username
