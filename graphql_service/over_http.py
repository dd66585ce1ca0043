"""GraphQL over HTTP (https://graphql.github.io/graphql-over-http/): what a request says, in a body
(POST) or in the URL (GET), what is wrong with one that is not well formed, and which media type
and status the answer takes."""

from __future__ import annotations

from typing import NamedTuple

import orjson
from flask import Response, request

import http_body
from graphql_service import exact_json

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


class Refusal(NamedTuple):
    """Why a request is not run, and how it is answered."""

    message: str
    status: int = 400
    code: str = "BAD_REQUEST"
    # A batch's size: answered with an array of one error each, which batching clients (Apollo's
    # BatchHttpLink) match to their operations by position; a single answer where it is None.
    batch: int | None = None


# Apollo's automatic persisted queries send a query's hash alone first; told it is not supported (by
# this message and code, which Apollo's and urql's links read), they send the query itself from then on.
PERSISTED_QUERY_NOT_SUPPORTED = Refusal("PersistedQueryNotSupported", 400, "PERSISTED_QUERY_NOT_SUPPORTED")
_BATCH_ANSWERED_IN_FULL = 100  # a larger batch gets one error: a 1 MB body of `{},` would get 50 MB of them


def request_body() -> dict | Refusal:
    """The request's GraphQL parameters, or what is wrong with the request (GraphQL over HTTP: a JSON object)."""
    if request.mimetype != "application/json":
        return Refusal(f"Content-Type must be application/json, got {request.mimetype or 'none'}", 415)
    raw = http_body.read("GRAPHQL_MAX_CONTENT_LENGTH")  # BodyRefused: the app answers with its status
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    try:
        data = exact_json.loads(raw if charset in ("utf-8", "utf8") else raw.decode(charset))
    except exact_json.DuplicateKey as exc:  # a log or firewall reading the first would see another request
        return Refusal(f"the body is ambiguous: {exc}")
    except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        return Refusal(f"the body is not valid JSON: {exc}")
    if isinstance(data, list):
        batch = "batched requests (a JSON array) are not supported: send one JSON object per request"
        return Refusal(batch, batch=len(data) if 0 < len(data) <= _BATCH_ANSWERED_IN_FULL else None)
    if not isinstance(data, dict):
        return Refusal('send a JSON object: {"query": "...", "variables": {...}}')
    return _malformed_parameter(data) or data


# GraphQL over HTTP: each request parameter's JSON type; a request with another is not well formed.
_PARAMETERS = {"query": (str,), "operationName": (str, type(None)), "variables": (dict, type(None))}
_PARAMETERS["extensions"] = _PARAMETERS["variables"]


def _malformed_parameter(data: dict) -> Refusal | None:
    if "query" not in data or data["query"] == "":
        extensions = data.get("extensions")
        if isinstance(extensions, dict) and "persistedQuery" in extensions:
            return PERSISTED_QUERY_NOT_SUPPORTED
        return Refusal('the request has no "query": send {"query": "...", "variables": {...}}')
    for name, types in _PARAMETERS.items():
        if name in data and not isinstance(data[name], types):
            expected = " or ".join(
                "null" if t is type(None) else {str: "a string", dict: "an object"}[t] for t in types
            )
            return Refusal(f'"{name}" must be {expected}, got {type(data[name]).__name__}')
    return None


def query_parameters() -> dict | Refusal:
    """A GET request's GraphQL parameters (GraphQL over HTTP: `variables` and `extensions` as JSON
    text), or what is wrong with them."""
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        return Refusal(f"parameter {repeated[0]!r} is given more than once")
    data: dict = {name: request.args[name] for name in ("query", "operationName") if name in request.args}
    for name in ("variables", "extensions"):
        if name in request.args:
            try:
                data[name] = exact_json.loads(request.args[name])
            except ValueError as exc:
                return Refusal(f'"{name}" is not valid JSON: {exc}')
    return _malformed_parameter(data) or data


def response_type() -> str:
    """GraphQL over HTTP's own media type when the client names it (first on a tie, as it is the
    newer one), else application/json: what every client before it reads, and the answer to a
    missing Accept or */*."""
    accepts = request.accept_mimetypes
    if not any(kind == GRAPHQL_RESPONSE for kind, _ in accepts):
        return JSON
    return accepts.best_match([GRAPHQL_RESPONSE, JSON], default=JSON)


def status(result: dict, media_type: str) -> int:
    """GraphQL over HTTP: with application/json every well-formed request is a 200, its errors in
    the body; with application/graphql-response+json a request error (no `data` at all: the
    document did not parse or validate, a variable did not coerce) is a 400."""
    return 400 if media_type == GRAPHQL_RESPONSE and "data" not in result else 200


def request_error(refusal: Refusal) -> tuple[Response, int]:
    """A request the service refuses before GraphQL runs, in the media type the client asked for
    (a client that accepts only application/graphql-response+json must be able to read it)."""
    answer = {"errors": [{"message": refusal.message, "extensions": {"code": refusal.code}}]}
    body = orjson.dumps(answer if refusal.batch is None else [answer] * refusal.batch)
    return Response(body, mimetype=response_type()), refusal.status


def method_refusal(status: int, message: str) -> Response:
    """A method or path this service does not answer (`http_methods`, `http_paths`), as a GraphQL error
    document."""
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]})
    return Response(body, status=status, mimetype=JSON, headers={"X-Content-Type-Options": "nosniff"})
