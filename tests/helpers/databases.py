"""The tests' databases at the migrations' head, without running Alembic for every test
(tests/conftest.py: `database_url`, `app`).

SQLite: the migrations run once per session into a file; a test gets a copy of it.

PostgreSQL: the migrations run once, in the first test's schema, and the statements they sent
are kept; a new schema gets them replayed in one transaction. A schema goes back to a pool after
its test, emptied (every row deleted, every sequence restarted), when its tables are still the
migrations' own; the next test takes it from there. Creating and dropping some twenty tables
with their indexes for every test is what costs; a schema whose structure a test changed (a
table made or altered) is dropped instead. Schemas for tests that migrate by themselves (no
`app`) are new and empty, as before.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import migrate
from app.models import Base

Statements = list[tuple[str, object, bool]]  # (SQL, parameters, executemany)

# The schema's structure: its relations with their columns, its constraints and functions.
FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || a.attname || ':'
                     || format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull::text, ','
                     ORDER BY c.relname, a.attnum)
     FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
      AND NOT a.attisdropped),
  (SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ',' ORDER BY conname)
     FROM pg_constraint WHERE connamespace = current_schema()::regnamespace),
  (SELECT string_agg(proname, ',' ORDER BY proname)
     FROM pg_proc WHERE pronamespace = current_schema()::regnamespace)))
"""


def recorded(url: str) -> Statements:
    """Migrate `url` (an empty schema) and keep what changed it: every statement but the reads
    (SELECTs: the migrations' look-ups, env.py's advisory lock and lock_timeout)."""
    sent: Statements = []

    def record(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters, executemany))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        migrate.upgrade(url)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert sent, "the migrations sent nothing to record"
    return sent


def replay(url: str, statements: Statements) -> None:
    with psycopg.connect(plain(url)) as conn, conn.cursor() as cur:  # one transaction
        for statement, parameters, many in statements:
            if many:
                cur.executemany(statement, parameters)
            else:
                cur.execute(statement, parameters or None)


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class Databases:
    def __init__(self, folder: Path, pg_url: str) -> None:
        self.folder, self.pg_url = folder, pg_url
        self.sqlite_file: Path | None = None
        self.statements: Statements | None = None
        self.fingerprint = ""
        self.emptying = ""  # the SQL that empties a migrated schema
        self.pool: list[str] = []

    # --- SQLite --------------------------------------------------------------------------------

    def migrate(self, url: str) -> None:
        """Bring the empty database at `url` to the migrations' head."""
        if url.startswith("sqlite:///"):
            self._sqlite(Path(url.removeprefix("sqlite:///")))
        elif self.statements is None:
            self._first(url)
        else:
            replay(url, self.statements)

    def _sqlite(self, target: Path) -> None:
        if self.sqlite_file is None:
            self.sqlite_file = self.folder / "migrated.sqlite3"
            migrate.upgrade(f"sqlite:///{self.sqlite_file}")
        shutil.copyfile(self.sqlite_file, target)

    # --- PostgreSQL schemas --------------------------------------------------------------------

    def url(self, schema: str) -> str:
        sep = "&" if "?" in self.pg_url else "?"
        return f"{self.pg_url}{sep}options={quote(f'-csearch_path={schema}')}"

    def take(self, *, migrated: bool) -> str:
        """A schema of its own for one test: empty, or at the migrations' head."""
        if migrated and self.pool:
            return self.pool.pop()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(plain(self.pg_url), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        if migrated:
            self.migrate(self.url(schema))
        return schema

    def give_back(self, schema: str, *, migrated: bool) -> None:
        if migrated and self._emptied(schema):
            self.pool.append(schema)
        else:
            self.drop(schema)

    def drop(self, schema: str) -> None:
        with psycopg.connect(plain(self.pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    def close(self) -> None:
        while self.pool:
            self.drop(self.pool.pop())

    def _first(self, url: str) -> None:
        self.statements = recorded(url)
        with psycopg.connect(plain(url)) as conn:
            self.fingerprint = conn.execute(FINGERPRINT).fetchone()[0]
            sequences = [name for (name,) in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() "
                "ORDER BY 1")]
        tables = [table.name for table in reversed(Base.metadata.sorted_tables)]  # FKs first
        # (names from our models and the catalog, not from input)
        self.emptying = "; ".join([f'DELETE FROM "{table}"' for table in tables]  # noqa: S608
                                  + [f"SELECT setval('\"{seq}\"', 1, false)"
                                     for seq in sequences])

    def _emptied(self, schema: str) -> bool:
        """Empty the schema for the next test, if it is still as the migrations left it."""
        try:
            with psycopg.connect(plain(self.url(schema))) as conn:
                conn.execute("SET lock_timeout = '2s'")  # a row a leftover transaction holds
                if conn.execute(FINGERPRINT).fetchone()[0] != self.fingerprint:
                    return False
                conn.execute(self.emptying)
            return True
        except psycopg.Error:
            return False
