"""No N+1, query depth and cost limits, introspection switch, explorer, health and metrics."""

from __future__ import annotations

from graphql_service import create_app
from tests.graphql.conftest import make_settings


def test_a_page_of_100_items_costs_one_rest_call(gql, rest, app):
    rest(
        "/employees/bulk",
        [
            {
                "source_id": i,
                "source_updated_at": "2024-01-01T00:00:00Z",
                "first_name": "F",
                "last_name": f"L{i}",
                "email": f"e{i}@example.com",
                "salary": "10.00",
            }
            for i in range(1, 101)
        ],
    )
    client = app.extensions["rest_client"]
    before = client.calls
    page = gql("{ getEmployees(limit: 100) { items { id firstName salary createdAt } nextAfter } }")
    assert len(page["data"]["getEmployees"]["items"]) == 100
    assert client.calls - before == 1


def test_the_same_row_asked_twice_is_fetched_once(gql, app):
    row_id = gql('mutation { createArticle(input: {title: "x"}) { id } }')["data"]["createArticle"]["id"]
    client = app.extensions["rest_client"]
    before = client.calls
    answer = gql(f'{{ a: getArticle(id: "{row_id}") {{ id }} b: getArticle(id: "{row_id}") {{ title }} }}')
    assert answer["data"] == {"a": {"id": row_id}, "b": {"title": "x"}}
    assert client.calls - before == 1


def test_depth_is_limited(rest_api):
    client = create_app(make_settings(rest_api, max_depth=2)).test_client()
    answer = client.post("/graphql", json={"query": "{ getArticles { items { id } } }"}).json
    assert "limit is 2" in answer["errors"][0]["message"]
    fragment = "query { getArticles { ...page } } fragment page on ArticlePage { items { id } }"
    assert "limit is 2" in client.post("/graphql", json={"query": fragment}).json["errors"][0]["message"]
    shallow = client.post("/graphql", json={"query": '{ getArticle(id: "1") { id } }'}).json
    assert all("levels deep" not in e["message"] for e in shallow.get("errors", []))


def test_cost_is_limited(rest_api):
    client = create_app(make_settings(rest_api, max_cost=100)).test_client()
    expensive = client.post("/graphql", json={"query": "{ getArticles(limit: 1000) { items { id title } } }"}).json
    assert expensive["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "cost" in expensive["errors"][0]["message"].lower()
    cheap = client.post("/graphql", json={"query": "{ getArticles(limit: 10) { items { id } } }"}).json
    assert "errors" not in cheap


def test_introspection_can_be_switched_off(rest_api):
    query = {"query": "{ __schema { queryType { name } } }"}
    assert create_app(make_settings(rest_api)).test_client().post("/graphql", json=query).json["data"]
    closed = create_app(make_settings(rest_api, introspection=False)).test_client().post("/graphql", json=query)
    assert closed.json["errors"]


def test_explorer_health_ready_and_metrics(app, gql):
    client = app.test_client()
    page = client.get("/graphql")
    assert page.status_code == 200 and b"graphiql" in page.data.lower()
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/ready").json == {"status": "ready"}
    gql("{ getArticles { items { id } } }")
    gql('{ getArticle(id: "424242") { id } }')
    metrics = client.get("/metrics").data.decode()
    assert 'graphql_resolver_seconds_count{field="getArticles"}' in metrics
    assert 'graphql_errors_total{code="NOT_FOUND"}' in metrics
    assert 'graphql_rest_calls_total{method="GET",status="404"}' in metrics
    assert 'url_rule="/graphql"' in metrics


def test_root_fields_are_timed_and_nested_fields_are_not(app, gql):
    gql('mutation { createArticle(input: {title: "x"}) { id title } }')
    gql("{ ping getArticles { items { id } } }")
    metrics = app.test_client().get("/metrics").data.decode()
    for field in ("createArticle", "ping", "getArticles"):
        assert f'graphql_resolver_seconds_count{{field="{field}"}} 1.0' in metrics
    assert 'field="title"' not in metrics and 'field="items"' not in metrics


def test_answers_keep_the_fields_in_the_order_of_the_query(app):
    # The spec asks for it (Flask's encoder sorted the keys).
    raw = app.test_client().post("/graphql", json={"query": "{ ping __typename }"}).data
    assert raw == b'{"data":{"ping":true,"__typename":"Query"}}'
