"""API fixtures, after Flask's tutorial: `app` and `client`, here once per backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from api_service import create_app, migrate
from api_service.models import REJECTIONS, TABLES
from api_service.settings import ApiSettings

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
