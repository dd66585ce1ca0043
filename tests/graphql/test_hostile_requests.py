"""Requests built to hurt the service (found by fuzzing it from outside): each gets a clear GraphQL
error in JSON, never a hang, an HTML page, an internal error or thousands of REST calls."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from graphql import parse, validate

from graphql_service import SCHEMA, create_app
from graphql_service.limits import depth_limit
from tests.graphql.conftest import TOKEN, make_settings

GRAPHQL_RESPONSE = "application/graphql-response+json"


def post(app, body: bytes | str, content_type: str = "application/json", method: str = "POST"):
    return app.test_client().open("/graphql", method=method, data=body, content_type=content_type)


def only_error(response) -> dict:
    assert response.is_json, response.data[:200]
    (error,) = response.json["errors"]
    return error


def test_fragments_spread_twice_at_every_level_are_walked_once_each():
    # 2^40 paths through the fragments; the depth rule must not follow each of them.
    chain = " ".join(f"fragment F{i} on Article {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    document = parse(f"{{ getArticles(limit: 1) {{ ...F0 }} }} {chain} fragment F40 on Article {{ id }}")
    verdict = []
    walker = threading.Thread(target=lambda: verdict.append(validate(SCHEMA, document, [depth_limit(8)])), daemon=True)
    walker.start()
    walker.join(30)
    assert verdict == [[]], "the depth rule did not finish: it walks every path through the fragments"


def test_aliases_cannot_multiply_rest_calls_or_writes(gql, app):
    client = app.extensions["rest_client"]
    before = client.calls
    reads = " ".join(f'a{i}: getArticle(id: "{i + 1}") {{ id }}' for i in range(300))
    error = gql(f"{{ {reads} }}", status=200)["errors"][0]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "cost" in error["message"]
    writes = " ".join(f'w{i}: createArticle(title: "t{i}") {{ id }}' for i in range(41))
    assert "cost" in gql(f"mutation {{ {writes} }}", status=200)["errors"][0]["message"]
    assert client.calls == before, "refused before any REST call"
    few = " ".join(f'w{i}: createArticle(title: "t{i}") {{ id }}' for i in range(3))
    assert len(gql(f"mutation {{ {few} }}", status=200)["data"]) == 3


@pytest.mark.parametrize("field", ["getArticles(limit: 1) { id }", "getEmployeesPage(limit: 0) { nextAfterId }"])
def test_aliases_of_small_lists_cost_what_their_rest_calls_do(gql, app, field):
    """Found from outside: a list cost its `limit`, so 900 aliases of `limit: 1` cost 900 and ran 900
    REST calls (a row read, one call too, costs 10); a `limit` below 1 cost 1."""
    client = app.extensions["rest_client"]
    before = client.calls
    lists = " ".join(f"a{i}: {field}" for i in range(201))
    error = gql(f"{{ {lists} }}", status=200)["errors"][0]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Actual cost is 2010" in error["message"], error
    assert client.calls == before, "refused before any REST call"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (
            '{"query": "query($l: Int) { getArticles(limit: $l) { id } }", "variables": {"l": Infinity}}',
            None,
            400,
            "not valid JSON",
        ),
        ('{"query": "{ ping }", "variables": {"a": ' + "[" * 3000 + "]" * 3000 + "}}", None, 400, "not valid JSON"),
        (
            '{"query": "mutation($t: String) { createArticle(title: $t) { id } }", "variables": {"t": "a\\udc00"}}',
            None,
            400,
            "not valid JSON",
        ),
        ('{"query": "{ ping }"}', "text/plain", 415, "Content-Type must be application/json"),
        ("[]", None, 400, "batched requests"),
        ("{nope", None, 400, "not valid JSON"),
    ],
    ids=["infinity", "deep-nesting", "lone-surrogate", "text-plain", "empty-batch", "malformed"],
)
def test_a_request_graphql_cannot_read_gets_a_json_error_saying_why(app, body, content_type, status, says):
    response = post(app, body, content_type or "application/json")
    assert response.status_code == status
    error = only_error(response)
    assert says in error["message"] and error["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("size", [1, 2, 100])
def test_a_batch_gets_one_error_for_each_of_its_operations(app, size):
    """Found from outside: Apollo's BatchHttpLink, answered one object for two operations, threw
    "server returned results with length 1, expected length of 2" for both, the reason hidden."""
    response = post(app, json.dumps([{"query": "{ ping }"}] * size))
    assert response.status_code == 400 and len(response.json) == size
    for answer in response.json:
        (error,) = answer["errors"]
        assert "batched requests" in error["message"] and error["extensions"]["code"] == "BAD_REQUEST"


def test_a_batch_too_large_to_answer_in_full_gets_one_error(app):
    response = post(app, "[" + ",".join(["{}"] * 101) + "]")
    assert response.status_code == 400 and "batched requests" in only_error(response)["message"]


def test_a_persisted_query_hash_alone_is_told_it_is_not_supported(app):
    """Found from outside: Apollo's and urql's persisted-query links send a query's hash alone first
    and fall back to sending the query only when told it is not supported (by this message and
    code): answered 'the request has no "query"', every query failed."""
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": "ab" * 32}}
    by_post = post(app, json.dumps({"extensions": persisted}))
    by_get = app.test_client().get("/graphql", query_string={"extensions": json.dumps(persisted)})
    for response in (by_post, by_get):
        error = only_error(response)
        assert response.status_code == 400, response.json
        assert error == {
            "message": "PersistedQueryNotSupported",
            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
        }
    with_the_query = post(app, json.dumps({"query": "{ ping }", "extensions": persisted}))
    assert with_the_query.json == {"data": {"ping": True}}


def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(app):
    response = post(app, '{"query": "{ ping }"}', method="PUT")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    only_error(response)


def test_made_up_methods_and_paths_are_refused_and_grow_no_metric(app):
    client = app.test_client()
    for method in ("ZZMETH1", "ZZMETH2", "PROPFIND", "PATCH"):
        response = client.open("/graphql", method=method)
        assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
        assert only_error(response)["extensions"]["code"] == "BAD_REQUEST"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.open("/nowhere", method="ZZMETH3").status_code == 404
    for path in ("/zzpath1", "/zzpath2/x", "/graphql/zzpath3"):
        assert client.get(path).status_code == 404
    metrics = client.get("/metrics").data.decode()
    assert 'method="PATCH"' in metrics  # a real method is still counted
    assert "ZZMETH" not in metrics and "PROPFIND" not in metrics and "zzpath" not in metrics


@pytest.mark.parametrize("path", ["/graphql//static/explorer.js", "//graphql", "///health", "//metrics"])
def test_a_path_with_an_empty_segment_is_a_json_404_not_a_redirect(app, path):
    """Found from outside: `/graphql//static/explorer.js` with `Host: evil.example` was a 308 HTML
    redirect to http://evil.example/..., and `//graphql` was served (leading slashes stripped)."""
    client = app.test_client()
    for method in ("GET", "POST"):
        response = client.open(
            "/", method=method, headers={"Host": "evil.example"}, environ_overrides={"PATH_INFO": path}
        )
        assert response.status_code == 404 and "Location" not in response.headers
        assert response.mimetype == "application/json" and only_error(response)


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "{ ping }", "query": "mutation { deleteArticle(id: 1) }"}',
        '{"query": "query($id: ID!) { getArticle(id: $id) { id } }", "variables": {"id": "1", "id": "2"}}',
        '{"query": "{ ping }", "extensions": {"a": {"b": 1, "b": 2}}}',
    ],
)
def test_a_name_given_twice_in_the_body_is_a_bad_request_naming_it(app, body):
    """Found from outside: the last "query" ran (a mutation) while a log or firewall reading the
    first saw `{ ping }`."""
    response = post(app, body)
    assert response.status_code == 400
    error = only_error(response)
    assert error["extensions"]["code"] == "BAD_REQUEST" and "given twice" in error["message"]
    assert any(f"'{name}'" in error["message"] for name in ("query", "id", "b"))


def test_a_name_given_twice_in_get_variables_is_a_bad_request(app):
    response = app.test_client().get(
        "/graphql",
        query_string={"query": "{ ping }", "variables": '{"a": 1, "a": 2}'},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400 and "'a'" in only_error(response)["message"]


def test_an_invalid_argument_is_reported_once(gql):
    answer = gql("{ getArticles(limit: 2147483648) { id } }", status=200)
    assert len(answer["errors"]) == 1 and "Int cannot represent" in answer["errors"][0]["message"]
    variable = gql("query($l: Int) { getArticles(limit: $l) { id } }", {"l": 2147483648}, status=200)
    assert len(variable["errors"]) == 1 and "Int cannot represent" in variable["errors"][0]["message"]


@pytest.mark.parametrize(
    "argument",
    ["hiredAt: 20240101", 'hiredAt: "2024-W01-1"', 'salary: "١٢٣"', 'salary: "1_000"', 'salary: "NaN"'],
)
def test_scalars_take_only_what_the_rest_api_reads(gql, argument):
    mutation = (
        f'mutation {{ createEmployee(firstName: "A", lastName: "B", email: "a@example.com", {argument}) {{ id }} }}'
    )
    error = gql(mutation)["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error


def test_a_zero_with_a_huge_exponent_is_stored_as_zero(gql):
    arguments = 'firstName: "A", lastName: "B", email: "z@example.com", salary: "0E-16384"'
    mutation = f"mutation {{ createEmployee({arguments}) {{ salary }} }}"
    assert gql(mutation)["data"]["createEmployee"]["salary"] == "0.00"


def test_the_rest_api_stores_such_a_zero_too(rest_api):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    row = {"first_name": "A", "last_name": "B", "email": "zero@example.com", "salary": "0E-16384"}
    created = requests.post(f"{rest_api}/employees", json=row, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    assert created.json()["salary"] == "0.00"
    bulk = [{"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", **row, "email": "bulk@example.com"}]
    answer = requests.post(f"{rest_api}/employees/bulk", json=bulk, headers=headers, timeout=30).json()
    assert answer["inserted"] == 1, answer


def test_a_get_asking_for_json_runs_the_query_in_the_url_and_never_a_mutation(app):
    client = app.test_client()
    json_only = {"Accept": "application/json"}
    answer = client.get("/graphql?query={ping}", headers=json_only)
    assert answer.status_code == 200 and answer.json == {"data": {"ping": True}}
    with_variables = client.get(
        "/graphql",
        query_string={"query": "query($l: Int) { getArticles(limit: $l) { id } }", "variables": '{"l": 1}'},
        headers=json_only,
    )
    assert with_variables.json == {"data": {"getArticles": []}}, with_variables.json
    mutation = client.get(
        "/graphql", query_string={"query": 'mutation { createArticle(title: "t") { id } }'}, headers=json_only
    )
    assert (
        mutation.status_code == 405
        and mutation.headers["Allow"] == "POST"
        and "POST" in only_error(mutation)["message"]
    )
    assert client.get("/graphql", headers=json_only).status_code == 400  # no query
    bad = client.get("/graphql", query_string={"query": "{ ping }", "variables": "{"}, headers=json_only)
    assert bad.status_code == 400 and "variables" in only_error(bad)["message"]
    page = client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.mimetype == "text/html"  # a browser gets GraphiQL
    # GraphQL over HTTP: no Accept means JSON, so a bare GET is a request with no query.
    assert client.get("/graphql").mimetype == "application/json"


def _create_employee(app, salary: str, as_variable: bool):
    """createEmployee with the salary as written: in the query, or as a JSON variable."""
    email, declared, argument = (
        ("v@example.com", "($s: Decimal)", "$s") if as_variable else ("i@example.com", "", salary)
    )
    fields = f'firstName: "A", lastName: "B", email: "{email}", salary: {argument}'
    query = f"mutation{declared} {{ createEmployee({fields}) {{ salary }} }}"
    variables = f', "variables": {{"s": {salary}}}' if as_variable else ""
    body = f'{{"query": {json.dumps(query)}{variables}}}'
    return app.test_client().post(
        "/graphql", data=body, content_type="application/json", headers={"Authorization": f"Bearer {TOKEN}"}
    )


@pytest.mark.parametrize("as_variable", [False, True], ids=["literal", "variable"])
@pytest.mark.parametrize("salary", ["1.0000000000000001", "1e-400", "123456789012345678901234"])
def test_a_decimal_never_passes_through_a_float(app, salary, as_variable):
    """A float would have stored 1.00 or 0.00 without a word; as written, the REST API refuses it."""
    answer = _create_employee(app, salary, as_variable).json
    assert answer.get("data") in (None, {"createEmployee": None}), answer
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", answer


@pytest.mark.parametrize("as_variable", [False, True], ids=["literal", "variable"])
def test_an_exact_decimal_is_stored_as_written(app, as_variable):
    answer = _create_employee(app, "1234.5", as_variable).json
    assert answer == {"data": {"createEmployee": {"salary": "1234.50"}}}, answer


def test_a_compressed_body_is_refused_not_read_as_json(app):
    response = app.test_client().post(
        "/graphql", data=b'{"query": "{ ping }"}', content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 415 and "Content-Encoding" in only_error(response)["message"]


def _post_json(app, body: dict, accept: str | None = None):
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Accept": accept} if accept else {})}
    return app.test_client().post("/graphql", data=json.dumps(body), content_type="application/json", headers=headers)


def _lists(count: int, argument: str) -> str:
    return " ".join(f"a{i}: getArticles({argument}) {{ id }}" for i in range(count))


def test_a_null_limit_is_priced_as_the_default_it_fetches(app):
    """Ariadne drops a null multiplier: 900 `limit: null` lists cost 900 and ran 900 REST calls."""
    client = app.extensions["rest_client"]
    before = client.calls
    refused = _post_json(app, {"query": f"{{ {_lists(21, 'limit: null')} }}"}).json
    assert "cost" in refused["errors"][0]["message"] and client.calls == before, refused
    through_variable = _post_json(
        app, {"query": f"query($l: Int = 5) {{ {_lists(21, 'limit: $l')} }}", "variables": {"l": None}}
    )
    assert "cost" in through_variable.json["errors"][0]["message"]


def test_a_variables_default_is_priced_as_it_runs(app):
    refused = _post_json(app, {"query": f"query($l: Int = 1000) {{ {_lists(3, 'limit: $l')} }}", "variables": {}}).json
    assert "cost" in refused["errors"][0]["message"], refused


def test_only_the_operation_that_runs_is_priced(app):
    document = f"query A {{ ping }} query B {{ {_lists(3, 'limit: 1000')} }}"
    assert _post_json(app, {"query": document, "operationName": "A"}).json == {"data": {"ping": True}}
    assert "cost" in _post_json(app, {"query": document, "operationName": "B"}).json["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"query": "query($l: Int) { getArticles(limit: $l) { id } }", "variables": {"l": "x"}},
        {"query": "query($s: Boolean!) { ping @skip(if: $s) }"},
        {"query": "query A { ping } query B { ping }"},
        {"query": "query A { ping }", "operationName": "C"},
    ],
    ids=["variable-does-not-coerce", "required-variable-missing", "no-operation-name", "unknown-operation"],
)
def test_a_request_error_has_no_data_entry_and_is_a_400_for_graphql_response_json(app, body):
    for accept, status in ((GRAPHQL_RESPONSE, 400), ("application/json", 200)):
        answer = _post_json(app, body, accept)
        assert answer.status_code == status and "data" not in answer.json and answer.json["errors"], answer.json


def test_whole_numbers_written_with_a_fraction_and_long_ids_are_coerced_as_graphql_does(app):
    limit = _post_json(app, {"query": "query($l: Int) { getArticles(limit: $l) { id } }", "variables": {"l": 5.0}})
    assert limit.json == {"data": {"getArticles": []}}, limit.json
    row = _post_json(app, {"query": "query($id: ID!) { getArticle(id: $id) { id } }", "variables": {"id": 3000000000}})
    assert row.json["data"] == {"getArticle": None}, row.json
    assert [e["extensions"]["code"] for e in row.json["errors"]] == ["NOT_FOUND"]  # it ran: no coercion error


def test_a_body_past_the_limit_is_413(rest_api):
    small = create_app(make_settings(rest_api, max_content_length=2048)).test_client()
    answer = small.post(
        "/graphql", data=json.dumps({"query": "{ ping }", "x": "y" * 5000}), content_type="application/json"
    )
    assert answer.status_code == 413 and answer.is_json


def test_a_client_naming_graphql_response_json_first_gets_it_on_a_tie(app):
    accept = f"{GRAPHQL_RESPONSE}, application/graphql+json, application/json"
    assert _post_json(app, {"query": "{ ping }"}, accept).mimetype == GRAPHQL_RESPONSE
    assert _post_json(app, {"query": "{ ping }"}, "*/*").mimetype == "application/json"


def test_an_empty_query_is_named_so(app):
    answer = _post_json(app, {"query": ""})
    assert answer.status_code == 400 and 'no "query"' in only_error(answer)["message"]
