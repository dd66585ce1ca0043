"""A real gunicorn API (two workers, four threads each) on a fresh PostgreSQL Base B, for the
concurrency suite: writers racing for the same keys only meet in a real server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from api_service import migrate
from tests.servers import api_server

TOKEN = "concurrency-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Server:
    base: str  # the API's base URL
    database_url: str  # Base B, to read what the API really stored


@pytest.fixture(scope="package")
def server(make_postgres_database, tmp_path_factory) -> Server:
    """The API under gunicorn over an empty, migrated Base B shared by the suite (each test uses its own keys)."""
    url = make_postgres_database()
    migrate.upgrade(url)
    folder = tmp_path_factory.mktemp("concurrency-api")
    with api_server(url, TOKEN, folder / "gunicorn.log", workers=2) as base:
        yield Server(base, url)
