"""The document as a validating gateway in front of the API reads it (Stoplight Prism with --errors):
a request the API accepts must pass it. jsonschema_rs checks formats as Prism's validator does
(a `date-time` needs its offset); Python's jsonschema computes `multipleOf` in binary floats."""

from __future__ import annotations

import jsonschema_rs

from api_service.openapi import build_document
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
