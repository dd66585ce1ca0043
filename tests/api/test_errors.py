"""Every error is a problem document with the right status; no input makes the API answer 500."""

from __future__ import annotations

import io
import json

import orjson
import pytest

from api_service import create_app, json_body
from tests.api.conftest import AUTH, make_settings

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.data
    assert response.mimetype == PROBLEM
    body = response.json
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_malformed_json_is_400(client):
    response = client.post("/articles", data=b'{"title": ', headers={**AUTH, "Content-Type": "application/json"})
    assert "not valid JSON" in assert_problem(response, 400)["detail"]
    response = client.post("/articles/bulk", data=b"[{", headers={**AUTH, "Content-Type": "application/json"})
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "first", "title": "second"}',
        b'{"title": "t", "\\u0074itle": "escaped"}',  # the same name, one escaped
        b'{"title": "t", "content": "c", "author": "a", "content": "again"}',
    ],
)
def test_a_name_given_twice_in_a_record_is_400_naming_it(client, db, body):
    """Found from outside: the last one won, so {"title":"first","title":"second"} stored "second"
    while a log or firewall reading the first saw another record."""
    response = client.post("/articles", data=body, headers={**AUTH, "Content-Type": "application/json"})
    problem = assert_problem(response, 400)
    name = problem["errors"][0]["field"]
    assert name in ("title", "content") and repr(name) in problem["detail"]
    row_id = client.post("/articles", json={"title": "kept"}, headers=AUTH).json["id"]
    answer = client.put(f"/articles/{row_id}", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert_problem(answer, 400)
    assert client.get(f"/articles/{row_id}").json["title"] == "kept"


def test_bulk_items_are_read_last_name_wins_as_documented(client):
    """Refusing a name given twice would cost more than decoding the bulk body (README says so)."""
    body = b'[{"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", "title": "first", "title": "second"}]'
    answer = client.post("/articles/bulk", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json["inserted"] == 1
    assert client.get("/articles?source_id=1").json["items"][0]["title"] == "second"


def test_field_errors_are_422_naming_each_field(client):
    response = client.post(
        "/employees",
        json={"first_name": "", "email": "not-an-email", "salary": "-1", "hired_at": "yesterday", "nope": 1},
        headers=AUTH,
    )
    body = assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"first_name", "last_name", "email", "salary", "hired_at", "nope"}


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"3", b"null"])
def test_a_body_that_is_not_an_object_is_422(client, body):
    headers = {**AUTH, "Content-Type": "application/json"}
    assert_problem(client.post("/articles", data=body, headers=headers), 422)


def test_bulk_body_must_be_an_array(client):
    assert "array" in assert_problem(client.post("/articles/bulk", json={"a": 1}, headers=AUTH), 422)["detail"]


def test_unknown_id_is_404(client):
    for method in ("get", "put", "delete"):
        response = getattr(client, method)("/articles/999999", json={"title": "x"}, headers=AUTH)
        assert_problem(response, 404)
    assert_problem(client.get(f"/articles/{2**64}"), 404)  # beyond any key, and no overflow


def test_duplicate_email_is_409(client):
    body = {"first_name": "A", "last_name": "B", "email": "same@example.com"}
    assert client.post("/employees", json=body, headers=AUTH).status_code == 201
    problem = assert_problem(client.post("/employees", json=body, headers=AUTH), 409)
    assert problem["errors"][0]["field"] == "email"
    other = client.post("/employees", json={**body, "email": "other@example.com"}, headers=AUTH).json
    assert_problem(client.put(f"/employees/{other['id']}", json=body, headers=AUTH), 409)


def test_body_too_large_is_413(database_url):
    app = create_app(make_settings(database_url, max_content_length=2048))
    client = app.test_client()
    response = client.post("/articles", json={"title": "x", "content": "y" * 5000}, headers=AUTH)
    assert_problem(response, 413)
    app.extensions["base_b_engine"].dispose()


def test_too_many_records_is_413(database_url):
    app = create_app(make_settings(database_url, bulk_max_records=3))
    records = [{"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"} for i in range(1, 5)]
    response = app.test_client().post("/articles/bulk", json=records, headers=AUTH)
    assert "limit is 3" in assert_problem(response, 413)["detail"]
    app.extensions["base_b_engine"].dispose()


def test_wrong_method_is_405_with_allow(client):
    response = client.patch("/articles", headers=AUTH)
    assert_problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert_problem(client.get("/articles/bulk"), 405)


def test_wrong_content_type_is_415(client):
    response = client.post("/articles", data="title=x", headers={**AUTH, "Content-Type": "text/plain"})
    assert_problem(response, 415)
    assert_problem(client.post("/articles/bulk", data="x", headers={**AUTH, "Content-Type": "text/csv"}), 415)


@pytest.mark.parametrize("path", ["/articles", "/articles/bulk"])
def test_a_body_declared_in_another_charset_is_415_not_read_as_utf8(client, path):
    """JSON between systems is UTF-8 (RFC 8259): 'café' in Latin-1 was read as UTF-8 (bad JSON,
    a 400) and a body that happened to be valid UTF-8 was stored as if the charset were not there."""
    body = '{"title": "café"}'
    headers = {**AUTH, "Content-Type": "application/json; charset=ISO-8859-1"}
    detail = assert_problem(client.post(path, data=body.encode("latin-1"), headers=headers), 415)["detail"]
    assert "UTF-8" in detail and "iso-8859-1" in detail
    utf8 = {**AUTH, "Content-Type": "application/json; charset=UTF-8"}
    assert client.post("/articles", data=body.encode(), headers=utf8).status_code == 201
    ascii_only = {**AUTH, "Content-Type": "application/json; charset=US-ASCII"}  # a subset of UTF-8
    assert client.post("/articles", data=b'{"title": "cafe"}', headers=ascii_only).status_code == 201


def test_unknown_route_is_404_problem(client):
    assert_problem(client.get("/nothing-here"), 404)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=100000",
        "limit=abc",
        "after=-1",
        f"after={2**70}",
        "source_id=0",
        "updated_after=not-a-date",
        "author=%00",
        "bogus=1",
    ],
)
def test_bad_query_strings_are_422(client, query):
    assert_problem(client.get(f"/articles?{query}"), 422)


@pytest.mark.parametrize(
    "record",
    [
        {"title": "nul \x00 byte"},
        {"title": "t", "content": "nul \x00"},
        {"title": 12},
        {"title": ["list"]},
        {"title": "t", "author": "x" * 256},
    ],
)
def test_hostile_fields_are_422_not_500(client, record):
    assert_problem(client.post("/articles", json=record, headers=AUTH), 422)


def test_hostile_bulk_values_are_rejected_per_record(client):
    records = [
        {"source_id": 2**63, "source_updated_at": "2024-01-01T00:00:00Z", "title": "too big"},
        {"source_id": 1, "source_updated_at": "0001-01-01T00:00:00+05:00", "title": "underflow"},
        {"source_id": 2, "source_updated_at": "2024-01-01T00:00:00Z", "title": "nul\x00"},
        {"source_id": True, "source_updated_at": "2024-01-01T00:00:00Z", "title": "bool id"},
    ]
    result = client.post("/articles/bulk", json=records, headers=AUTH).json
    assert result["rejected"] == 4, result


def test_a_quarantine_item_with_a_version_no_database_holds_is_refused_by_field(client):
    items = [
        {
            "source_id": 7,
            "source_updated_at": "0001-01-01T00:00:00+01:00",
            "record": {},
            "reasons": [{"field": "x", "message": "y"}],
        }
    ]
    response = client.post("/articles/rejections", json=items, headers=AUTH)
    assert response.status_code == 422, response.json
    assert response.json["errors"][0]["field"].endswith("source_updated_at")


def test_a_chunked_body_past_the_limit_is_refused_not_cut_short(database_url):
    app = create_app(make_settings(database_url, max_content_length=2048))
    records = orjson.dumps(
        [{"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t" * 50} for i in range(1, 60)]
    )
    assert len(records) > 2048
    response = app.test_client().post(
        "/articles/bulk",
        input_stream=io.BytesIO(records),
        headers={**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn says of a chunked body
    )
    assert response.status_code == 413, response.json
    assert "API_MAX_CONTENT_LENGTH" in response.json["detail"]
    assert app.test_client().get("/articles?limit=100").json["items"] == []  # nothing half-written
    app.extensions["base_b_engine"].dispose()


def _employee(source_id: int | None, salary: bytes) -> bytes:
    """An employee's JSON text with the salary as given; a pipeline's record when it has a key."""
    fields = b'"first_name": "A", "last_name": "B", "email": "e%d@example.com", "salary": %s' % (source_id or 0, salary)
    if source_id is not None:
        fields = b'"source_id": %d, "source_updated_at": "2024-01-01T00:00:00Z", ' % source_id + fields
    return b"{" + fields + b"}"


@pytest.mark.parametrize(
    "salary", [b"1.0000000000000001", b"1e-400", b"123456789012345678901234", b'"1_000"', b'"\\u0661"', b'" 12"']
)
def test_a_number_is_never_rounded_or_read_loosely_into_a_decimal(client, salary):
    """A float would have stored 1.00, 0.00 or a rounded value without a word; Python's Decimal
    reads "1_000" and any script's digits. Each is refused, in a single write and in a batch."""
    json_type = {**AUTH, "Content-Type": "application/json"}
    single = client.post("/employees", data=_employee(None, salary), headers=json_type)
    assert [e["field"] for e in assert_problem(single, 422)["errors"]] == ["salary"]
    # one good record beside it sends the batch down the record-by-record path too
    batch = b"[" + _employee(1, salary) + b"," + _employee(2, b'"10.50"') + b"]"
    result = client.post("/employees/bulk", data=batch, headers=json_type).json
    assert (result["inserted"], result["rejected"]) == (1, 1), result
    assert result["errors"][0]["reasons"][0]["field"] == "salary"
    # the rejection is kept with the record exactly as it was sent
    kept = client.get("/employees/rejections", headers=AUTH)
    assert kept.status_code == 200, kept.data
    assert json_body.loads(kept.data)["items"][0]["record"]["salary"] == json_body.loads(salary)


def test_a_key_past_any_integer_a_database_holds_is_a_rejection_not_an_error(client):
    batch = b"[" + _employee(2**80, b'"1.00"') + b"]"
    result = client.post("/employees/bulk", data=batch, headers={**AUTH, "Content-Type": "application/json"})
    assert result.status_code == 200, result.data
    assert result.json["rejected"] == 1 and result.json["errors"][0]["reasons"][0]["field"] == "source_id"
    assert client.get("/employees/rejections", headers=AUTH).json["items"] == []


def test_a_compressed_body_is_refused_not_read_as_json(client):
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = client.post("/articles", data=b'{"title": "t"}', headers=headers)
    assert "Content-Encoding" in assert_problem(response, 415)["detail"]
    assert response.headers["Accept-Encoding"] == "identity"
    assert client.get("/articles", headers=AUTH).json["items"] == []


@pytest.mark.parametrize("path", ["/articles?limit=1&limit=1000", "/articles/sync/versions?limit=1&limit=2"])
def test_a_query_parameter_given_twice_is_refused_not_read_as_its_first(client, path):
    body = assert_problem(client.get(path, headers=AUTH), 422)
    assert body["errors"] == [{"field": "limit", "message": "given more than once: give it once"}]


def test_a_made_up_method_is_405_as_any_other_and_grows_no_metric(client):
    for method in ("FOO", "BAR", "PROPFIND", "PATCH"):
        response = client.open("/articles", method=method)
        assert_problem(response, 405)
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert_problem(client.open("/nowhere", method="FOO"), 404)
    metrics = client.get("/metrics").data.decode()
    assert 'method="PATCH"' in metrics
    assert not any(f'method="{m}"' in metrics for m in ("FOO", "BAR", "PROPFIND"))


@pytest.mark.parametrize("path", ["/articles", "/articles/bulk", "/articles/bulk/delete", "/articles/rejections"])
@pytest.mark.parametrize("depth", [990, 1100, 100_000])
def test_json_nested_past_any_record_is_400_not_500(client, path, depth):
    body = b'{"title": "t", "content": ' + b"[" * depth + b"]" * depth + b"}"
    if path != "/articles":
        body = b"[" + body + b"]"
    response = client.post(path, data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.data[:300]


def test_a_bad_ndjson_line_beside_a_rejection_made_after_validation_is_counted_not_a_500(client):
    """Two records on one line, then a record the server refuses after validation (a version past
    its range): the rejection bookkeeping read the body again with another framing (a 500 after commit)."""
    good = b'{"source_id": 1, "source_updated_at": "2025-01-01T00:00:00Z", "title": "a"}'
    future = b'{"source_id": 2, "source_updated_at": "2999-01-01T00:00:00Z", "title": "b"}'
    body = good + b"\n" + good.replace(b'"source_id": 1', b'"source_id": 3') + b" " + future + b"\n" + future
    response = client.post("/articles/bulk", data=body, headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.data
    result = response.json
    assert (result["received"], result["inserted"], result["rejected"]) == (3, 1, 2), result
    assert {e["index"] for e in result["errors"]} == {1, 2}


def test_a_transfer_coding_the_server_does_not_decode_is_501(client):
    headers = {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "gzip, chunked"}
    response = client.post("/articles", data=b'{"title": "t"}', headers=headers)
    assert "Transfer-Encoding" in assert_problem(response, 501)["detail"]


@pytest.mark.parametrize("hired_at", ["2024-01-05T00:00:00+05:00", "2024-01-05T00:00:00.000000001Z", "2024-01-05 "])
def test_a_date_field_takes_a_date_not_a_timestamp(client, hired_at):
    body = {"first_name": "A", "last_name": "B", "email": "d@example.com", "hired_at": hired_at}
    assert [e["field"] for e in assert_problem(client.post("/employees", json=body, headers=AUTH), 422)["errors"]] == [
        "hired_at"
    ]


def test_quarantine_items_are_json_and_their_reasons_name_field_and_message(client):
    item = {"source_id": 0, "record": {}, "reasons": [{"field": "hired_at", "message": "zero date"}]}
    assert (
        client.post(
            "/articles/rejections", data=json.dumps([item]), headers={**AUTH, "Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.post("/articles/rejections", json=[{**item, "reasons": [{}]}], headers=AUTH).status_code == 422
    stored = client.post("/articles/rejections", json=[item], headers=AUTH)
    assert stored.status_code == 200 and stored.json["quarantined"] == 1


def test_ids_in_paths_are_ascii_digits(client):
    created = client.post("/articles", json={"title": "t"}, headers=AUTH).json
    assert client.get(f"/articles/{created['id']}").status_code == 200
    arabic = "".join(chr(0x0660 + int(d)) for d in str(created["id"]))
    assert_problem(client.get(f"/articles/{arabic}"), 404)


@pytest.mark.parametrize("value", ["1_0", "+5", "5.0", "%205", "١٢"])
@pytest.mark.parametrize("name", ["limit", "source_id"])
def test_a_query_integer_is_ascii_digits_as_in_bodies(client, value, name):
    body = assert_problem(client.get(f"/articles?{name}={value}", headers=AUTH), 422)
    assert [e["field"] for e in body["errors"]] == [name] and "ASCII digits" in body["errors"][0]["message"]


@pytest.mark.parametrize("query", ["author=%FF", "author=%E2%82", "author=caf%E9"])
def test_a_query_string_that_is_not_utf8_is_refused_not_read_as_replacement_characters(client, query):
    assert "not UTF-8" in assert_problem(client.get(f"/articles?{query}", headers=AUTH), 400)["detail"]
    assert client.get("/articles?author=caf%C3%A9", headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/articles/bulk/delete?dry_run=true"),
        ("POST", "/articles/bulk/delete/plan?x=1"),
        ("POST", "/articles/bulk?restore_tie=true"),
        ("POST", "/articles?x=1"),
        ("DELETE", "/articles/1?force=1"),
    ],
)
def test_a_write_refuses_query_names_it_does_not_read(client, method, path):
    """An unknown name is never ignored on a write: a flag this API does not know (a dry run a newer
    client asks for) must not be read as the plain write."""
    body = b"[]" if "bulk" in path else b'{"title": "t"}'
    response = client.open(path, method=method, data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert_problem(response, 422)
    assert client.get("/articles", headers=AUTH).json["items"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/articles//1"),
        ("GET", "//articles"),
        ("POST", "//articles"),
        ("GET", "///metrics"),
        ("GET", "/docs/static//swagger-ui.css"),
        ("POST", "/articles//bulk"),
    ],
)
def test_a_path_with_an_empty_segment_is_an_unknown_path_not_a_redirect(client, method, path):
    """Werkzeug merged the slashes with a 308 text/html redirect, a status no operation lists, and
    stripped leading ones (`//articles` was served). The path goes in as PATH_INFO: the test client
    reads `//articles` as host `articles` with an empty path."""
    answer = client.open("/", method=method, headers=AUTH, environ_overrides={"PATH_INFO": path})
    assert_problem(answer, 404)


def test_a_read_of_one_row_refuses_query_names_it_does_not_read(client):
    row_id = client.post("/articles", json={"title": "t"}, headers=AUTH).json["id"]
    body = assert_problem(client.get(f"/articles/{row_id}?fields=title"), 422)
    assert body["errors"][0]["field"] == "fields"
    assert client.get(f"/articles/{row_id}").status_code == 200


@pytest.mark.parametrize("value", ["yes", "1", "True", "on", "0", "FALSE"])
@pytest.mark.parametrize(
    ("method", "path", "name"), [("POST", "/bulk", "restore_ties"), ("GET", "/sync/buckets", "versions")]
)
def test_a_query_flag_is_true_or_false_as_documented(client, value, method, path, name):
    url = f"/articles{path}?{name}={value}"
    body = assert_problem(client.open(url, method=method, json=[], headers=AUTH), 422)
    assert body["errors"] == [{"field": name, "message": f"{value!r} is not true or false"}]
    for documented in ("true", "false"):
        assert (
            client.open(f"/articles{path}?{name}={documented}", method=method, json=[], headers=AUTH).status_code == 200
        )


@pytest.mark.parametrize("query", ["x=1", "x=%FF", "limit=%FF"])
def test_every_entity_operation_lists_what_it_answers_to_a_query_string_it_refuses(client, query):
    """An unknown name (422) or a query string that is not UTF-8 (400): statuses each operation lists."""
    row_id = client.post("/articles", json={"title": "t"}, headers=AUTH).json["id"]
    document = client.get("/openapi.json").json
    for path, item in document["paths"].items():
        if not path.startswith("/articles"):
            continue
        for method, operation in ((m, op) for m, op in item.items() if m != "parameters"):
            url = path.replace("{row_id}", str(row_id)) + "?" + query
            answer = client.open(url, method=method.upper(), json=[], headers=AUTH)
            assert answer.status_code in (400, 422), (method, path, answer.status_code)
            assert str(answer.status_code) in operation["responses"], (method, path, answer.status_code)
