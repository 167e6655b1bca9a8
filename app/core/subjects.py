"""A user and their devices as a passcode check needs them, read with plain SQL (no ORM):
the RADIUS door's hot path and the web prompts' (app/core/users.py reads them; the browser
session store reads them with the session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, Table, select

from app.models import Device, User


@dataclass(frozen=True)
class DeviceRef:
    """A device as the passcode check needs it: read with plain SQL, no ORM state."""

    id: int
    user_id: int
    name: str
    kind: str
    active: bool
    is_default: bool
    secret_enc: bytes = field(repr=False)


@dataclass(frozen=True)
class Subject:
    """A user and their devices as the passcode check needs them: the ORM-free form of `User`
    (same attribute names) for the hot path of the RADIUS door. Read in one SELECT."""

    id: int
    username: str
    role: str
    disabled: bool
    locked_at: datetime | None
    failed_factor_count: int
    devices: tuple[DeviceRef, ...]
    locked_until: datetime | None = None

    @classmethod
    def of(cls, user: User) -> Subject:
        return cls(user.id, user.username, user.role, user.disabled, user.locked_at,
                   user.failed_factor_count,
                   tuple(DeviceRef(d.id, d.user_id, d.name, d.kind, d.active, d.is_default,
                                   d.secret_enc) for d in user.devices),
                   user.locked_until)


_U, _D = User.__table__, Device.__table__
_SUBJECT_FIELDS = (
    _U.c.id, _U.c.username, _U.c.role, _U.c.disabled, _U.c.locked_at, _U.c.failed_factor_count,
    _U.c.locked_until, _D.c.id, _D.c.user_id, _D.c.name, _D.c.kind, _D.c.active,
    _D.c.is_default, _D.c.secret_enc)
SUBJECT_SELECT = select(*_SUBJECT_FIELDS).select_from(
    _U.outerjoin(_D, _D.c.user_id == _U.c.id)).order_by(_D.c.id)


def select_with_subject(table: Table, user_id: ColumnElement, *columns: ColumnElement) -> Select:
    """`columns` of `table` and, after them, the Subject of the user whose id is `user_id` (none:
    empty), one row per device: a row and its user read in one round trip. Read the Subject
    with `subject_of(rows, skip=len(columns))`."""
    return select(*columns, *_SUBJECT_FIELDS).select_from(
        table.outerjoin(_U, _U.c.id == user_id).outerjoin(_D, _D.c.user_id == _U.c.id)
    ).order_by(_D.c.id)


def subject_of(rows: list[tuple], skip: int = 0) -> Subject | None:
    """The Subject in rows read with SUBJECT_SELECT (or `select_with_subject`, after `skip`
    columns of its own); None when there is no user."""
    if skip:
        rows = [row[skip:] for row in rows]
    if not rows or rows[0][0] is None:
        return None
    first = rows[0]
    devices = tuple(DeviceRef(*row[7:]) for row in rows if row[7] is not None)
    return Subject(first[0], first[1], first[2], bool(first[3]), first[4], first[5] or 0,
                   devices, first[6])
