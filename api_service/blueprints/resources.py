"""CRUD and bulk routes of one entity, generated from its declaration."""

from __future__ import annotations

import json
import re
from functools import partial
from types import UnionType
from typing import Annotated, Union, get_args, get_origin
from urllib.parse import unquote_to_bytes

import orjson
from flask import Blueprint, Response, current_app, g, request, url_for
from pydantic import ValidationError
from sqlalchemy import Row

import http_body
from api_service import auth, bulk_input, conditional, json_body, merge, metrics, rejections, repository, sync_reads
from api_service.db import get_connection
from api_service.models import TABLES
from api_service.problems import Problem, field_errors
from api_service.schemas import (
    MAX_BIGINT,
    QUARANTINE_ITEMS,
    SCHEMAS,
    BulkUpsertQuery,
    NoQuery,
    RejectionsQuery,
    SyncBucketsQuery,
    SyncMarkQuery,
    SyncMarkWrite,
    SyncVersionsQuery,
    SyncWindowQuery,
)
from api_service.streaming import page_response
from api_service.versions import VersionBounds
from baseab_contract.entities import Entity


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    # orjson writes datetimes and dates as ISO 8601; decimals go out as strings, exactly. Column
    # names are str subclasses, hence OPT_NON_STR_KEYS.
    if hasattr(body, "model_dump_json"):
        data = body.model_dump_json()
    else:
        data = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(data, status=status, headers=headers, mimetype="application/json")


def _settings():
    return current_app.extensions["api_settings"]


# UTF-8 and the labels of ASCII, its subset (RFC 8259; names as the IANA registry and WHATWG give them).
_UTF8_LABELS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "iso-ir-6", "us"})


def _body() -> bytes:
    # JSON between systems is UTF-8 (RFC 8259): a body declared in another charset would be read wrongly.
    charset = request.mimetype_params.get("charset", "utf-8").strip().lower()
    if charset not in _UTF8_LABELS:
        raise Problem(415, f"send the body as UTF-8: charset {charset[:40]!r} is not supported")
    try:
        return http_body.read("API_MAX_CONTENT_LENGTH")
    except http_body.BodyRefused as refused:
        raise Problem(refused.status, refused.detail, headers=refused.headers) from None


def _query(model, what: str = "query string"):
    """The query string, validated; a name given twice is refused (read as its first value, a
    client's `?limit=10&limit=1000` would get a page size it did not expect). Werkzeug reads bytes
    that are not UTF-8 as U+FFFD, and pydantic reads "1_0", "+5" or "5.0" as integers: both are
    refused here, as the JSON bodies refuse them."""
    try:
        unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, f"the {what} is not UTF-8 text once percent-decoded") from None
    errors = [
        {"field": name, "message": "given more than once: give it once"}
        for name, values in request.args.lists()
        if len(values) > 1
    ]
    errors += [
        {"field": name, "message": f"{value[:40]!r} is not {meaning}"}
        for name, value in request.args.items()
        if name in model.model_fields
        for kind, (spelling, meaning) in _SPELLINGS.items()
        if _takes(model.model_fields[name].annotation, kind) and not spelling.fullmatch(value)
    ]
    if errors:
        raise Problem(422, f"the {what} has invalid fields", errors=errors)
    return _validated(model, request.args.to_dict(), what)


# How a query value of a type must be written: as the document says, not all pydantic reads (it
# takes "1_0" and "+5" for integers, "yes", "1" and "True" for booleans).
_SPELLINGS = {
    int: (re.compile(r"-?[0-9]+"), "an integer written in ASCII digits"),
    bool: (re.compile(r"true|false"), "true or false"),
}


def _takes(annotation, kind: type) -> bool:
    """A field of that type, however wrapped: `int | None`, `Annotated[int, ...]`, `Optional[Annotated[int, ...]]`."""
    if annotation is kind:
        return True
    if get_origin(annotation) is Annotated:
        return _takes(get_args(annotation)[0], kind)
    return get_origin(annotation) in (UnionType, Union) and any(_takes(arg, kind) for arg in get_args(annotation))


def _json_object() -> dict:
    if request.mimetype != "application/json":
        raise Problem(415, "send the record as application/json")
    try:
        body = json_body.loads(_body())
    except json_body.DuplicateKey as exc:  # which one wins is no guess a client or its firewall should make
        raise Problem(
            400, f"the body is ambiguous: {exc}", errors=[{"field": exc.key, "message": "given twice"}]
        ) from None
    except json_body.JsonError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(422, "the body must be a JSON object", errors=[{"field": "body", "message": "not an object"}])
    return body


def _validated(model, data: dict, what: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, f"the {what} has invalid fields", errors=field_errors(exc)) from None


def _row_id(row_id: int, entity: Entity) -> int:
    if row_id > MAX_BIGINT:  # beyond any key: no such row, and no database overflow
        raise Problem(404, f"no {entity.singular} with id {row_id}")
    return row_id


def _count_bulk(entity: str, operation: str, result) -> None:
    path = metrics.sync_path(request.headers.get(metrics.SYNC_PATH_HEADER))
    current_app.extensions["api_metrics"].count_bulk(entity, path, operation, result)


def _admitted_versions(batch, settings, restore_at_ties: bool = False) -> VersionBounds:
    """Reject the batch's records whose version is out of range; the range, for the merge."""
    bounds = VersionBounds.now(settings, restore_at_ties)
    bulk_input.reject_versions_out_of_range(batch, bounds)
    return bounds


_WRITE_QUERIES = {"bulk_upsert": BulkUpsertQuery}  # the writes that read their query string here
# The reads that validate their own query string (its model is the route's); every other route takes none.
_READS_WITH_QUERY = frozenset({"list_items", "list_rejections", "sync_digest", "sync_versions", "sync_buckets"})


def _check_request() -> None:
    """Before each request of an entity's routes: the caller's token; the query string of a route
    that does not read one, which is a 422, not ignored (a read of one row too: `?fields=title`
    must not look honoured)."""
    auth.check_request(_settings())
    endpoint = (request.endpoint or "").rpartition(".")[2]
    if request.method != "OPTIONS" and request.query_string and endpoint not in _READS_WITH_QUERY:
        g.route_query = _query(_WRITE_QUERIES.get(endpoint, NoQuery))


def _upsert_versions(batch, settings) -> VersionBounds:
    """A bulk upsert's version bounds, with the tie rule its query string asks for (read before it)."""
    query = g.get("route_query") or BulkUpsertQuery()
    return _admitted_versions(batch, settings, query.restore_ties)


def _plan_deletes(table) -> Response:
    """POST /{entity}/bulk/delete/plan: what the bulk delete would do, nothing written. A path of its
    own, not a flag on the delete: an API that predates it answers 404, it never deletes."""
    settings = _settings()
    batch = bulk_input.parse_deletes(_body(), request.mimetype, settings.bulk_max_records)
    return json_response(merge.plan_delete(get_connection(), table, batch, _admitted_versions(batch, settings)))


def _quarantine(entity: Entity) -> Response:
    """POST /{entity}/rejections: store `QuarantineItem`s as open rejections (base_sync.dirty)."""
    if request.mimetype != "application/json":
        raise Problem(415, "send the quarantine items as application/json (an array)")
    items, _ = bulk_input.parse_body(_body(), request.mimetype, _settings().bulk_max_records)
    try:
        rows = QUARANTINE_ITEMS.validate_python(items)
    except ValidationError as exc:
        raise Problem(422, "invalid quarantine items", errors=field_errors(exc)) from None
    stored = rejections.quarantine(get_connection(), entity.name, rows)
    return json_response({"received": len(items), "quarantined": stored})


def _get_item(entity: Entity, table, row_id: int) -> Response:
    """GET /{entity}/{id}: the row and its ETag; 304 when the client's copy is current."""
    row = repository.get_row(get_connection(), entity, table, _row_id(row_id, entity))
    try:
        conditional.Preconditions.of(request).check(row, safe=True)
    except conditional.NotModified as current:
        return conditional.not_modified_response(current)
    return conditional.with_validator(json_response(row), row)


def _replace_item(entity: Entity, table, row_id: int) -> Response:
    """PUT /{entity}/{id}: replace the row, if it meets the request's preconditions (If-Match)."""
    row_id = _row_id(row_id, entity)
    body = _validated(SCHEMAS[entity.name].write, _json_object(), entity.singular)
    check = partial(conditional.Preconditions.of(request).check, safe=False)
    row = repository.replace_row(get_connection(), entity, table, row_id, body, check)
    return conditional.with_validator(json_response(row), row)


def _delete_item(entity: Entity, table, row_id: int) -> Response:
    """DELETE /{entity}/{id}: tombstone the row, if it meets the request's preconditions (If-Match)."""
    check = partial(conditional.Preconditions.of(request).check, safe=False)
    repository.delete_row(get_connection(), entity, table, _row_id(row_id, entity), check)
    return Response(status=204)


def _add_row_routes(bp: Blueprint, entity: Entity, table) -> None:
    """The routes of one row, `/{entity}/{id}`, with conditional requests (RFC 9110)."""
    rule = "/<int:row_id>"
    bp.add_url_rule(rule, "get_item", lambda row_id: _get_item(entity, table, row_id), methods=["GET"])
    bp.add_url_rule(rule, "replace_item", lambda row_id: _replace_item(entity, table, row_id), methods=["PUT"])
    bp.add_url_rule(rule, "delete_item", lambda row_id: _delete_item(entity, table, row_id), methods=["DELETE"])


def make_blueprint(entity: Entity) -> Blueprint:
    """The routes of one entity under `/<entity.name>`."""
    schemas = SCHEMAS[entity.name]
    table = TABLES[entity.name]
    bp = Blueprint(entity.name, __name__, url_prefix=f"/{entity.name}")

    bp.before_request(_check_request)

    @bp.get("")
    def list_items():
        query = _query(schemas.list_query)
        statement = repository.list_statement(entity, table, query)
        return page_response(statement, query.limit, Row._asdict, "id")

    @bp.post("")
    def create_item():
        body = _validated(schemas.write, _json_object(), entity.singular)
        row = repository.create_row(get_connection(), entity, table, body)
        location = url_for(f"{entity.name}.get_item", row_id=row["id"])
        return conditional.with_validator(json_response(row, 201, headers={"Location": location}), row)

    _add_row_routes(bp, entity, table)

    @bp.post("/bulk")
    def bulk_upsert():
        settings = _settings()
        batch = bulk_input.read_upserts(
            _body(), request.mimetype, settings.bulk_max_records, schemas.bulk_records, schemas.fast
        )
        result = merge.upsert(get_connection(), entity, table, batch, _upsert_versions(batch, settings))
        _settle(batch, result, settings, "upsert")
        return json_response(result)

    @bp.post("/bulk/delete")
    def bulk_delete():
        settings = _settings()
        batch = bulk_input.parse_deletes(_body(), request.mimetype, settings.bulk_max_records)
        result = merge.delete(get_connection(), table, batch, _admitted_versions(batch, settings))
        _settle(batch, result, settings, "delete")
        return json_response(result)

    bp.add_url_rule("/bulk/delete/plan", "plan_bulk_delete", lambda: _plan_deletes(table), methods=["POST"])

    def _settle(batch, result, settings, operation: str) -> None:
        """Keep rejections past the response, close those this request's writes superseded, count it."""
        items = []
        if result.errors:  # rare: read the records as sent again, to keep them for a replay
            items, _ = bulk_input.parse_body(_body(), request.mimetype, settings.bulk_max_records)
        touched = (record.source_id for _, record in batch.records)
        rejections.remember(get_connection(), table, result, items, touched)
        _count_bulk(entity.name, operation, result)

    # The pipelines' own refusals (source rows with invalid dates): kept like the bulk rejections.
    bp.add_url_rule("/rejections", "quarantine_rows", lambda: _quarantine(entity), methods=["POST"])

    @bp.get("/rejections")
    def list_rejections():
        query = _query(RejectionsQuery)
        statement = rejections.open_rejections(entity.name, query.after)
        return page_response(statement, query.limit, rejections.rejection_item, "source_id")

    @bp.get("/sync/digest")
    def sync_digest():
        query = _query(SyncWindowQuery)
        return json_response(sync_reads.digest(get_connection(), table, query))

    @bp.get("/sync/versions")
    def sync_versions():
        query = _query(SyncVersionsQuery)
        statement = sync_reads.versions(table, query)
        return page_response(statement, query.limit, Row._asdict, "source_id")

    @bp.get("/sync/mark")
    def sync_mark():
        _query(SyncMarkQuery)  # none taken: an unknown parameter is refused as elsewhere
        return json_response(sync_reads.sync_mark(get_connection(), entity.name))

    @bp.put("/sync/mark")
    def set_sync_mark():
        mark = _validated(SyncMarkWrite, _json_object(), "sync mark")
        return json_response(sync_reads.set_sync_mark(get_connection(), entity.name, mark.token))

    @bp.get("/sync/buckets")
    def sync_buckets():
        query = _query(SyncBucketsQuery)
        items = sync_reads.key_buckets(get_connection(), table, query.size, query.versions)
        # A bucket's key sum can pass 2**64, beyond orjson: the standard library writes any integer.
        return Response(json.dumps({"items": items}), mimetype="application/json")

    return bp
