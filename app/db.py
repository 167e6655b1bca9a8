"""Plain SQLAlchemy 2.x: an engine and a session factory, usable with or without Flask."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import Executable

# What a database that cannot be reached raises (down, restarting, a connection dropped, the
# pool exhausted while it hangs): every door answers "temporarily unavailable" to these.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# A pooled connection idle for longer than this is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 1.0


def _checked_in(_dbapi_conn, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
    """A connection that has waited in the pool (the database may have restarted meanwhile)
    is pinged; one that was in use a moment ago is not: under load, where every request
    checks a connection out, the ping would be one more round trip each time. A dead one is
    replaced (DisconnectionError: the pool connects afresh)."""
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as exc:
        raise DisconnectionError(f"pooled connection lost ({type(exc).__name__})") from exc


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        kwargs: dict = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "checkin", _checked_in)
            event.listen(self.engine, "checkout", _ping_if_idle)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def sent_with_the_commit(session: Session) -> Iterator[None]:
    """The block's statements and the transaction's COMMIT go to the server together, in one
    round trip (psycopg's pipeline mode): for the last writes of a transaction, whose results
    nobody reads (a row count comes back as -1). The session's ORM changes are flushed before.
    After the block the connection has committed; the caller's `session.commit()` then only
    ends the session's transaction (and runs its after-commit hooks). An error of any of them
    is raised at the end of the block, as SQLAlchemy raises it (OperationalError and the rest),
    and the transaction is left to roll back. SQLite, or no transaction begun: a plain block,
    the COMMIT left to `session.commit()`."""
    if not session.in_transaction():
        yield
        return
    session.flush()
    conn = session.connection()
    raw = conn.connection.dbapi_connection
    pipeline = getattr(raw, "pipeline", None)
    if pipeline is None:
        yield
        return
    try:
        with pipeline():
            yield
            raw.commit()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, raw, None, exc, "COMMIT") from exc


class Prepared:
    """A Core statement compiled once per dialect and run on the DBAPI cursor of a Connection.

    For the few statements of the RADIUS door's hot path (read the user, claim the TOTP step):
    SQLAlchemy's per-execution work (cache key, execution context, result wrapping) costs about
    twice what the database itself does for these one-row statements. Parameters and result
    columns still go through their types' processors, the statement is the same Core construct
    (so the SQL is the dialect's own), and it runs in the Connection's transaction. What is
    skipped is SQLAlchemy's execution events and its SQL echo."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def execute(self, conn: Connection, params: dict[str, Any]) -> _Result:
        compiled = self._compiled.get(conn.dialect.name)
        if compiled is None:
            compiled = self._compiled[conn.dialect.name] = _Compiled(self.statement, conn)
        return compiled.execute(conn, params)


def _wrapped(conn: Connection, dbapi_conn: Any, cursor: Any, exc: Exception,
             sql: str) -> BaseException:
    """A DBAPI error as SQLAlchemy raises it for its own statements (OperationalError and the
    rest, parameters hidden); a lost connection is invalidated, as SQLAlchemy would, so the
    pool never hands it out again and the caller knows to retry on a fresh one."""
    lost = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error,
                               hide_parameters=True, connection_invalidated=lost,
                               dialect=conn.dialect)


class _Result:
    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount


class _Compiled:
    def __init__(self, statement: Executable, conn: Connection) -> None:
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = list(compiled.positiontup or []) if compiled.positional else None
        self.binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                      for name, bind in compiled.binds.items()}
        columns = getattr(statement, "selected_columns", None) or []
        self.results = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                        for column in columns]
        self.returns = bool(columns)

    def execute(self, conn: Connection, params: dict[str, Any]) -> _Result:
        values = {name: (proc(params[name]) if (proc := self.binds.get(name)) else params[name])
                  for name in params}
        args: Any = [values[n] for n in self.positional] if self.positional is not None \
            else values
        dbapi_conn = conn.connection
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, args)
            rows = cursor.fetchall() if self.returns else []
            rowcount = cursor.rowcount
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, dbapi_conn, cursor, exc, self.sql) from exc
        finally:
            cursor.close()
        if rows and any(self.results):
            procs = self.results
            rows = [tuple(p(v) if p else v for p, v in zip(procs, row, strict=True))
                    for row in rows]
        return _Result(rows, rowcount)
