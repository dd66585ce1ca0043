"""GraphQL fixtures: a real REST API process over PostgreSQL, and the GraphQL app in front of it."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import create_engine

from api_service import migrate
from api_service.models import TABLES
from graphql_service import create_app
from graphql_service.settings import GraphQLSettings
from testbed.servers import api_server

TOKEN = "graphql-suite-token"


@pytest.fixture(scope="session")
def rest_api(postgres_database, tmp_path_factory) -> str:
    migrate.upgrade(postgres_database)
    with api_server(postgres_database, TOKEN, tmp_path_factory.mktemp("rest") / "api.log") as base:
        yield base


@pytest.fixture(autouse=True)
def _empty_base_b(request):
    """Each test that reaches the REST API starts from empty tables."""
    yield
    if "rest_api" not in request.fixturenames:
        return
    engine = create_engine(request.getfixturevalue("postgres_database"))
    with engine.begin() as conn:
        for table in TABLES.values():
            conn.execute(table.delete())
    engine.dispose()


def make_settings(rest_api: str, **overrides) -> GraphQLSettings:
    return GraphQLSettings(rest_api_url=rest_api, **overrides)


@pytest.fixture
def app(rest_api):
    return create_app(make_settings(rest_api))


@pytest.fixture
def gql(app):
    """Run a GraphQL operation; returns the JSON answer. `token` is sent as the caller's bearer token."""
    client = app.test_client()

    def run(query: str, variables: dict | None = None, token: str | None = TOKEN, status: int | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        if status is not None:
            assert response.status_code == status, response.json
        return response.json

    return run


@pytest.fixture
def rest(rest_api):
    """Write straight to the REST API (setting up rows as a pipeline would)."""

    def post(path: str, body) -> dict:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = requests.post(f"{rest_api}{path}", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    return post
