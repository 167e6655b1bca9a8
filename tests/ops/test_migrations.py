"""The Alembic migrations build exactly the schema the models describe, and go down again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app import migrate
from app.db import normalise_url
from app.models import Base


def test_migrations_match_the_models(database_url):
    migrate.upgrade(database_url)
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
    assert migrate.current(database_url) == migrate.heads()


def test_one_linear_history_that_downgrades_and_upgrades(database_url):
    assert len(migrate.heads()) == 1
    migrate.upgrade(database_url)
    command.downgrade(migrate.alembic_config(database_url), "base")
    assert migrate.current(database_url) == set()
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.heads()
