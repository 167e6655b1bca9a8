"""The database pool's ping (app/db.py): a connection that waited in the pool is pinged before it
is handed out, and replaced if the database dropped it meanwhile (a restart, an idle timeout in
a proxy); a connection that was in use a moment ago is not (under load each request would pay
one more round trip). Needs UM2FA_TEST_DATABASE_URL (.ci/run sets it)."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy import text

from app import db as db_module
from app.db import Database

PG_URL = os.environ.get("UM2FA_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs UM2FA_TEST_DATABASE_URL")


@pytest.fixture
def database():
    database = Database(PG_URL + ("&" if "?" in PG_URL else "?") + "application_name=pool-ping")
    yield database
    database.dispose()


def statements(monkeypatch) -> list[str]:
    """Every statement psycopg sends (the pool's own pings included, which SQLAlchemy's
    execution events do not see)."""
    seen: list[str] = []
    original = psycopg.Cursor.execute

    def execute(cursor, query, *args, **kwargs):
        seen.append(str(query))
        return original(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return seen


def backend_pid(database: Database) -> int:
    with database.engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_in_use_a_moment_ago_is_not_pinged(database, monkeypatch):
    first = backend_pid(database)
    seen = statements(monkeypatch)
    for _ in range(5):
        assert backend_pid(database) == first  # the same pooled connection
    assert seen == ["SELECT pg_backend_pid()"] * 5  # and no "SELECT 1" before each


def test_a_connection_the_database_dropped_while_it_waited_is_replaced(database, monkeypatch):
    first = backend_pid(database)
    with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if it waited a while
    second = backend_pid(database)  # no error: the ping found it dead, the pool reconnected
    assert second != first
