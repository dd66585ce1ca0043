"""The document as a validating gateway in front of the API reads it (Stoplight Prism with --errors):
a request the API accepts must pass it. jsonschema_rs checks formats as Prism's validator does
(a `date-time` needs its offset); Python's jsonschema computes `multipleOf` in binary floats."""

from __future__ import annotations

import re

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_service.openapi import build_document
from api_service.schemas import NAIVE_DATE_TIME, SyncWindowQuery
from api_service.settings import ApiSettings

DOCUMENT = build_document(ApiSettings(database_url="sqlite://"))
VALID_EMPLOYEE = {
    "source_id": 1,
    "source_updated_at": "2024-01-01T00:00:00Z",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
}


def admits(schema: dict, value: object) -> bool:
    """Whether the schema (its $refs into the document's components) admits the value."""
    root = {**schema, "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True).is_valid(value)


def body(path: str) -> dict:
    return DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_a_mixed_batch_passes_the_gateway_as_the_api_takes_it():
    """The API writes the valid records and rejects the others one by one (200): a gateway that
    refused the whole batch kept the valid rows from being written."""
    bad = {**VALID_EMPLOYEE, "source_id": 2, "email": "not an address"}
    assert admits(body("/employees/bulk"), [VALID_EMPLOYEE, bad, None, 5, "x", {"unknown": True}])
    delete = {"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z"}
    for path in ("/employees/bulk/delete", "/employees/bulk/delete/plan"):
        assert admits(body(path), [delete, {"source_id": "one"}, None])
    assert not admits(body("/employees/bulk"), {"not": "an array"})  # refused whole by the API too (422)


def test_a_bulk_item_is_still_typed_as_the_record():
    """A generated client writes the record: it stays the items' first schema."""
    for path, record in (("/articles/bulk", "ArticleBulkRecord"), ("/articles/bulk/delete", "BulkDeleteRecord")):
        first = body(path)["items"]["anyOf"][0]
        assert first == {"$ref": f"#/components/schemas/{record}"}


def _request_date_times() -> list[tuple[str, dict]]:
    """(where, schema) of every date-time a request carries: query parameters and body properties."""
    found = []
    for path, item in DOCUMENT["paths"].items():
        for operation in (op for op in item.values() if isinstance(op, dict)):
            found += [
                (f"{path} ?{p['name']}", p["schema"]) for p in operation.get("parameters", []) if _is_date_time(p)
            ]
    for name, component in DOCUMENT["components"]["schemas"].items():
        if name.endswith(("BulkRecord", "DeleteRecord")):
            found += [(f"{name}.{k}", v) for k, v in component["properties"].items() if _is_date_time(v)]
    quarantine = body("/articles/rejections")["items"]["properties"]["source_updated_at"]
    return [*found, ("quarantine item source_updated_at", quarantine)]


def _is_date_time(schema: dict) -> bool:
    schema = schema.get("schema", schema)
    return schema.get("format") == "date-time" or any(map(_is_date_time, schema.get("anyOf", [])))


def test_a_date_time_without_an_offset_passes_the_gateway_wherever_a_request_carries_one():
    """README: one without an offset is read as UTC (GET /articles?updated_after=2020-01-01T00:00:00 is 200)."""
    date_times = _request_date_times()
    assert {"/articles ?updated_after", "/articles/sync/digest ?since", "/articles/sync/versions ?until"} <= {
        where for where, _ in date_times
    }
    assert len(date_times) > 15
    for where, schema in date_times:
        for value in ("2020-01-01T00:00:00", "2024-02-29T23:59:59.1234567", "2020-01-01T00:00:00+02:00"):
            assert admits(schema, value), (where, value)
        for value in ("2024-02-30T00:00:00", "2023-02-29T00:00:00", "2020-01-01T24:00:00", "2020-01-01T00"):
            assert not admits(schema, value), (where, value)


def _api_reads_date_time(value: str) -> bool:
    try:
        SyncWindowQuery(since=value)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(value=st.from_regex(NAIVE_DATE_TIME, fullmatch=True))
def test_every_offset_less_date_time_the_document_admits_is_read(value):
    """schemathesis' positive data: a pattern admitting 2024-02-30 or year 0 would be refused."""
    assert _api_reads_date_time(value), value


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(
    value=st.from_regex(
        r"^[0-9]{4}-[0-9]{2}-[0-3][0-9]T[0-2][0-9]:[0-6][0-9](:[0-6][0-9](\.[0-9]{1,8})?)?$", fullmatch=True
    )
)
def test_an_offset_less_date_time_the_api_reads_is_admitted(value):
    """And the other way (but for year 9999's digits past the microsecond, left out of the pattern)."""
    if not value.startswith("9999"):
        assert bool(re.match(NAIVE_DATE_TIME, value)) == _api_reads_date_time(value), value


@pytest.mark.parametrize(
    "value", ["2000-02-29T00:00", "2400-02-29T00:00", "0004-02-29T00:00", "9999-12-31T23:59:59.999999"]
)
def test_the_calendar_edges_are_admitted(value):
    assert re.match(NAIVE_DATE_TIME, value) and _api_reads_date_time(value)


@pytest.mark.parametrize(
    "value", ["1900-02-29T00:00", "2100-02-29T00:00", "0000-01-01T00:00", "9999-12-31T23:59:59.9999995"]
)
def test_what_the_calendar_refuses_is_not_admitted(value):
    assert not re.match(NAIVE_DATE_TIME, value) and not _api_reads_date_time(value)


def test_a_salary_the_api_takes_is_never_refused_for_float_arithmetic():
    """multipleOf 0.01 in binary floats: Python's jsonschema (and Prism's ajv) said 0.07, 4.35 and
    1.13 'must be multiple of 0.01'. The document admits fractions as text, checked exactly."""
    import jsonschema  # noqa: PLC0415

    salary = DOCUMENT["components"]["schemas"]["EmployeeWrite"]["properties"]["salary"]
    validator = jsonschema.Draft202012Validator(salary)
    for value in (0.07, 4.35, 1.13, 1, 0):
        errors = list(validator.iter_errors(value))
        while errors:  # an anyOf's error holds its branches' in its context
            error = errors.pop()
            assert "multiple" not in error.message, value
            errors += error.context
    assert all(validator.is_valid(text) for text in ("0.07", "4.35", "1.13", "9999999999.99", "1E2"))
    assert not any(validator.is_valid(bad) for bad in ("0.001", 0.001, "1E10", -1, 10**10))
