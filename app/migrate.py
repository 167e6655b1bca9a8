"""Alembic, driven from code so that `um2fa db upgrade` needs no alembic.ini.

On PostgreSQL a run is safe against a live database and against another run (docs/deploy.md):
app/migrations/env.py takes an advisory lock so that runs on several nodes at once go one after
the other, runs each migration in its own transaction, and sets `lock_timeout` so that a
migration stuck behind a long transaction gives up instead of queueing the service behind it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.db import normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_LOCK_TIMEOUT = 5.0  # seconds
# The advisory lock that serialises migration runs: this fixed key with one derived from the
# schema the migrations go into, so that databases (or schemas) do not wait for each other.
MIGRATION_LOCK_KEY = 0x756D3266  # "um2f"


def lock_keys(schema: str) -> tuple[int, int]:
    """The two int4 keys of the advisory lock that one schema's migration runs take in turn."""
    key = zlib.crc32(schema.encode())
    return MIGRATION_LOCK_KEY, key - 2**32 if key >= 2**31 else key


LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ends a wait


def alembic_config(url: str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                   on_wait: Callable[[], None] | None = None) -> Config:
    """`lock_timeout`: seconds a statement may wait for a lock (PostgreSQL; 0: for ever).
    `on_wait`: called once if another run holds the migration lock and this one waits."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = normalise_url(url)
    cfg.attributes["lock_timeout"] = lock_timeout
    cfg.attributes["on_wait"] = on_wait
    return cfg


def upgrade(url: str, revision: str = "heads", *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
            on_wait: Callable[[], None] | None = None) -> None:
    """Apply migrations. Each runs in a transaction (PostgreSQL), so a live database sees
    either the old schema or the new one."""
    command.upgrade(alembic_config(url, lock_timeout=lock_timeout, on_wait=on_wait), revision)


def downgrade(url: str, revision: str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
              on_wait: Callable[[], None] | None = None) -> None:
    """Undo migrations down to `revision` (or "-1": one step). Drops their tables and columns."""
    command.downgrade(alembic_config(url, lock_timeout=lock_timeout, on_wait=on_wait), revision)


def is_lock_timeout(exc: BaseException) -> bool:
    """A SQLAlchemy error raised because a statement waited longer than lock_timeout."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == LOCK_NOT_AVAILABLE


def current(url: str) -> set[str]:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def heads() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
