"""SQL injection attempts in every filter and every id are harmless, over REST and GraphQL.

The REST parameters come from /openapi.json (every query parameter of every read, every path
parameter of every path), the GraphQL ones from the schema the service serves (every filter field
and `id` argument). Harmless means: never a 5xx (nor a GraphQL INTERNAL_SERVER_ERROR or
SERVICE_UNAVAILABLE, which is how a REST 5xx shows through GraphQL), a 4xx problem document or a
normal answer whose rows really match the filter, no database error text in any body, and Base B
exactly as it was (same rows, canaries included).
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
import requests

from tests.security.conftest import (
    AUTH,
    PROBLEM_JSON,
    TOKEN,
    entity_of,
    fill_path,
    gql,
    leaks,
    mutation_document,
    named,
    operations,
    request_body,
    row_counts,
    snapshot,
)

# Kept short: each payload is sent to every parameter, so the list is the test's size. `{table}`
# becomes the entity's table. The long ones stay under gunicorn's 4094-byte request line, so that
# they reach the application (see test_an_overlong_request_line_is_refused_before_the_application).
PAYLOADS = {
    "or-true": "' OR '1'='1",
    "stacked-drop": "1; DROP TABLE {table}; --",
    "union-select": "1 UNION SELECT NULL, version(), current_user --",
    "comment-quote": "x'--",
    "bobby": "Robert'); DROP TABLE {table};--",
    "percent-27": "%27",  # sent encoded, so the server must not decode it twice
    "nul": "1\x00' OR 1=1",
    "long-text": "A" * 3000,
    "long-digits": "9" * 3000,
    "unicode": "ünïcødé ✓ 🐍 \u202e'",
    "arabic-digits": "١٢٣٤٥٦٧٨٩",
    "superscript-digit": "²",
    "negative": "-1",
    "exponent": "1e3",
}
GRAPHQL_BAD_CODES = {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}


def _payload(template: str, table: str) -> str:
    return template.replace("{table}", table)


def _check_rest(response, label: str, column: str | None, value: str) -> list[str]:
    """What is wrong with one REST answer (nothing, if harmless)."""
    problems = []
    status = response.status_code
    found = leaks(response.text)
    if found:
        problems.append(f"{label}: {status} leaks {found}: {response.text[:200]}")
    if status >= 500:
        return [*problems, f"{label}: {status}: {response.text[:200]}"]
    kind = response.headers.get("Content-Type", "").split(";")[0]
    if status >= 400:
        if kind != PROBLEM_JSON or response.json().get("status") != status:
            problems.append(f"{label}: {status} is not a problem document: {kind} {response.text[:200]}")
        return problems
    body = response.json()
    # An accepted filter must filter: every row returned holds exactly the value sent.
    for item in body.get("items", []) if isinstance(body, dict) else []:
        if column is not None and column in item and str(item[column]) != value:
            problems.append(f"{label}: returned a row whose {column} is {item[column]!r}")
    return problems


def _list_parameters(openapi) -> list[tuple[str, str]]:
    """(path, parameter name) for every query parameter of every documented read."""
    return [
        (op.path, parameter["name"])
        for op in operations(openapi, ("get",))
        for parameter in op.spec.get("parameters", [])
        if parameter["in"] == "query"
    ]


def test_the_document_lists_every_filter_and_id(openapi):
    # Guards the tests below against a document that lost its parameters.
    names = set(_list_parameters(openapi))
    assert {("/articles", "author"), ("/articles", "source_id"), ("/employees", "email")} <= names
    assert {("/employees", "last_name"), ("/employees", "department"), ("/employees", "position")} <= names
    assert any("{row_id}" in path for path in openapi["paths"])


@pytest.mark.parametrize("template", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_rest_filters_are_harmless(base_b, openapi, canaries, template):
    before = snapshot(base_b.engine)
    failures = []
    session = requests.Session()
    for path, name in _list_parameters(openapi):
        value = _payload(template, path.strip("/").split("/")[0])
        response = session.get(f"{base_b.api}{path}", params={name: value}, timeout=30)
        failures += _check_rest(response, f"GET {path}?{name}=", name, value)
    assert not failures, "\n".join(failures)
    assert snapshot(base_b.engine) == before


@pytest.mark.parametrize("template", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_rest_ids_are_harmless(base_b, openapi, canaries, template):
    # With the real token, so that writes get past authentication and the id reaches the handler.
    before = snapshot(base_b.engine)
    failures = []
    session = requests.Session()
    for op in operations(openapi, ("get", "put", "patch", "delete")):
        if not op.path_parameters:
            continue
        value = _payload(template, op.entity)
        path = fill_path(op, {}, quote(value, safe=""))
        body = request_body(openapi, op)
        response = session.request(op.method, f"{base_b.api}{path}", json=body, headers=AUTH, timeout=30)
        failures += _check_rest(response, f"{op} with {op.path_parameters} =", None, value)
        if response.status_code < 300:
            failures.append(f"{op}: an injected id was accepted ({response.status_code})")
    assert not failures, "\n".join(failures)
    assert snapshot(base_b.engine) == before


def test_a_filter_matches_an_injection_string_only_as_a_literal_value(base_b, canaries):
    # The canary whose column holds "' OR '1'='1" is found by exactly that value, and only it.
    for entity, (column, value, row_id) in canaries.literal.items():
        response = requests.get(f"{base_b.api}/{entity}", params={column: value}, timeout=10)
        assert response.status_code == 200, response.text
        assert [item["id"] for item in response.json()["items"]] == [row_id]


def test_canaries_survive_every_injection(base_b, openapi, canaries):
    # After every payload in every filter, the tables exist and each canary is still there.
    before = row_counts(snapshot(base_b.engine))
    session = requests.Session()
    for template in PAYLOADS.values():
        for path, name in _list_parameters(openapi):
            session.get(f"{base_b.api}{path}", params={name: _payload(template, path.split("/")[1])}, timeout=30)
    assert row_counts(snapshot(base_b.engine)) == before
    for entity, row_id in canaries.client_owned.items():
        assert session.get(f"{base_b.api}/{entity}/{row_id}", timeout=10).status_code == 200
    for entity, row_id in canaries.synced.items():
        assert session.get(f"{base_b.api}/{entity}/{row_id}", timeout=10).json()["source_id"] is not None


def test_an_overlong_request_line_is_refused_before_the_application(base_b):
    # gunicorn refuses request lines over 4094 bytes itself (414, its own HTML page): still a 4xx,
    # nothing reaches the database, and nothing of it is a database error.
    response = requests.get(f"{base_b.api}/articles", params={"author": "A" * 6000}, timeout=10)
    assert response.status_code == 414
    assert not leaks(response.text)


# --- GraphQL ---------------------------------------------------------------------------------------------


def _check_graphql(response, label: str, field_filter: tuple[str, str] | None = None) -> list[str]:
    """What is wrong with one GraphQL answer (nothing, if harmless)."""
    problems = []
    found = leaks(response.text)
    if found:
        problems.append(f"{label}: leaks {found}: {response.text[:200]}")
    if response.status_code >= 500:
        return [*problems, f"{label}: HTTP {response.status_code}"]
    body = response.json()
    for error in body.get("errors") or []:
        code = error.get("extensions", {}).get("code")
        if code in GRAPHQL_BAD_CODES or not code:
            problems.append(f"{label}: error code {code}: {error.get('message')}")
    if field_filter is not None:
        name, value = field_filter
        for answer in (body.get("data") or {}).values():
            # A list field (getArticles) answers the rows; a page field (getArticlesPage) holds them in `items`.
            for item in answer if isinstance(answer, list) else (answer or {}).get("items", []):
                if name in item and str(item[name]) != value:
                    problems.append(f"{label}: returned a row whose {name} is {item[name]!r}")
    return problems


def _list_queries(schema: dict) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(query field, its row selection, [(filter field, scalar type)]) for every query that takes a filter."""
    inputs = {t["name"]: t for t in schema["types"] if t["kind"] == "INPUT_OBJECT"}
    found = []
    for query in schema["queryType"]["fields"]:
        rows = "{ items { %s } }" if named(query["type"]).endswith("Page") else "{ %s }"
        for arg in query["args"]:
            if arg["name"] == "filter":
                fields = [(f["name"], named(f["type"])) for f in inputs[named(arg["type"])]["inputFields"]]
                found.append((query["name"], rows, fields))
    return found


def _id_operations(schema: dict) -> list[tuple[str, str]]:
    """("query" | "mutation", field) for every root field taking an `id`."""
    return [
        (kind, field["name"])
        for kind, root in (("query", schema["queryType"]), ("mutation", schema["mutationType"]))
        for field in root["fields"]
        if any(arg["name"] == "id" for arg in field["args"])
    ]


def test_the_graphql_schema_has_the_filters_and_ids_tested_here(graphql_schema):
    queries = {name: dict(fields) for name, _, fields in _list_queries(graphql_schema)}
    for articles in ("getArticles", "getArticlesPage"):
        assert {"author", "sourceId", "updatedAfter"} <= set(queries[articles])
    for employees in ("getEmployees", "getEmployeesPage"):
        assert {"lastName", "email", "department", "position", "sourceId"} <= set(queries[employees])
    ids = {name for _, name in _id_operations(graphql_schema)}
    assert {"getArticle", "updateArticle", "deleteArticle", "getEmployee", "updateEmployee", "deleteEmployee"} <= ids


@pytest.mark.parametrize("template", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_graphql_filters_are_harmless(base_b, graphql_api, graphql_schema, canaries, template):
    before = snapshot(base_b.engine)
    failures = []
    for query, rows, fields in _list_queries(graphql_schema):
        value = _payload(template, entity_of(query))
        for name, scalar in fields:
            # As a variable of the field's own type (an Int field refuses a string: a validation error)...
            document = f"query($v: {scalar}) {{ {query}(filter: {{{name}: $v}}) {rows % 'id'} }}"
            failures += _check_graphql(gql(graphql_api, document, {"v": value}), f"{query} {name} (variable)")
            if scalar == "Int" and re.fullmatch(r"-?[0-9]{1,9}", value):  # and as the number it spells
                failures += _check_graphql(gql(graphql_api, document, {"v": int(value)}), f"{query} {name} (int)")
            # ...and inline, as a string literal (JSON's escapes are GraphQL's), selecting the column.
            selected = name if scalar == "String" else ""
            literal = json.dumps(value, ensure_ascii=False)
            document = f"query {{ {query}(filter: {{{name}: {literal}}}) {rows % f'id {selected}'} }}"
            expected = (name, value) if selected else None
            failures += _check_graphql(gql(graphql_api, document), f"{query} {name} (inline)", expected)
        # The page arguments, with the payload where an Int is expected.
        for argument in ("after", "limit"):
            document = f"query($v: Int) {{ {query}({argument}: $v) {rows % 'id'} }}"
            failures += _check_graphql(gql(graphql_api, document, {"v": value}), f"{query} {argument}")
            if re.fullmatch(r"-?[0-9]{1,9}", value):
                failures += _check_graphql(gql(graphql_api, document, {"v": int(value)}), f"{query} {argument} (int)")
    assert not failures, "\n".join(failures)
    assert snapshot(base_b.engine) == before


@pytest.mark.parametrize("template", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_graphql_ids_are_harmless(base_b, graphql_api, graphql_schema, canaries, template):
    # With the real token, so that a mutation whose id got through the resolver would reach the API.
    before = snapshot(base_b.engine)
    failures = []
    for kind, field in _id_operations(graphql_schema):
        value = _payload(template, entity_of(field))
        if kind == "query":
            document, variables = f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", {}
        else:
            document, variables = mutation_document(graphql_schema, field)
        response = gql(graphql_api, document, {**variables, "id": value}, token=TOKEN)
        label = f"{field}(id: {value[:24]!r})"
        failures += _check_graphql(response, label)
        if not response.json().get("errors"):
            failures.append(f"{label}: an injected id was accepted: {response.text[:200]}")
        # Inline too: the id as a string literal in the document.
        if kind == "query":
            literal = json.dumps(value, ensure_ascii=False)
            failures += _check_graphql(gql(graphql_api, f"{{ {field}(id: {literal}) {{ id }} }}"), f"{label} inline")
    assert not failures, "\n".join(failures)
    assert snapshot(base_b.engine) == before


@pytest.mark.parametrize("value", ["9" * 5000, "1" + "0" * 4400], ids=["5000-digits", "4401-digits"])
def test_a_graphql_id_beyond_pythons_integer_text_limit_is_bad_input(base_b, graphql_api, canaries, value):
    # int() refuses text over 4300 digits (a ValueError): that must be a coded user error, not "internal".
    before = snapshot(base_b.engine)
    documents = ("query($id: ID!) { getArticle(id: $id) { id } }", "mutation($id: ID!) { deleteEmployee(id: $id) }")
    for document in documents:
        response = gql(graphql_api, document, {"id": value}, token=TOKEN)
        assert not (failures := _check_graphql(response, document)), failures
        assert response.json()["errors"][0]["extensions"]["code"] in ("BAD_USER_INPUT", "NOT_FOUND")
    assert snapshot(base_b.engine) == before


@pytest.mark.parametrize("limit", [2**64, 10**30, "9" * 40], ids=["2^64", "10^30", "40-digit-string"])
def test_a_graphql_page_size_beyond_64_bits_is_refused_not_a_server_error(graphql_api, limit):
    # The cost rule multiplies by `limit` as sent; the error that reports the cost must still encode.
    document = "query($v: Int) { getArticles(limit: $v) { id } }"
    response = gql(graphql_api, document, {"v": limit})
    assert response.status_code < 500, response.text[:300]
    assert response.json()["errors"][0]["extensions"]["code"] not in GRAPHQL_BAD_CODES
