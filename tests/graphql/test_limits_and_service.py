"""No N+1, query depth and cost limits, introspection switch, explorer, health and metrics."""

from __future__ import annotations

import pytest
import requests
from graphql import build_schema, get_introspection_query, parse, validate

from graphql_service import create_app
from graphql_service.entity_schema import ENTITY_NAMES
from graphql_service.limits import depth_limit
from graphql_service.settings import GraphQLSettings
from testbed.servers import free_port
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
    page = gql("{ getEmployeesPage(limit: 100) { items { id firstName salary createdAt } nextAfter } }")
    assert len(page["data"]["getEmployeesPage"]["items"]) == 100
    assert client.calls - before == 1


def test_the_same_row_asked_twice_is_fetched_once(gql, app):
    row_id = gql('mutation { createArticle(input: {title: "x"}) { id } }')["data"]["createArticle"]["id"]
    client = app.extensions["rest_client"]
    before = client.calls
    answer = gql(f'{{ a: getArticle(id: "{row_id}") {{ id }} b: getArticle(id: "{row_id}") {{ title }} }}')
    assert answer["data"] == {"a": {"id": row_id}, "b": {"title": "x"}}
    assert client.calls - before == 1


def articles(gql, count: int) -> list[str]:
    made = " ".join(f'a{i}: createArticle(title: "t{i}") {{ id }}' for i in range(count))
    return [row["id"] for row in gql(f"mutation {{ {made} }}")["data"].values()]


def test_the_same_page_asked_by_several_fields_is_fetched_once(gql, app):
    """Found from outside: 20 aliases of `getArticles(limit: 1)` made 20 identical REST calls, and
    `a: getArticles(limit: 10) { id } b: getArticles(limit: 10) { title }` two."""
    first, second = articles(gql, 2)
    client = app.extensions["rest_client"]
    before = client.calls
    aliases = " ".join(f"a{i}: getArticles(limit: 1) {{ id }}" for i in range(20))
    assert gql(f"{{ {aliases} }}")["data"] == {f"a{i}": [{"id": first}] for i in range(20)}
    assert client.calls - before == 1
    before = client.calls
    # Other fields of the same page; the list and the page of one size (the same REST call); a null filter.
    answer = gql(
        "{ a: getArticles(limit: 10) { id } b: getArticles(limit: 10, filter: {author: null}) { title }"
        " c: getArticlesPage(limit: 10) { items { id } nextAfterId } }"
    )
    assert answer["data"]["b"] == [{"title": "t0"}, {"title": "t1"}] and len(answer["data"]["c"]["items"]) == 2
    assert client.calls - before == 1
    before = client.calls
    after_first = f'c: getArticles(afterId: "{first}") {{ id }}'
    pages = gql(f"{{ a: getArticles(limit: 1) {{ id }} b: getArticles(limit: 2) {{ id }} {after_first} }}")["data"]
    assert pages["c"] == [{"id": second}]
    assert client.calls - before == 3  # a call each


def test_a_row_a_page_has_read_is_not_read_again_in_the_request(gql, app):
    first, _ = articles(gql, 2)
    fields = "id title content author sourceId createdAt updatedAt"
    alone = gql(f'{{ getArticle(id: "{first}") {{ {fields} }} }}')["data"]["getArticle"]
    client = app.extensions["rest_client"]
    before = client.calls
    answer = gql(f'{{ l: getArticles(limit: 2) {{ id }} r: getArticle(id: "{first}") {{ {fields} }} }}')
    assert answer["data"]["r"] == alone
    assert client.calls - before == 1
    before = client.calls
    gql('{ l: getArticles(limit: 2) { id } r: getArticle(id: "424242") { id } }')  # not on the page: read
    assert client.calls - before == 2


def test_the_rest_api_serves_a_pages_rows_as_it_serves_each_row(rest, rest_api):
    """What lets a page's rows answer row reads (loaders.py): the same fields, the same encoding."""
    rest("/articles", {"title": "t", "content": "c", "author": "a"})
    rest(
        "/employees",
        {"first_name": "F", "last_name": "L", "email": "f@example.com", "salary": "10.50", "hired_at": "2024-01-31"},
    )
    for names in ENTITY_NAMES:
        (item,) = requests.get(f"{rest_api}/{names.rest}", timeout=10).json()["items"]
        assert requests.get(f"{rest_api}/{names.rest}/{item['id']}", timeout=10).json() == item, names.rest


def test_depth_is_limited(rest_api):
    client = create_app(make_settings(rest_api, max_depth=2)).test_client()
    answer = client.post("/graphql", json={"query": "{ getArticlesPage { items { id } } }"}).json
    assert "limit is 2" in answer["errors"][0]["message"]
    fragment = "query { getArticlesPage { ...page } } fragment page on ArticlePage { items { id } }"
    assert "limit is 2" in client.post("/graphql", json={"query": fragment}).json["errors"][0]["message"]
    shallow = client.post("/graphql", json={"query": '{ getArticle(id: "1") { id } }'}).json
    assert all("levels deep" not in e["message"] for e in shallow.get("errors", []))


def test_cost_is_limited(rest_api):
    client = create_app(make_settings(rest_api, max_cost=100)).test_client()
    expensive = client.post("/graphql", json={"query": "{ getArticlesPage(limit: 1000) { items { id title } } }"}).json
    assert expensive["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "cost" in expensive["errors"][0]["message"].lower()
    cheap = client.post("/graphql", json={"query": "{ getArticlesPage(limit: 10) { items { id } } }"}).json
    assert "errors" not in cheap


def test_introspection_can_be_switched_off(rest_api):
    query = {"query": "{ __schema { queryType { name } } }"}
    assert create_app(make_settings(rest_api)).test_client().post("/graphql", json=query).json["data"]
    closed = create_app(make_settings(rest_api, introspection=False)).test_client().post("/graphql", json=query)
    assert closed.json["errors"]


SUGGESTED = [
    "{ getEmploye(id: 1) { id } }",
    "{ getEmployee(id: 1) { salar } }",
    '{ getEmployees(filter: {departmen: "x"}) { id } }',
    "mutation { createEmploye { id } }",
    "query { getEmployee(id: 1) { ... on Employe { id } } }",
    "{ getEmployee(id: 1, idd: 2) { id } }",
]


@pytest.mark.parametrize("query", SUGGESTED)
def test_with_introspection_off_errors_suggest_no_names(rest_api, query):
    """Found from outside: "Did you mean 'salary'?" told the names introspection hides."""
    opened = create_app(make_settings(rest_api)).test_client().post("/graphql", json={"query": query}).json
    assert "Did you mean" in opened["errors"][0]["message"]  # with introspection on, the hint helps
    closed = create_app(make_settings(rest_api, introspection=False)).test_client()
    answer = closed.post("/graphql", json={"query": query}).json
    assert answer["errors"]
    for error in answer["errors"]:
        assert "Did you mean" not in error["message"] and error["message"].strip()
    assert not any(name in str(answer) for name in ("salary", "department", "getEmployees", "createEmployee"))


def test_with_introspection_off_a_variable_suggests_no_field(rest_api):
    closed = create_app(make_settings(rest_api, introspection=False)).test_client()
    query = "query($f: EmployeeFilter) { getEmployees(filter: $f) { id } }"
    answer = closed.post("/graphql", json={"query": query, "variables": {"f": {"departmen": "x"}}}).json
    assert answer["errors"] and "Did you mean" not in str(answer) and "'department'" not in str(answer)


def test_explorer_health_ready_and_metrics(app, gql):
    client = app.test_client()
    page = client.get("/graphql", headers={"Accept": "text/html,*/*;q=0.8"})  # a browser's
    assert page.status_code == 200 and b"graphiql" in page.data.lower()
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/ready").json == {"status": "ready"}
    gql("{ getArticlesPage { items { id } } }")
    gql('{ getArticle(id: "424242") { id } }')
    metrics = client.get("/metrics").data.decode()
    assert 'graphql_resolver_seconds_count{field="getArticlesPage"}' in metrics
    assert 'graphql_errors_total{code="NOT_FOUND"}' in metrics
    assert 'graphql_rest_calls_total{method="GET",status="404"}' in metrics
    assert 'url_rule="/graphql"' in metrics
    assert 'url_rule="/ready"' not in metrics and 'url_rule="/health"' not in metrics  # probes are no traffic


def test_answers_are_never_sniffed_and_an_empty_options_answer_has_no_type(app):
    client = app.test_client()
    options = client.options("/graphql")
    assert options.status_code == 200 and options.data == b"" and "Content-Type" not in options.headers
    answers = (options, client.get("/graphql"), client.post("/graphql", json={"query": "{ __typename }"}))
    for response in (*answers, client.get("/metrics"), client.get("/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_root_fields_are_timed_and_nested_fields_are_not(app, gql):
    gql('mutation { createArticle(input: {title: "x"}) { id title } }')
    gql("{ ping getArticlesPage { items { id } } }")
    metrics = app.test_client().get("/metrics").data.decode()
    for field in ("createArticle", "ping", "getArticlesPage"):
        assert f'graphql_resolver_seconds_count{{field="{field}"}} 1.0' in metrics
    assert 'field="title"' not in metrics and 'field="items"' not in metrics


def test_answers_keep_the_fields_in_the_order_of_the_query(app):
    # The spec asks for it (Flask's encoder sorted the keys).
    raw = app.test_client().post("/graphql", json={"query": "{ ping __typename }"}).data
    assert raw == b'{"data":{"ping":true,"__typename":"Query"}}'


def test_the_depth_limit_skips_introspection_and_still_counts_every_other_field():
    schema = build_schema("type Query { node: Node } type Node { id: ID child: Node }")
    rule = depth_limit(8)

    def nested(levels: int) -> str:  # `levels` fields deep: node, then child, child, ..., id
        return "{ node { " + "child { " * (levels - 2) + "id" + " }" * (levels - 1) + " }"

    def refusals(query: str) -> list[str]:
        return [e.message for e in validate(schema, parse(query), [rule])]

    assert refusals(nested(8)) == []
    assert refusals(nested(9)) == ["the query is 9 levels deep; the limit is 8"]
    assert refusals(get_introspection_query(descriptions=True, input_value_deprecation=True)) == []
    with_introspection = nested(9)[:-1] + " __schema { types { fields { type { ofType { ofType { name } } } } } } }"
    assert refusals(with_introspection) == ["the query is 9 levels deep; the limit is 8"]
    fragment = '{ ...q } fragment q on Query { __type(name: "Node") { fields { type { ofType { name } } } } }'
    assert refusals(fragment) == []


def test_introspection_passes_the_default_depth_limit_and_deep_queries_are_still_refused():
    nowhere = f"http://127.0.0.1:{free_port()}"
    client = create_app(GraphQLSettings(rest_api_url=nowhere, timeout=1)).test_client()
    answer = client.post("/graphql", json={"query": get_introspection_query()})
    assert answer.status_code == 200 and answer.json["data"]["__schema"]["queryType"]["name"] == "Query"
    assert "levels deep" not in str(answer.json)
    # The same app with a lower limit: introspection below a field does not count, the fields do.
    shallow = create_app(GraphQLSettings(rest_api_url=nowhere, max_depth=2)).test_client()
    mixed = "{ getArticlesPage { items { id } } __schema { types { fields { type { name } } } } }"
    refused = shallow.post("/graphql", json={"query": mixed})
    assert refused.status_code == 200
    assert [e["message"] for e in refused.json["errors"]] == ["the query is 3 levels deep; the limit is 2"]
    assert shallow.post("/graphql", json={"query": get_introspection_query()}).status_code == 200


def test_deep_introspection_is_still_refused_by_graphql_cores_own_rule():
    client = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}")).test_client()
    cycle = "{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }"
    refused = client.post("/graphql", json={"query": cycle})
    assert refused.status_code == 200 and "Maximum introspection depth exceeded" in str(refused.json)


def test_with_introspection_off_graphiqls_query_and_every_introspection_field_are_refused():
    client = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}", introspection=False))
    client = client.test_client()
    schema, one_type = "{ __schema { queryType { name } } }", '{ __type(name: "Query") { name } }'
    for query in (get_introspection_query(), schema, one_type):
        for _ in range(2):  # the second answer comes from the query cache
            refused = client.post("/graphql", json={"query": query})
            assert refused.status_code == 200
            assert "introspection is disabled" in refused.json["errors"][0]["message"]
            assert refused.json["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert client.post("/graphql", json={"query": "{ ping __typename }"}).json["data"]["__typename"] == "Query"


SCHEMA_FRAGMENT = (
    "fragment F on __Schema { types { name description kind fields { name description args { name description"
    " type { name kind } } type { name kind } } inputFields { name description } enumValues { name description } } }"
)


def test_introspection_cannot_be_multiplied_by_aliases():
    # Found from outside: 1,350 aliases of __schema, a 30 KB request, answered 28 MB in 12 s. The
    # cost rule does not see introspection, and the depth rule skips it.
    client = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}")).test_client()

    def refusal(query: str) -> str:
        answer = client.post("/graphql", json={"query": query})
        assert answer.status_code == 200 and "data" not in answer.json and len(answer.data) < 2000
        (error,) = answer.json["errors"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        return error["message"]

    aliased = "{ " + " ".join(f"s{i}: __schema {{ ...F }}" for i in range(1350)) + " } " + SCHEMA_FRAGMENT
    assert refusal(aliased) == "the operation selects __schema 1350 times; an operation may select it once"
    via_fragment = "{ a: __schema { ...F } ...Q } fragment Q on Query { b: __schema { ...F } } " + SCHEMA_FRAGMENT
    assert "selects __schema 2 times" in refusal(via_fragment)
    types = "{ " + " ".join(f't{i}: __type(name: "Article") {{ name }}' for i in range(11)) + " }"
    assert "selects __type 11 times" in refusal(types)
    # Below __schema too: each alias of `fields` would repeat every type's fields.
    inner = "{ __schema { types { " + " ".join(f"f{i}: fields {{ name }}" for i in range(500)) + " } } }"
    assert "selects fields 500 times under one parent" in refusal(inner)
    spread = "{ __schema { types { ...A ...B } } } fragment A on __Type { x: fields { name } }"
    assert "selects fields 2 times" in refusal(spread + " fragment B on __Type { y: fields { name } }")
    # What clients send still runs: one schema (GraphiQL's query), a few types by name, fragments that merge.
    for query in (
        get_introspection_query(descriptions=True, input_value_deprecation=True),
        "{ __schema { ...F } } " + SCHEMA_FRAGMENT,
        '{ a: __type(name: "Article") { name } e: __type(name: "Employee") { name fields { name } } }',
        spread.replace("x: ", "") + " fragment B on __Type { fields { description } __typename }",
    ):
        answer = client.post("/graphql", json={"query": query})
        assert "errors" not in answer.json, answer.json


SKIPPED = (
    "{ a: getArticles(limit: 1000) { id } b: getArticles(limit: 1000) @skip(if: true) { id }"
    " c: getArticles(limit: 1000) @include(if: false) { id } }"
)
BY_VARIABLE = (
    "query($s: Boolean = false) { a: getArticles(limit: 1000) { id }"
    " b: getArticles(limit: 1000) @include(if: $s) { id } ...more @include(if: $s)"
    " ... @skip(if: true) { d: getArticles(limit: 1000) { id } } }"
    " fragment more on Query { c: getArticles(limit: 1000) { id } }"
)


def test_fields_skip_and_include_leave_out_cost_nothing(app, gql):
    """They make no REST call but were priced: 3 lists of 1000 (2 skipped) were refused at 3000 > 2000."""
    client = app.extensions["rest_client"]
    before = client.calls
    assert gql(SKIPPED) == {"data": {"a": []}}
    assert client.calls - before == 1
    # By a variable, its default included, on a field, a fragment spread and an inline fragment.
    assert gql(BY_VARIABLE) == {"data": {"a": []}}
    assert gql(BY_VARIABLE, {"s": False}) == {"data": {"a": []}}
    # The same text with the fields included is priced again, not answered from the cached verdict.
    refused = gql(BY_VARIABLE, {"s": True})
    assert "data" not in refused and "Actual cost is 3000" in refused["errors"][0]["message"]
    included = SKIPPED.replace("true", "false").replace("@include(if: false)", "@include(if: true)")
    assert "Actual cost is 3000" in gql(included)["errors"][0]["message"]
