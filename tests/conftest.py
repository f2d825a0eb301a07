"""Shared fixtures.

Databases: ``db_url`` is an empty database, parametrized over SQLite (a file under ``tmp_path``)
and PostgreSQL (a schema reset inside one database created for the test session and dropped at
its end); ``store`` is a migrated ``SqlStore`` on it. PostgreSQL parameters are marked
``postgres``; when the server is unreachable they skip locally and fail in CI (``CI=true``).
Set ``EMS_TEST_PG_URL`` to use another server (default: the local one as the OS user).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from ems.store import SqlStore

PG_ADMIN_URL = os.environ.get("EMS_TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/postgres")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A PostgreSQL database created for this test session and dropped when it ends."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc.orig}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    name = f"ems_test_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """The session's PostgreSQL database with an empty ``public`` schema."""
    engine = create_engine(pg_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return pg_database_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file (not yet created) under the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'ems.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """A ``SqlStore`` on a freshly migrated database, on each backend."""
    sql_store = SqlStore.open(db_url)
    try:
        yield sql_store
    finally:
        sql_store.close()
