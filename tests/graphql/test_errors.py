"""REST errors become GraphQL errors with a code; REST down is a clear error, never a stack trace."""

from __future__ import annotations

import json

import pytest
from graphql import GraphQLError

from graphql_service import create_app
from graphql_service.errors import error_formatter
from graphql_service.rest_client import RestError
from testbed.servers import free_port
from tests.graphql.conftest import make_settings


def first_error(answer: dict) -> dict:
    assert answer.get("errors"), answer
    return answer["errors"][0]


def test_field_errors_are_bad_user_input_with_each_field(gql):
    answer = gql('mutation { createEmployee(input: {firstName: "", lastName: "B", email: "nope"}) { id } }')
    error = first_error(answer)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["status"] == 422
    assert {e["field"] for e in error["extensions"]["fieldErrors"]} == {"firstName", "email"}


def test_unknown_id_is_not_found(gql):
    assert first_error(gql('{ getArticle(id: "999999") { id } }'))["extensions"]["code"] == "NOT_FOUND"
    assert first_error(gql('mutation { deleteArticle(id: "999999") }'))["extensions"]["code"] == "NOT_FOUND"


def test_a_bad_id_is_refused_before_any_rest_call(gql, app):
    before = app.extensions["rest_client"].calls
    assert first_error(gql('{ getArticle(id: "abc") { id } }'))["extensions"]["code"] == "BAD_USER_INPUT"
    assert app.extensions["rest_client"].calls == before


def test_duplicate_email_is_conflict(gql):
    mutation = 'mutation { createEmployee(input: {firstName: "A", lastName: "B", email: "same@example.com"}) { id } }'
    assert "errors" not in gql(mutation)
    assert first_error(gql(mutation))["extensions"]["code"] == "CONFLICT"


def test_writing_a_synced_row_is_conflict(gql, rest):
    rest("/articles/bulk", [{"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", "title": "synced"}])
    row_id = gql("{ getArticlesPage { items { id } } }")["data"]["getArticlesPage"]["items"][0]["id"]
    error = first_error(gql(f'mutation {{ updateArticle(id: "{row_id}", input: {{title: "x"}}) {{ id }} }}'))
    assert error["extensions"]["code"] == "CONFLICT" and "Base A" in error["message"]


def test_mutations_without_a_token_are_unauthenticated(gql):
    error = first_error(gql('mutation { createArticle(input: {title: "x"}) { id } }', token=None))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


def test_mutations_with_a_wrong_token_are_forbidden(gql):
    error = first_error(gql('mutation { createArticle(input: {title: "x"}) { id } }', token="wrong"))
    assert error["extensions"]["code"] == "FORBIDDEN"


def test_a_configured_service_token_is_used_when_the_caller_sends_none(rest_api):
    from tests.graphql.conftest import TOKEN

    client = create_app(make_settings(rest_api, service_token=TOKEN)).test_client()
    answer = client.post("/graphql", json={"query": 'mutation { createArticle(input: {title: "x"}) { title } }'}).json
    assert answer == {"data": {"createArticle": {"title": "x"}}}


def test_invalid_scalars_and_queries_are_refused(gql):
    bad_date = gql('{ getArticlesPage(filter: {updatedAfter: "yesterday"}) { items { id } } }')
    assert first_error(bad_date)["extensions"]["code"] in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED")
    assert first_error(gql("{ nope }", status=200))["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    rest_422 = first_error(gql("{ getArticlesPage(limit: 0) { items { id } } }"))  # the REST API refuses it
    assert rest_422["extensions"]["code"] == "BAD_USER_INPUT"
    assert rest_422["extensions"]["fieldErrors"][0]["field"] == "limit"


def test_a_refused_list_call_speaks_of_the_arguments_not_of_a_query_string(gql):
    """Found from outside: `getArticles(limit: 1001)` answered the REST API's "the query string has
    invalid fields", a query string no GraphQL caller sent; its fields are named as the arguments."""
    error = first_error(gql("{ getArticles(limit: 1001) { id } }"))
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "query string" not in error["message"]
    assert error["message"].startswith("invalid arguments: limit: ") and "1000" in error["message"], error
    error = first_error(gql("{ getArticlesPage(after: -1, filter: {sourceId: 0}) { items { id } } }"))
    assert {e["field"] for e in error["extensions"]["fieldErrors"]} == {"after", "filter.sourceId"}, error
    assert "after: " in error["message"] and "filter.sourceId: " in error["message"], error


def test_a_body_that_is_not_a_graphql_request_is_400(app):
    response = app.test_client().post("/graphql", data="not json", content_type="application/json")
    assert response.status_code == 400 and response.json["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_rest_down_is_service_unavailable_without_internals():
    app = create_app(make_settings(f"http://127.0.0.1:{free_port()}", timeout=2))
    client = app.test_client()
    answer = client.post("/graphql", json={"query": "{ getArticlesPage { items { id } } }"}).json
    error = first_error(answer)
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "Traceback" not in str(answer) and "exception" not in error["extensions"]
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200


GRAPHQL_RESPONSE = "application/graphql-response+json"


def _ask(app, body: dict | str, accept: str | None):
    headers = {"Accept": accept} if accept else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return app.test_client().post("/graphql", data=data, content_type="application/json", headers=headers)


def test_statuses_follow_graphql_over_http_for_each_media_type(app):
    """application/json (and no Accept, and */*): every well-formed request is a 200 with its errors
    in the body. application/graphql-response+json: a request error (no `data`) is a 400."""
    for accept, media_type, request_error_status in [
        (None, "application/json", 200),
        ("*/*", "application/json", 200),
        ("application/json", "application/json", 200),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE, 400),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE, 400),
    ]:
        invalid = _ask(app, {"query": "{ nope }"}, accept)
        assert (invalid.status_code, invalid.mimetype) == (request_error_status, media_type), accept
        assert (
            "data" not in invalid.json
            and invalid.json["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        )
        unparsable = _ask(app, {"query": "{"}, accept)
        assert unparsable.status_code == request_error_status and "data" not in unparsable.json
        # An execution error is no request error: data is there (null where the field failed).
        failed = _ask(app, {"query": 'mutation { deleteArticle(id: "1") }'}, accept)
        assert failed.status_code == 200 and "data" in failed.json and failed.json["errors"], failed.json
        assert _ask(app, {"query": "{ ping }"}, accept).json == {"data": {"ping": True}}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"variables": {}}, 'no "query"'),
        ({"query": 1}, '"query" must be a string'),
        ({"query": "{ ping }", "variables": "{}"}, '"variables" must be an object or null'),
        ({"query": "{ ping }", "operationName": 1}, '"operationName" must be a string or null'),
        ({"query": "{ ping }", "extensions": [1]}, '"extensions" must be an object or null'),
    ],
)
def test_a_request_that_is_not_well_formed_is_400_for_any_media_type(app, body, says):
    for accept, media_type in ((None, "application/json"), (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE)):
        answer = _ask(app, body, accept)
        assert answer.status_code == 400 and says in answer.json["errors"][0]["message"], answer.json
        assert answer.mimetype == media_type  # a client that accepts only the new type can read it


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "query($l: Int) { getArticles(limit: $l) { id } }", "variables": {"l": "x"}}, "BAD_USER_INPUT"),
        ({"query": "query($id: ID!) { getArticle(id: $id) { id } }", "variables": {}}, "BAD_USER_INPUT"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
    ],
    ids=["syntax", "variable-does-not-coerce", "required-variable-missing", "unknown-field"],
)
def test_request_errors_carry_the_conventional_codes(app, body, code):
    """A syntax error was GRAPHQL_VALIDATION_FAILED, and so was an Int or ID variable that does not
    coerce, while a Decimal or Date one was BAD_USER_INPUT."""
    assert _ask(app, body, None).json["errors"][0]["extensions"]["code"] == code


def test_an_aborted_validation_says_why(app):
    """graphql-core stops comparing a field selected 800 times over and says only "Validation aborted."."""
    answer = _ask(app, {"query": "{" + " ping" * 800 + " }"}, None).json
    (error,) = answer["errors"]
    assert error["message"].startswith("Validation aborted: the query is too large to check")
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_a_value_the_schema_cannot_carry_is_the_services_error_and_logged(gql, rest, app, caplog):
    """The REST API holds a BIGINT source_id; the contract's sourceId is a 32-bit Int. The error
    graphql-core raises completing the field was GRAPHQL_VALIDATION_FAILED (the client's), unlogged."""
    rest("/articles/bulk", [{"source_id": 3_000_000_000, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"}])
    with caplog.at_level("ERROR", logger="graphql_service.errors"):
        answer = gql("{ getArticles { title sourceId } }")
    error = first_error(answer)
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and error["path"] == ["getArticles", 0, "sourceId"]
    assert error["message"] == "Int cannot represent non 32-bit signed integer value: 3000000000"
    assert answer["data"] == {"getArticles": [{"title": "t", "sourceId": None}]}
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "getArticles.0.sourceId" in logged.getMessage() and "3000000000" in logged.getMessage()
    metrics = app.test_client().get("/metrics").text
    assert 'graphql_errors_total{code="INTERNAL_SERVER_ERROR"} 1.0' in metrics
    assert 'code="GRAPHQL_VALIDATION_FAILED"' not in metrics


def _errors_counted(client, code: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'graphql_errors_total{{code="{code}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_refused_before_graphql_runs_are_counted_by_code(app):
    """Only execute() counted: a body that is not JSON, a wrong Content-Type, a mutation by GET and
    a wrong method were answered BAD_REQUEST and never reached graphql_errors_total."""
    client = app.test_client()
    refused = [
        client.post("/graphql", data="{", content_type="application/json"),
        client.post("/graphql", data='{"query": "{ ping }"}', content_type="text/plain"),
        client.get("/graphql", query_string={"query": "mutation { deleteArticle(id: 1) }"}),
        client.get("/graphql", query_string={"query": "{ ping }", "variables": "{"}),
        client.put("/graphql", json={"query": "{ ping }"}),
    ]
    assert [r.status_code for r in refused] == [400, 415, 405, 400, 405]
    assert {r.json["errors"][0]["extensions"]["code"] for r in refused} == {"BAD_REQUEST"}
    assert _errors_counted(client, "BAD_REQUEST") == 5


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Token wrong", "Bearerwrong", "Bearer ", "Bearer", ""])
def test_a_caller_whose_authorization_is_no_bearer_token_is_not_given_the_service_token(rest_api, authorization):
    """The service token stands in for a caller that sends no Authorization; one that sends another
    scheme, or no token after Bearer, wrote as the service."""
    from tests.graphql.conftest import TOKEN

    client = create_app(make_settings(rest_api, service_token=TOKEN)).test_client()
    mutation = {"query": 'mutation { createArticle(input: {title: "x"}) { title } }'}
    answer = client.post("/graphql", json=mutation, headers={"Authorization": authorization}).json
    assert first_error(answer)["extensions"]["code"] == "UNAUTHENTICATED", answer
    assert client.post("/graphql", json={"query": "{ getArticles { id } }"}).json == {"data": {"getArticles": []}}


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (413, "the body is larger than the limit of 1048576 bytes (API_MAX_CONTENT_LENGTH)"),
        (408, "the request's body arrived slower than 10 s"),
        (400, "the body is not valid JSON"),
    ],
)
def test_a_rest_refusal_other_than_of_values_keeps_its_own_words(status, detail):
    """Only a 422 of values built from the arguments is told as the arguments (review: a 413's limit
    and a 408's stall were rewritten as "check the arguments' values")."""
    formatted = error_formatter(GraphQLError(detail, original_error=RestError(status, detail)))
    assert formatted["message"] == detail and formatted["extensions"]["status"] == status
