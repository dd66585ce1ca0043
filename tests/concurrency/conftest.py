"""A real gunicorn API (two workers, four threads each) on a fresh PostgreSQL Base B, for the
concurrency suite: writers racing for the same keys only meet in a real server."""

from __future__ import annotations

import pytest
import requests

from api_service import migrate
from tests.servers import api_server

TOKEN = "concurrency-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(make_postgres_database, tmp_path_factory):
    """The base URL of the API over an empty, migrated Base B of this module's own."""
    url = make_postgres_database()
    migrate.upgrade(url)
    folder = tmp_path_factory.mktemp("concurrency-api")
    with api_server(url, TOKEN, folder / "gunicorn.log", workers=2) as base:
        yield base


@pytest.fixture
def session():
    with requests.Session() as http:
        http.headers.update(AUTH)
        yield http
