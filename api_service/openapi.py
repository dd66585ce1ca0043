"""The OpenAPI 3.1 document, built from the entity declarations and their pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from api_service.schemas import (
    MAX_BIGINT,
    MIN_BIGINT,
    REQUEST_DATE_TIME,
    SCHEMAS,
    BulkDeletePlan,
    BulkDeleteRecord,
    BulkResult,
    BulkUpsertQuery,
    Reason,
    RejectionsPage,
    RejectionsQuery,
    SyncBuckets,
    SyncBucketsQuery,
    SyncDigest,
    SyncMark,
    SyncMarkQuery,
    SyncMarkWrite,
    SyncVersions,
    SyncVersionsQuery,
    SyncWindowQuery,
)
from api_service.settings import ApiSettings
from baseab_contract.entities import ENTITIES, Entity

REF = "#/components/schemas/{model}"
PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_REASONS = {
    400: "the body is not valid JSON, the query string is not UTF-8 once percent-decoded, or the request is "
    "not well-formed HTTP",
    401: "no bearer token",
    403: "the token is not allowed",
    404: "no such row",
    405: "method not allowed here",
    409: "conflict: a unique value is taken, or the row is synced from Base A",
    412: "a precondition failed: the row's ETag is none of `If-Match` (it changed since the client read it), "
    "it was modified after `If-Unmodified-Since`, or, on a write, it matches `If-None-Match`",
    413: "the body or the batch is too large",
    414: "the request line (path and query string) is too long",
    415: "unsupported content type or content encoding",
    422: "invalid fields, each named in `errors` (a query-string name the operation does not take, too)",
    431: "a request header is too large, or there are too many",
    503: "Base B is not reachable or not migrated",
}
_REASON = Reason.model_json_schema()  # as QuarantineItem reads a reason
# What the server (gunicorn) answers to any operation before the app sees the request.
_ANY_REQUEST = (414, 431)
# The operations that never touch Base B (every other one may answer 503 while it is unreachable).
_NO_DATABASE = ("/health", "/metrics", "/openapi.json")


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _problems(*codes: int) -> dict:
    responses = {
        str(code): {"description": _REASONS[code], "content": {"application/problem+json": {"schema": _ref("Problem")}}}
        for code in codes
    }
    if 503 in codes:
        retry = {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
        responses["503"]["headers"] = {"Retry-After": retry}
    return responses


# Conditional requests on one row (RFC 9110): its ETag is a hash of the row as served.
_ETAG = {
    "ETag": {
        "description": "the row's strong entity tag: it changes whenever the row does, through the API or the "
        "pipelines. Send it back in `If-Match` to write only the version read, in `If-None-Match` to read only a "
        "changed row",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "`no-cache`: revalidate before reusing the row", "schema": {"type": "string"}},
}


# A bad item of a bulk body fails itself, not the request (README, "Bulk upsert"): the items admit any
# value, so a validating gateway passes the valid records of a mixed batch on to be written, while
# the record schema, first, stays the type a generated client writes.
OTHER_ITEM = (
    "any other JSON value (not an object, a field missing, invalid or unknown, a version out of range) is "
    "admitted too: it is not written, and the answer (200) counts it in `rejected` and lists it in `errors` "
    "with its index and a reason per field"
)
NDJSON_BODY = (
    "one record per line, each read as an item of the JSON array: a line that is no valid record (or no JSON) "
    "is not written and is listed in the answer's `errors`, the other lines are written"
)


def _bulk_item(record: str) -> dict:
    return {"anyOf": [_ref(record), {"description": OTHER_ITEM}]}


def _optional_header(name: str, description: str) -> dict:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": description}


_IF_MATCH = _optional_header(
    "If-Match",
    "one or more ETags (or `*`, any live row): the request applies only if the row's current "
    "ETag is among them (compared strongly, under the row's lock on a write), else 412. Prevents lost updates",
)
_IF_NONE_MATCH = _optional_header(
    "If-None-Match",
    "the ETags of the copies the client holds: 304 without a body when the row's ETag is among "
    "them (compared weakly; `*`: any live row)",
)
_IF_UNMODIFIED_SINCE = _optional_header(
    "If-Unmodified-Since",
    "an HTTP date: 412 when the row's `updated_at` (to the second) is later. Ignored beside "
    "`If-Match`, or when it is no HTTP date; `If-Match` is exact, a date only to the second",
)


def _component_schemas() -> dict[str, Any]:
    models = [(BulkResult, "serialization"), (BulkDeletePlan, "serialization"), (BulkDeleteRecord, "validation")]
    models += [(m, "serialization") for m in (SyncDigest, SyncVersions, SyncBuckets, SyncMark, RejectionsPage)]
    models += [(SyncMarkWrite, "validation")]
    for schemas in SCHEMAS.values():
        models += [
            (schemas.write, "validation"),
            (schemas.read, "serialization"),
            (schemas.page, "serialization"),
            (schemas.bulk_record, "validation"),
        ]
    _, top = models_json_schema(models, ref_template=REF)
    return {**top["$defs"], "Problem": PROBLEM}


def _not_null(schema: dict) -> dict:
    """A query parameter is absent or a value: drop the `null` branch pydantic adds for optionals."""
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if len(branches) == 1:
        return {**rest, **branches[0]}
    if len(branches) < len(schema.get("anyOf", [])):  # a date-time's forms (with an offset or without)
        return {**rest, "anyOf": branches}
    return schema


def _query_parameters(model) -> list[dict]:
    query_schema = model.model_json_schema(ref_template=REF)
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": _not_null(schema),
            "description": schema.get("description", ""),
        }
        for name, schema in query_schema["properties"].items()
    ]


# The pages api_service/streaming.py writes as their rows are read (README, "Long pages").
_PAGES = frozenset({"RejectionsPage", "SyncVersions"})
STREAMED_PAGE = (
    "one page, written as its rows are read (chunked: no Content-Length). An error before it begins is a "
    "problem document; Base B failing after it began ends it early, a truncated body: read the page again"
)


def _entity_paths(entity: Entity, read_security: list) -> dict[str, Any]:
    title = entity.title
    write_security = [{"bearerAuth": []}]
    read_errors = (401, 403) if read_security else ()
    row_id = {
        "name": "row_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT},
        "description": f"Base B's id of the {entity.singular}",
    }
    bulk_body = {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": _bulk_item(f"{title}BulkRecord")}},
            "application/x-ndjson": {"schema": {"type": "string", "description": NDJSON_BODY}},
        },
    }
    delete_body = {
        **bulk_body,
        "content": {
            **bulk_body["content"],
            "application/json": {"schema": {"type": "array", "items": _bulk_item("BulkDeleteRecord")}},
        },
    }
    # An array, a batch is answered 200 whatever its items hold (README, "Bulk upsert").
    per_record = (
        "An item that breaks the record schema (not an object; a field missing, invalid or unknown; a version "
        "out of range) does not fail the request: the answer is 200, the item counted in `rejected` and "
        "listed in `errors` with its index and a reason per field, and the valid items {verb}. Only a body "
        "that is no array (or no NDJSON) is refused whole."
    )
    bulk_ok = {
        "200": {
            "description": "counts per outcome; rejected records with reasons",
            "content": _json(_ref("BulkResult")),
        }
    }
    tag = [title]
    return {
        f"/{entity.name}": {
            "get": {
                "tags": tag,
                "summary": f"List {entity.name} (keyset pages by id)",
                "operationId": f"list_{entity.name}",
                "security": read_security,
                "parameters": _query_parameters(SCHEMAS[entity.name].list_query),
                "responses": {
                    "200": {"description": STREAMED_PAGE, "content": _json(_ref(f"{title}Page"))},
                    **_problems(*read_errors, 422),
                },
            },
            "post": {
                "tags": tag,
                "summary": f"Create a {entity.singular} owned by the client",
                "operationId": f"create_{entity.singular}",
                "security": write_security,
                "requestBody": {"required": True, "content": _json(_ref(f"{title}Write"))},
                "responses": {
                    "201": {
                        "description": "created",
                        "headers": {
                            "Location": {"schema": {"type": "string"}, "description": "URL of the new row"},
                            **_ETAG,
                        },
                        "content": _json(_ref(title)),
                        # What a client (and schemathesis' stateful run) can do next with the new row.
                        "links": {
                            verb: {
                                "operationId": f"{verb.lower()}_{entity.singular}",
                                "parameters": {"row_id": "$response.body#/id"},
                            }
                            for verb in ("Get", "Replace", "Delete")
                        },
                    },
                    **_problems(400, 401, 403, 409, 413, 415, 422),
                },
            },
        },
        f"/{entity.name}/{{row_id}}": {
            "parameters": [row_id],
            "get": {
                "tags": tag,
                "summary": f"Get one {entity.singular}",
                "operationId": f"get_{entity.singular}",
                "security": read_security,
                "parameters": [_IF_NONE_MATCH, _IF_MATCH],
                "responses": {
                    "200": {"description": "the row", "headers": _ETAG, "content": _json(_ref(title))},
                    "304": {"description": "not modified: the row's ETag is one of `If-None-Match`", "headers": _ETAG},
                    **_problems(*read_errors, 404, 412),
                },
            },
            "put": {
                "tags": tag,
                "summary": f"Replace a client-owned {entity.singular} (synced rows answer 409)",
                "description": "Send the ETag read with the row in `If-Match`: a write by someone else since "
                "is then a 412, not overwritten.",
                "operationId": f"replace_{entity.singular}",
                "security": write_security,
                "parameters": [_IF_MATCH, _IF_UNMODIFIED_SINCE],
                "requestBody": {"required": True, "content": _json(_ref(f"{title}Write"))},
                "responses": {
                    "200": {"description": "the row as stored", "headers": _ETAG, "content": _json(_ref(title))},
                    **_problems(400, 401, 403, 404, 409, 412, 413, 415, 422),
                },
            },
            "delete": {
                "tags": tag,
                "summary": f"Delete a client-owned {entity.singular} (synced rows answer 409)",
                "description": "Of concurrent deletes of a row one answers 204, the others 404. With `If-Match`, "
                "only the version the client read is deleted.",
                "operationId": f"delete_{entity.singular}",
                "security": write_security,
                "parameters": [_IF_MATCH, _IF_UNMODIFIED_SINCE],
                "responses": {"204": {"description": "deleted"}, **_problems(401, 403, 404, 409, 412)},
            },
        },
        f"/{entity.name}/bulk": {
            "post": {
                "tags": tag,
                "summary": f"Upsert many {entity.name} from Base A (pipelines), with the version guard",
                "description": per_record.format(verb="are written"),
                "operationId": f"bulk_upsert_{entity.name}",
                "security": write_security,
                "parameters": _query_parameters(BulkUpsertQuery),
                "requestBody": bulk_body,
                "responses": {**bulk_ok, **_problems(400, 401, 403, 413, 415, 422)},
            }
        },
        f"/{entity.name}/bulk/delete": {
            "post": {
                "tags": tag,
                "summary": f"Delete many {entity.name} by Base A key (pipelines), with the version guard",
                "description": per_record.format(verb="are applied"),
                "operationId": f"bulk_delete_{entity.name}",
                "security": write_security,
                "requestBody": delete_body,
                "responses": {**bulk_ok, **_problems(400, 401, 403, 413, 415, 422)},
            }
        },
        f"/{entity.name}/bulk/delete/plan": {
            "post": {
                "tags": tag,
                "summary": f"What a bulk delete of {entity.name} would do, nothing written (the mass-delete "
                "breakers count only the live rows it names)",
                "description": per_record.format(verb="are planned"),
                "operationId": f"plan_bulk_delete_{entity.name}",
                "security": write_security,
                "requestBody": delete_body,
                "responses": {
                    "200": {
                        "description": "the counts the delete would answer, and the keys of the live rows it "
                        "would delete",
                        "content": _json(_ref("BulkDeletePlan")),
                    },
                    **_problems(400, 401, 403, 413, 415, 422),
                },
            }
        },
        f"/{entity.name}/rejections": _pipeline_read(
            tag,
            read_security,
            f"list_{entity.name}_rejections",
            RejectionsQuery,
            "RejectionsPage",
            f"Rejected {entity.name} records not yet fixed by a later write (for operators and replays)",
        )
        | {
            "post": {
                "tags": tag,
                "summary": f"Quarantine {entity.name} source rows the pipelines refuse (invalid dates)",
                "operationId": f"quarantine_{entity.name}",
                "security": write_security,
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["source_id", "record", "reasons"],
                                "additionalProperties": False,  # as QuarantineItem reads an item
                                "properties": {
                                    # Any BIGINT: a key Base B cannot hold is one reason a row is refused.
                                    "source_id": {"type": "integer", "minimum": MIN_BIGINT, "maximum": MAX_BIGINT},
                                    "source_updated_at": {"anyOf": [REQUEST_DATE_TIME, {"type": "null"}]},
                                    "record": {"type": "object"},
                                    "reasons": {"type": "array", "minItems": 1, "items": _REASON},
                                },
                            },
                        }
                    ),
                },
                "responses": {
                    "200": {
                        "description": "how many were stored as open rejections",
                        "content": _json({"type": "object"}),
                    },
                    **_problems(400, 401, 403, 413, 415, 422),
                },
            }
        },
        f"/{entity.name}/sync/digest": _pipeline_read(
            tag,
            read_security,
            f"{entity.name}_sync_digest",
            SyncWindowQuery,
            "SyncDigest",
            "Count and checksum of the synced versions in a window (sync verification)",
        ),
        f"/{entity.name}/sync/versions": _pipeline_read(
            tag,
            read_security,
            f"{entity.name}_sync_versions",
            SyncVersionsQuery,
            "SyncVersions",
            "(source_id, version) pairs in a window and key range, by source_id (sync verification)",
        ),
        f"/{entity.name}/sync/buckets": _pipeline_read(
            tag,
            read_security,
            f"{entity.name}_sync_buckets",
            SyncBucketsQuery,
            "SyncBuckets",
            "Count and key sum (and version digest) of the synced keys per bucket (comparing every key)",
        ),
        f"/{entity.name}/sync/mark": _pipeline_read(
            tag,
            read_security,
            f"{entity.name}_sync_mark",
            SyncMarkQuery,
            "SyncMark",
            "The batch sync's mark: another token than its last commit wrote means Base B was restored",
        )
        | {
            "put": {
                "tags": tag,
                "summary": f"Keep the batch sync's new mark of {entity.name} (its commit writes it)",
                "operationId": f"set_{entity.name}_sync_mark",
                "security": write_security,
                "requestBody": {"required": True, "content": _json(_ref("SyncMarkWrite"))},
                "responses": {
                    "200": {"description": "kept", "content": _json(_ref("SyncMark"))},
                    **_problems(400, 401, 403, 413, 415, 422),
                },
            }
        },
    }


def _pipeline_read(tag: list, security: list, operation_id: str, query, response: str, summary: str) -> dict:
    description = STREAMED_PAGE if response in _PAGES else "the answer"
    return {
        "get": {
            "tags": tag,
            "summary": summary,
            "operationId": operation_id,
            "security": security,
            "parameters": _query_parameters(query),
            "responses": {
                "200": {"description": description, "content": _json(_ref(response))},
                **_problems(*((401, 403) if security else ()), 422),
            },
        }
    }


def _service_paths() -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    status = _json({"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]})
    newer = "only when a newer version migrated Base B: its revision (served as this version knows the tables)"
    ready = _json(
        {
            "type": "object",
            "properties": {"status": {"type": "string"}, "schema": {"type": "string", "description": newer}},
            "required": ["status"],
        }
    )
    return {
        "/health": {
            "get": {
                "tags": ["Service"],
                "summary": "The process is alive",
                "operationId": "health",
                "security": [],
                "responses": {"200": {"description": "alive", "content": status}},
            }
        },
        "/ready": {
            "get": {
                "tags": ["Service"],
                "summary": "Base B is reachable and migrated",
                "operationId": "ready",
                "security": [],
                "responses": {"200": {"description": "ready", "content": ready}, **_problems(503)},
            }
        },
        "/metrics": {
            "get": {
                "tags": ["Service"],
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "security": [],
                "responses": {"200": {"description": "exposition format", "content": text}},
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["Service"],
                "summary": "This document",
                "operationId": "openapi",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
            }
        },
    }


NAIVE_IS_UTC = "A date-time without an offset is read as UTC."


def _is_date_time(schema: dict) -> bool:
    return schema.get("format") == "date-time" or any(map(_is_date_time, schema.get("anyOf", [])))


def _note_naive_utc(holder: dict) -> None:
    holder["description"] = f"{holder.get('description', '').rstrip('.')}. {NAIVE_IS_UTC}".lstrip(". ")


def _note_request_date_times(paths: dict, components: dict) -> None:
    """Say in each date-time a request carries (a parameter, a body's property) that one without an
    offset is UTC: the API reads it so on purpose, where RFC 3339 would refuse it."""
    bodies: list[dict] = []
    for operation in (op for item in paths.values() for op in item.values() if isinstance(op, dict)):
        for parameter in operation.get("parameters", []):
            if _is_date_time(parameter["schema"]):
                _note_naive_utc(parameter)
        bodies += [media["schema"] for media in operation.get("requestBody", {}).get("content", {}).values()]
    seen: set[str] = set()
    while bodies:
        schema = bodies.pop()
        if ref := schema.get("$ref"):
            name = ref.rpartition("/")[2]
            bodies += [] if name in seen else [components[name]]
            seen.add(name)
            continue
        for prop in schema.get("properties", {}).values():
            if _is_date_time(prop):
                _note_naive_utc(prop)
        bodies += [schema[key] for key in ("items",) if key in schema] + schema.get("anyOf", [])


def _add_problems(path_item: dict, *codes: int) -> None:
    """List these problem statuses in every operation of the path where it does not list them yet."""
    for operation in (op for op in path_item.values() if isinstance(op, dict)):
        for code, response in _problems(*codes).items():
            operation["responses"].setdefault(code, response)


def build_document(settings: ApiSettings) -> dict[str, Any]:
    """The whole OpenAPI document for this configuration."""
    read_security = [{"bearerAuth": []}] if settings.read_requires_token else []
    paths: dict[str, Any] = {}
    for entity in ENTITIES.values():
        paths.update(_entity_paths(entity, read_security))
    for item in paths.values():
        # Every operation of an entity reads its query string, if only to refuse names it does not take.
        _add_problems(item, 400, 422)
    paths.update(_service_paths())
    for path, item in paths.items():
        _add_problems(item, *(_ANY_REQUEST if path in _NO_DATABASE else (*_ANY_REQUEST, 503)))
    components = _component_schemas()
    _note_request_date_times(paths, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Base B REST API",
            "version": "0.1.0",
            "description": (
                "CRUD over Base B for clients, and bulk endpoints for the pipelines that sync Base A. "
                "Rows synced from Base A (with a `source_id`) are read-only here. Errors are "
                "`application/problem+json` documents."
            ),
        },
        # Relative: the document is served by the API it describes, wherever that is reached (the
        # route that serves it writes the mount prefix of the request it answers).
        "servers": [{"url": "/", "description": "the server that serves this document"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
