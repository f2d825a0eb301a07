"""Engines configured for the store, and the packaged Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

_EMS_DIR = Path(__file__).resolve().parent.parent
ALEMBIC_INI = _EMS_DIR / "alembic.ini"
MIGRATIONS_DIR = _EMS_DIR / "migrations"

WRITE = "ems_write"  # execution option: the transaction will write
_MIGRATION_LOCK_KEY = 0x454D53  # PostgreSQL advisory lock serialising concurrent migrations


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 driver (which skips it before SELECT and DDL) so that
    # SQLAlchemy's begin hook below starts every transaction, reads and DDL included.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads and then writes
    # fails at once with SQLITE_BUSY if another writer committed in between.
    immediate = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``, configured as the store needs it (SQLite: WAL, foreign keys,
    real transactions, usable from any thread; PostgreSQL: pre-ping)."""
    sa_url = make_url(url)
    if sa_url.drivername == "postgresql":
        sa_url = sa_url.set(drivername="postgresql+psycopg")  # the installed driver, not psycopg2
    if sa_url.get_backend_name() != "sqlite":
        return create_engine(sa_url, pool_pre_ping=True)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if sa_url.database in (None, "", ":memory:"):
        options["poolclass"] = StaticPool  # one shared in-memory database, not one per connection
    engine = create_engine(sa_url, **options)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _alembic_config() -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    return config


def upgrade(engine: Engine) -> None:
    """Migrate the database behind ``engine`` to head in one transaction, serialised against
    concurrent migrations (an advisory lock on PostgreSQL, the write lock on SQLite)."""
    config = _alembic_config()
    with engine.execution_options(**{WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema revision (a no-op when it is there).

    Runs the packaged Alembic migrations in one transaction; concurrent callers are serialised.
    """
    engine = create_store_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
