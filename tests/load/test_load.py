"""The REST API and GraphQL under sustained load: a fixed number of requests from a load generator
(hey) at fixed concurrency, against the servers as deployed (gunicorn, 2 workers) over PostgreSQL.
Every request must be answered 2xx, with no connection error. The latency figures are recorded by
`make bench` (bench/load.py), not asserted here."""

from __future__ import annotations

import json

import pytest
import requests

from api_service import migrate
from bench.load import run_hey
from testbed.servers import api_server, graphql_server, require_program

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TOKEN = "load-token"
REQUESTS, CONNECTIONS = 1600, 16  # 100 per connection: load enough, half a minute for the four cases


@pytest.fixture(scope="module")
def servers(make_postgres_database, tmp_path_factory):
    require_program("hey", "Debian package hey; `make test` installs it when root")
    database = make_postgres_database()
    migrate.upgrade(database)
    work = tmp_path_factory.mktemp("load")
    with (
        api_server(database, TOKEN, work / "api.log", workers=2) as rest,
        graphql_server(rest, work / "graphql.log", workers=2) as graphql,
    ):
        records = [
            {"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": f"T{i}", "author": f"A{i % 7}"}
            for i in range(1, 501)
        ]
        answer = requests.post(f"{rest}/articles/bulk", json=records, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.json()["inserted"] == 500
        yield rest, graphql


def cases(rest: str, graphql: str) -> dict[str, tuple[str, str | None]]:
    row_id = requests.get(f"{rest}/articles?limit=1", timeout=10).json()["items"][0]["id"]
    return {
        "REST get": (f"{rest}/articles/{row_id}", None),
        "REST filtered page": (f"{rest}/articles?author=A3&limit=50", None),
        "GraphQL getArticle": (
            f"{graphql}/graphql",
            json.dumps({"query": f'{{ getArticle(id: "{row_id}") {{ title }} }}'}),
        ),
        "GraphQL getArticlesPage": (
            f"{graphql}/graphql",
            json.dumps({"query": '{ getArticlesPage(limit: 50, filter: {author: "A3"}) { items { id title } } }'}),
        ),
    }


@pytest.mark.parametrize("case", ["REST get", "REST filtered page", "GraphQL getArticle", "GraphQL getArticlesPage"])
def test_every_request_under_load_is_answered_without_error(servers, case):
    url, body = cases(*servers)[case]
    result = run_hey(url, REQUESTS, CONNECTIONS, body=body)
    assert result["requests"] == REQUESTS, result
    assert result["non_2xx"] == 0 and result["errors"] == 0, result
    print(f"{case}: {result}")
