"""`um2fa users import`: many users at once, all or none (docs/admin.md, "Importing users").

Every row is checked before anything is written, and the first bad line is named ("line N: …",
the header being line 1; a record whose quoted value spans lines is named by its first line).
A row's username may be neither on an earlier line nor in the database (one query for many
rows). Then plain passwords are hashed over every core (`password_hashes.hash_many`), and the
users go in with multi-row INSERTs, one audit record each, in the caller's transaction: a
failure anywhere leaves nothing.

A row carries a plain `password`, a `password_hash` (a format of app/core/password_hashes.py,
stored as it is until the first sign-in replaces it by argon2id), or, when the directory checks
passwords itself (`UM2FA_DIRECTORY=ldap` or `radius`), neither: there a password is refused,
as we would keep a secret we never use."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app.core import audit, password_hashes, users
from app.core.context import Context, Origin
from app.core.directory import keeps_passwords
from app.core.progress import Progress, silent
from app.models import User

PASSWORD, PASSWORD_HASH = "password", "password_hash"
# The header's columns: these, a password column (with the local directory), and optionally
# given_name and surname; others are ignored.
REQUIRED = ("username", "dob", "id_last4", "role", "name", "email")
INSERT_ROWS = 1000  # rows per INSERT
QUERY_NAMES = 5000  # usernames per "which of these exist" query
_STEP = 500  # rows checked between two progress updates
_TABLE = User.__table__


@dataclass
class Imported:
    """What an import added: how many users, and how their passwords came."""

    added: int = 0
    hashed: int = 0  # plain passwords, hashed here
    kept: Counter[str] = field(default_factory=Counter)  # imported hashes, by format
    without_password: int = 0  # the directory checks their passwords


@dataclass
class _Row:
    line: int
    values: dict[str, object]
    password: str | None = field(default=None, repr=False)  # plain, to be hashed
    kind: str = ""  # the imported hash's format


class _Header:
    def __init__(self, names: Sequence[str], local: bool, directory: str) -> None:
        self.names = [name.strip().lower() for name in names]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.local, self.directory = local, directory
        if len(self.index) < len(self.names):
            twice = sorted({n for n in self.names if self.names.count(n) > 1})
            raise users.UserError(f"the header line names column(s) twice: {', '.join(twice)}")
        missing = [c for c in REQUIRED if c not in self.index]
        if local and PASSWORD not in self.index and PASSWORD_HASH not in self.index:
            missing.append(f"{PASSWORD} or {PASSWORD_HASH}")
        if missing:
            raise users.UserError(f"the header line lacks column(s): {', '.join(missing)}")

    def row(self, ctx: Context, line: int, record: list[str]) -> _Row:
        if len(record) != len(self.names):
            raise users.UserError(f"{len(record)} fields where the header has {len(self.names)}"
                                  " (a comma in a value that is not in double quotes?)")
        index = self.index

        def cell(name: str) -> str:
            return record[index[name]] if name in index else ""

        new = users.NewUser(cell("username").strip(), "", cell("dob").strip(),
                            cell("id_last4").strip(), cell("role").strip(),
                            cell("name").strip(), cell("email").strip(),
                            cell("given_name").strip(), cell("surname").strip())
        row = _Row(line, users.prepare(ctx, new))
        password, hashed = cell(PASSWORD), cell(PASSWORD_HASH).strip()
        if password and hashed:
            raise users.UserError(f"give a {PASSWORD} or a {PASSWORD_HASH}, not both")
        row.values["password_hash"] = None
        if not self.local:
            if password or hashed:
                raise users.UserError(
                    f"passwords are checked by the {self.directory} directory "
                    f"(UM2FA_DIRECTORY): leave {PASSWORD} and {PASSWORD_HASH} empty")
        elif hashed:
            try:
                row.kind = password_hashes.importable(hashed)
            except password_hashes.HashFormatError as exc:
                raise users.UserError(str(exc)) from exc
            row.values["password_hash"] = hashed
        elif password:
            users.check_password_rule(password)
            row.password = password
        else:
            raise users.UserError(f"no {PASSWORD} and no {PASSWORD_HASH} (the local directory "
                                  "checks passwords with them)")
        return row


def _records(stream: IO[str]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and every non-blank record with the line it starts on."""
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None:
            raise users.UserError("the file is empty: a header line is needed first")
        records = []
        end = reader.line_num
        for record in reader:
            start, end = end + 1, reader.line_num
            if record:
                records.append((start, record))
    except csv.Error as exc:
        raise users.UserError(f"line {reader.line_num}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise users.UserError(f"line {reader.line_num + 1}: the file is not UTF-8 "
                              "text") from exc
    return header, records


def _existing(ctx: Context, names: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(names), QUERY_NAMES):
        found.update(ctx.db.scalars(select(User.username).where(
            User.username.in_(names[i:i + QUERY_NAMES]))))
    return found


def _check(ctx: Context, stream: IO[str], progress: Progress) -> list[_Row]:
    """Every row checked; raises UserError naming the first bad line."""
    names, records = _records(stream)
    header = _Header(names, keeps_passwords(ctx.directory), ctx.settings.directory)
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    failed: tuple[int, users.UserError] | None = None
    with progress("checking", len(records)) as phase:
        for count, (line, record) in enumerate(records, start=1):
            try:
                row = header.row(ctx, line, record)
                username = str(row.values["username"])
                if username in seen:
                    raise users.UserError(f"user {username} is also on line {seen[username]}")
            except users.UserError as exc:
                failed = (line, exc)
                break
            seen[username] = line
            rows.append(row)
            if count % _STEP == 0:
                phase.update(_STEP)
        phase.update(len(records) % _STEP)
    # The rows before the first bad one may name users we have: the earliest is the first error.
    existing = _existing(ctx, list(seen))
    for row in rows:
        if row.values["username"] in existing:
            raise users.UserError(f"line {row.line}: user {row.values['username']} already "
                                  "exists")
    if failed is not None:
        raise users.UserError(f"line {failed[0]}: {failed[1]}") from failed[1]
    return rows


def import_csv(ctx: Context, origin: Origin, stream: IO[str], *, progress: Progress = silent,
               workers: int | None = None) -> Imported:
    """Add every user of the CSV `stream` (a header line first), or none: raises UserError
    naming the first bad line. Plain passwords are hashed by `workers` processes (every core).
    Commits nothing: the caller's transaction holds it all."""
    rows = _check(ctx, stream, progress)
    plain = [row for row in rows if row.password is not None]
    if plain:
        with progress("hashing passwords", len(plain)) as phase:
            hashes = password_hashes.hash_many([str(row.password) for row in plain],
                                               workers=workers, done=phase.update)
        for row, hashed in zip(plain, hashes, strict=True):
            row.values["password_hash"], row.password = hashed, None
    try:
        with progress("adding users", len(rows)) as phase:
            for i in range(0, len(rows), INSERT_ROWS):
                chunk = [row.values for row in rows[i:i + INSERT_ROWS]]
                ctx.db.execute(insert(_TABLE), chunk)
                phase.update(len(chunk))
    except IntegrityError as exc:  # added by someone else since the check
        raise users.UserError("a user of the file was added meanwhile by someone else; nothing "
                              "was imported, try again") from exc
    audit.record_many(ctx, origin, "user.add", "ok",
                      (str(row.values["username"]) for row in rows), detail="import")
    return Imported(added=len(rows), hashed=len(plain),
                    kept=Counter(row.kind for row in rows if row.kind),
                    without_password=sum(1 for row in rows
                                         if row.values["password_hash"] is None))
