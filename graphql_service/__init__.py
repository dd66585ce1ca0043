"""GraphQL service (Ariadne, schema first) that reads and writes Base B only through the REST API."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import orjson
from ariadne import graphql_sync, load_schema_from_path, make_executable_schema
from flask import Flask, Response, current_app, jsonify, request
from graphql import GraphQLError, OperationType, get_operation_ast
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from graphql_service import exact_json
from graphql_service.entity_schema import ENTITY_SDL
from graphql_service.errors import REQUEST_ERRORS, error_formatter
from graphql_service.explorer import explorer_blueprint
from graphql_service.loaders import RowLoader
from graphql_service.metrics import GraphQLMetrics, time_root_fields
from graphql_service.query_cache import QueryCache
from graphql_service.resolvers import BINDABLES
from graphql_service.rest_client import RestClient, RestError
from graphql_service.settings import GraphQLSettings

SCHEMA = make_executable_schema(
    [*ENTITY_SDL, load_schema_from_path(str(Path(__file__).parent / "schema"))], *BINDABLES, convert_names_case=True
)
time_root_fields(SCHEMA)


def _caller_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Strip only HTTP whitespace (SP, HTAB): str.strip() also drops NBSP, NEL and other Unicode
    # spaces, which turned a wrong "<token>\xa0" into the right token before it reached the API.
    return token.strip(" \t") or None if scheme.lower() == "bearer" else None


JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _request_body() -> dict | str:
    """The request's GraphQL parameters, or what is wrong with the request (GraphQL over HTTP: a JSON object)."""
    if request.mimetype != "application/json":
        return f"Content-Type must be application/json, got {request.mimetype or 'none'}"
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"Content-Encoding {encoding[:40]!r} is not supported: send the body uncompressed"
    raw = request.get_data()
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(raw) >= limit:  # werkzeug cuts a chunked body there, silently
        raise RequestEntityTooLarge(f"the body is larger than the limit of {limit} bytes (GRAPHQL_MAX_CONTENT_LENGTH)")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    try:
        data = exact_json.loads(raw if charset in ("utf-8", "utf8") else raw.decode(charset))
    except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        return f"the body is not valid JSON: {exc}"
    if isinstance(data, list):
        return "batched requests (a JSON array) are not supported: send one JSON object per request"
    if not isinstance(data, dict):
        return 'send a JSON object: {"query": "...", "variables": {...}}'
    return _malformed_parameter(data) or data


# GraphQL over HTTP: each request parameter's JSON type; a request with another is not well formed.
_PARAMETERS = {"query": (str,), "operationName": (str, type(None)), "variables": (dict, type(None))}
_PARAMETERS["extensions"] = _PARAMETERS["variables"]


def _malformed_parameter(data: dict) -> str | None:
    if "query" not in data or data["query"] == "":
        return 'the request has no "query": send {"query": "...", "variables": {...}}'
    for name, types in _PARAMETERS.items():
        if name in data and not isinstance(data[name], types):
            expected = " or ".join(
                "null" if t is type(None) else {str: "a string", dict: "an object"}[t] for t in types
            )
            return f'"{name}" must be {expected}, got {type(data[name]).__name__}'
    return None


def _query_parameters() -> dict | str:
    """A GET request's GraphQL parameters (GraphQL over HTTP: `variables` and `extensions` as JSON
    text), or what is wrong with them."""
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        return f"parameter {repeated[0]!r} is given more than once"
    data: dict = {name: request.args[name] for name in ("query", "operationName") if name in request.args}
    for name in ("variables", "extensions"):
        if name in request.args:
            try:
                data[name] = exact_json.loads(request.args[name])
            except ValueError as exc:
                return f'"{name}" is not valid JSON: {exc}'
    return _malformed_parameter(data) or data


def _is_mutation(queries: QueryCache, data: dict) -> bool:
    """Whether the operation to run is a mutation; a document that does not parse is left to the
    executor, which reports it."""
    try:
        document = queries.parser(None, data)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, data.get("operationName"))
    return operation is not None and operation.operation == OperationType.MUTATION


def _response_type() -> str:
    """GraphQL over HTTP's own media type when the client names it (first on a tie, as it is the
    newer one), else application/json: what every client before it reads, and the answer to a
    missing Accept or */*."""
    accepts = request.accept_mimetypes
    if not any(kind == GRAPHQL_RESPONSE for kind, _ in accepts):
        return JSON
    return accepts.best_match([GRAPHQL_RESPONSE, JSON], default=JSON)


def _status(result: dict, media_type: str) -> int:
    """GraphQL over HTTP: with application/json every well-formed request is a 200, its errors in
    the body; with application/graphql-response+json a request error (no `data` at all: the
    document did not parse or validate, a variable did not coerce) is a 400."""
    return 400 if media_type == GRAPHQL_RESPONSE and "data" not in result else 200


def _request_error(message: str, status: int, code: str = "BAD_REQUEST") -> tuple[Response, int]:
    return jsonify({"errors": [{"message": message, "extensions": {"code": code}}]}), status


def create_app(settings: GraphQLSettings | None = None) -> Flask:
    """The app factory: the one place a GraphQL app is built."""
    settings = settings or GraphQLSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, static_folder=None)  # the explorer blueprint serves static/ under /graphql/static
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    metrics = GraphQLMetrics(app, settings)
    client = RestClient(settings, observe=lambda method, status: metrics.rest_calls.labels(method, status).inc())
    app.extensions["rest_client"] = client
    queries = QueryCache(
        SCHEMA,
        max_depth=settings.max_depth,
        max_cost=settings.max_cost,
        introspection=settings.introspection,
        size=settings.query_cache_size,
        max_tokens=settings.max_tokens,
    )
    app.extensions["query_cache"] = queries

    def execute(data: dict, method: str):
        """Run one well-formed GraphQL request; by GET only a query (GraphQL over HTTP: a mutation
        must not run on a method meant to be safe)."""
        if method == "GET" and _is_mutation(queries, data):
            return _request_error("a mutation is sent with POST; GET runs queries only", 405) + ({"Allow": "POST"},)
        token = _caller_token()
        _, result = graphql_sync(
            SCHEMA,
            data,
            context_value={"client": client, "token": token, "loader": RowLoader(client, token), "metrics": metrics},
            # The cache applies every rule (limits and the introspection switch included).
            query_parser=queries.parser,
            query_validator=queries.validator(data),
            debug=settings.debug,
            error_formatter=error_formatter,
            logger=REQUEST_ERRORS,
        )
        errors = result.get("errors", [])
        if result.get("data", False) is None and not any("path" in error for error in errors):
            # No field ran: a request error (a variable that did not coerce, an operation not found),
            # which the GraphQL spec answers with no `data` entry at all; Ariadne writes data: null.
            del result["data"]
        for error in errors:
            metrics.errors.labels(error.get("extensions", {}).get("code", "UNKNOWN")).inc()
        # orjson: a tenth of the time of Flask's encoder, and fields keep the query's order, as the spec asks.
        try:
            body = orjson.dumps(result)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, e.g. in the cost error of a huge `limit`
            body = json.dumps(result).encode()
        media_type = _response_type()
        return Response(body, status=_status(result, media_type), mimetype=media_type)

    @app.post("/graphql")
    def graphql_endpoint():
        data = _request_body()
        if isinstance(data, str):
            return _request_error(data, 415 if data.startswith("Content-") else 400)
        return execute(data, "POST")

    def graphql_get():
        data = _query_parameters()
        return _request_error(data, 400) if isinstance(data, str) else execute(data, "GET")

    # GET /graphql: GraphiQL for a browser, with its code and styles served by this app (no CDN);
    # a query in the URL for a client that asks for JSON.
    app.register_blueprint(explorer_blueprint(title="Base B GraphQL", run_query=graphql_get))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        # A wrong method or path gets an answer GraphQL clients can read, not Werkzeug's HTML page.
        response = _request_error(error.description or error.name, error.code or 500)
        if error.code == 405:
            response[0].headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.error("request failed", exc_info=error)
        return _request_error("internal error", 500, "INTERNAL_SERVER_ERROR")

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.get("/ready")
    def ready():
        try:
            client.request("GET", "/ready")
        except RestError as exc:
            return jsonify({"status": "unavailable", "detail": exc.detail}), 503
        return jsonify({"status": "ready"})

    return app
