"""Clients written for the seed system work unchanged: its list queries and its flat-argument mutations.

The paginated `get<Xs>Page` fields and the `input` argument serve the same calls beside them
(tests/graphql/test_queries.py).
"""

from __future__ import annotations

import pytest
from graphql import GraphQLList, GraphQLNonNull, get_named_type

from graphql_service import SCHEMA, create_app
from graphql_service.limits import COST_MAP
from tests.graphql.conftest import make_settings


def articles(count: int) -> list[dict]:
    return [
        {"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": f"t{i}", "author": "A"}
        for i in range(1, count + 1)
    ]


def code(answer: dict) -> str:
    assert answer.get("errors"), answer
    return answer["errors"][0]["extensions"]["code"]


def test_the_seed_systems_article_operations_as_written(gql):
    created = gql('mutation { createArticle(title: "t", content: "c", author: "a") { id title } }', status=200)
    assert not created.get("errors"), created
    row = created["data"]["createArticle"]
    assert row["title"] == "t"

    listed = gql("{ getArticles { id title content author } }")
    assert listed == {"data": {"getArticles": [{"id": row["id"], "title": "t", "content": "c", "author": "a"}]}}
    assert gql(f"{{ getArticle(id: {row['id']}) {{ content }} }}")["data"] == {"getArticle": {"content": "c"}}

    # The flat update changes the fields given and keeps the others.
    updated = gql(f'mutation {{ updateArticle(id: {row["id"]}, title: "u") {{ title content author }} }}')
    assert updated["data"]["updateArticle"] == {"title": "u", "content": "c", "author": "a"}
    cleared = gql(f"mutation {{ updateArticle(id: {row['id']}, author: null) {{ title content author }} }}")
    assert cleared["data"]["updateArticle"] == {"title": "u", "content": "c", "author": None}

    assert gql(f"mutation {{ deleteArticle(id: {row['id']}) }}")["data"] == {"deleteArticle": True}
    assert gql("{ getArticles { id } }")["data"] == {"getArticles": []}


def test_the_seed_systems_employee_operations_as_written(gql):
    created = gql(
        'mutation { createEmployee(firstName: "Grace", lastName: "Hopper", email: "g@example.com",'
        ' salary: "1000.50", hiredAt: "1943-12-01") { id firstName salary hiredAt } }'
    )
    assert not created.get("errors"), created
    row = created["data"]["createEmployee"]
    assert row["salary"] == "1000.50" and row["hiredAt"] == "1943-12-01"

    listed = gql("{ getEmployees { id firstName lastName email } }")["data"]["getEmployees"]
    assert listed == [{"id": row["id"], "firstName": "Grace", "lastName": "Hopper", "email": "g@example.com"}]

    updated = gql(
        f'mutation {{ updateEmployee(id: "{row["id"]}", position: "Admiral") {{ position email salary hiredAt }} }}'
    )["data"]["updateEmployee"]
    assert updated == {"position": "Admiral", "email": "g@example.com", "salary": "1000.50", "hiredAt": "1943-12-01"}
    assert gql(f'{{ getEmployee(id: "{row["id"]}") {{ position }} }}')["data"]["getEmployee"] == {"position": "Admiral"}
    assert gql(f'mutation {{ deleteEmployee(id: "{row["id"]}") }}')["data"] == {"deleteEmployee": True}


def test_the_seed_list_has_a_bounded_default_size(gql, rest):
    rest("/articles/bulk", articles(120))
    assert len(gql("{ getArticles { id } }")["data"]["getArticles"]) == 100
    everything = gql("{ getArticles(limit: 1000) { id } }")["data"]["getArticles"]
    assert len(everything) == 120
    after = gql(f"{{ getArticles(after: {everything[99]['id']}) {{ id }} }}")["data"]["getArticles"]
    assert after == everything[100:]
    assert gql('{ getArticles(filter: {author: "nobody"}) { id } }')["data"]["getArticles"] == []
    # Beyond the REST API's page size: refused as bad input, not cut silently.
    assert code(gql("{ getArticles(limit: 1001) { id } }")) == "BAD_USER_INPUT"


def test_input_and_flat_arguments_together_are_refused_and_nothing_is_written(gql, app):
    before = app.extensions["rest_client"].calls
    both = gql('mutation { createArticle(input: {title: "x"}, title: "y") { id } }')
    assert code(both) == "BAD_USER_INPUT" and "not both" in both["errors"][0]["message"]
    assert (
        code(
            gql(
                'mutation { updateEmployee(id: "1", input: {firstName: "a", lastName: "b", email: "c@d.co"},'
                ' position: "p") { id } }'
            )
        )
        == "BAD_USER_INPUT"
    )
    assert code(gql('mutation { updateArticle(id: "1") { id } }')) == "BAD_USER_INPUT"
    assert app.extensions["rest_client"].calls == before
    assert gql("{ getArticles { id } }")["data"] == {"getArticles": []}


def test_a_flat_create_missing_a_required_field_names_it(gql):
    error = gql('mutation { createArticle(content: "no title") { id } }')["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [e["field"] for e in error["extensions"]["fieldErrors"]] == ["title"]


def test_the_seed_lists_default_size_counts_in_the_query_cost(rest_api):
    # A list costs its `limit`: a client that names none still pays for the default's 100 rows.
    client = create_app(make_settings(rest_api, max_cost=99)).test_client()
    answer = client.post("/graphql", json={"query": "{ getArticles { id title content author } }"}).json
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "cost" in answer["errors"][0]["message"].lower()
    cheap = client.post("/graphql", json={"query": "{ getArticles(limit: 10) { id title content author } }"}).json
    assert "errors" not in cheap


def _returns_many(field) -> bool:
    named = get_named_type(field.type)
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    return isinstance(inner, GraphQLList) or named.name.endswith("Page")


@pytest.mark.parametrize("name", sorted(n for n, f in SCHEMA.query_type.fields.items() if _returns_many(f)))
def test_every_field_returning_many_rows_is_priced_by_its_limit(name):
    # A field missing from COST_MAP costs 1 whatever its size: the cost limit would not see it.
    assert COST_MAP["Query"].get(name) == {"complexity": 1, "multipliers": ["limit"]}, name
    assert "limit" in SCHEMA.query_type.fields[name].args


def test_a_flat_update_never_overwrites_a_write_made_between_its_read_and_its_write(gql, rest_api, monkeypatch):
    """The flat update reads the row and puts it back whole: another client's write in between is a
    CONFLICT (If-Match with the ETag read), not silently lost."""
    import requests  # noqa: PLC0415

    from graphql_service.rest_client import RestClient  # noqa: PLC0415
    from tests.graphql.conftest import TOKEN  # noqa: PLC0415

    row = gql('mutation { createArticle(title: "t", content: "c", author: "a") { id } }')["data"]["createArticle"]
    url = f"{rest_api}/articles/{row['id']}"
    read = RestClient.request_versioned

    def read_then_someone_writes(self, method, path, **kwargs):
        answer = read(self, method, path, **kwargs)
        if method == "GET":
            auth = {"Authorization": f"Bearer {TOKEN}"}
            other = {"title": "t", "content": "someone else's", "author": "a"}
            assert requests.put(url, json=other, headers=auth, timeout=10).status_code == 200
        return answer

    monkeypatch.setattr(RestClient, "request_versioned", read_then_someone_writes)
    answer = gql(f'mutation {{ updateArticle(id: {row["id"]}, title: "u") {{ title content }} }}')
    assert code(answer) == "CONFLICT"
    # Not the REST API's "its ETag is no longer one of ...": a GraphQL client never saw an ETag.
    message = answer["errors"][0]["message"]
    assert "ETag" not in message and "changed after this update read it" in message
    assert "send the update again" in message
    assert requests.get(url, timeout=10).json()["content"] == "someone else's"
