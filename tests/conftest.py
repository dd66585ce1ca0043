"""Fixtures shared by every suite: throwaway databases on the real servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.servers import (
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    PG_HOST,
    PG_PORT,
    PG_USER,
    recreate_postgres_database,
    require,
)


@pytest.fixture(scope="session")
def make_postgres_database() -> Iterator[Callable[[], str]]:
    """Creates fresh PostgreSQL databases on demand (SQLAlchemy URLs); drops them at the end."""
    require("PostgreSQL", PG_HOST, PG_PORT)
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    made: list[str] = []

    def make() -> str:
        name = f"baseab_test_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return recreate_postgres_database(name)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database(make_postgres_database) -> str:
    """One fresh PostgreSQL database for this test session; its SQLAlchemy URL."""
    return make_postgres_database()


@pytest.fixture(scope="session")
def make_mariadb_database() -> Iterator[Callable[[], str]]:
    """Creates fresh MariaDB databases on demand (SQLAlchemy URLs); drops them at the end."""
    require("MariaDB", MARIADB_HOST, MARIADB_PORT)
    import MySQLdb

    made: list[str] = []

    def admin(statement: str) -> None:
        conn = MySQLdb.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER)
        try:
            conn.cursor().execute(statement)
        finally:
            conn.close()

    def make() -> str:
        name = f"base_a_test_{uuid.uuid4().hex[:10]}"
        admin(f"CREATE DATABASE `{name}`")
        made.append(name)
        return f"mysql+mysqldb://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}"

    yield make
    for name in made:
        admin(f"DROP DATABASE IF EXISTS `{name}`")
