from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

from app.migrate import lock_keys
from app.models import Base

config = context.config
url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")


def _serialise(connection: Connection) -> None:
    """PostgreSQL: wait for any other run on this schema, then set lock_timeout for ours.

    A session-level lock, held until the connection closes (NullPool: at the end of the run),
    also if a migration fails. Committed before Alembic begins its own transactions."""
    schema = connection.execute(text("SELECT current_schema()")).scalar() or ""
    a, b = lock_keys(schema)
    keys = {"a": a, "b": b}
    if not connection.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), keys).scalar():
        on_wait = config.attributes.get("on_wait")
        if on_wait is not None:
            on_wait()
        connection.execute(text("SELECT pg_advisory_lock(:a, :b)"), keys)
    # Set after the advisory wait, which may be long; from here a statement waiting for a table
    # lock (e.g. an ALTER TABLE behind a long transaction) fails instead of making the service's
    # queries queue behind it.
    timeout = config.attributes.get("lock_timeout") or 0
    connection.execute(text("SELECT set_config('lock_timeout', :ms, false)"),
                       {"ms": f"{max(1, round(timeout * 1000)) if timeout > 0 else 0}ms"})
    connection.commit()


def run_migrations() -> None:
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            _serialise(connection)
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
