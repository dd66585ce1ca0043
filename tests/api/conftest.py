"""API fixtures, after Flask's tutorial: `app` and `client`, here once per backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import psycopg
import pytest
from sqlalchemy import create_engine, text

from api_service import create_app, migrate
from api_service.models import REJECTIONS, TABLES
from api_service.settings import ApiSettings
from testbed.servers import private_postgresql

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> str:
    """Base B, migrated to head, on each backend in turn."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('base_b')}/base_b.sqlite"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    return url


def make_settings(database_url: str, **overrides) -> ApiSettings:
    return ApiSettings(database_url=database_url, tokens=(TOKEN, "second-token"), **overrides)


@pytest.fixture
def settings(database_url) -> ApiSettings:
    return make_settings(database_url)


@pytest.fixture
def app(settings) -> Iterator:
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    engine = app.extensions["base_b_engine"]
    with engine.begin() as conn:  # every test starts from empty tables
        for table in (*TABLES.values(), REJECTIONS):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(database_url):
    """A direct connection to Base B, to see what the API really stored."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def raw_rows(db, table: str) -> list[dict]:
    """All rows of a table, tombstones included, ordered by source_id then id."""
    db.rollback()
    return [dict(r._mapping) for r in db.execute(text(f"SELECT * FROM {table} ORDER BY source_id, id"))]


class PasswordBaseB(NamedTuple):
    """Base B on a server that asks for passwords: its role's own URL, and one with another password."""

    url: str
    wrong_password_url: str
    wrong_password: str


@pytest.fixture(scope="session")
def password_base_b() -> Iterator[PasswordBaseB]:
    """A migrated Base B whose role `base_b` has a password, as compose makes it; what a changed
    POSTGRES_PASSWORD does to an existing volume is the URL with another password."""
    with private_postgresql("superuser-password") as port:
        admin = f"host=127.0.0.1 port={port} user=postgres password=superuser-password dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE ROLE base_b LOGIN PASSWORD 'first-password'")
            conn.execute("CREATE DATABASE base_b OWNER base_b")
        url = f"postgresql+psycopg://base_b:first-password@127.0.0.1:{port}/base_b"
        migrate.upgrade(url)
        wrong = "changed-in-env-0451"
        yield PasswordBaseB(url, url.replace("first-password", wrong), wrong)
