"""GraphQL service (Ariadne, schema first) that reads and writes Base B only through the REST API."""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from pathlib import Path

import orjson
from ariadne import graphql_sync, load_schema_from_path, make_executable_schema
from flask import Flask, Response, jsonify, request
from graphql import GraphQLError, OperationType, get_operation_ast
from werkzeug.exceptions import HTTPException

import http_body
import http_headers
from graphql_service import over_http
from graphql_service.entity_schema import ENTITY_SDL
from graphql_service.errors import REQUEST_ERRORS, error_formatter_for
from graphql_service.explorer import explorer_blueprint
from graphql_service.loaders import RowLoader
from graphql_service.metrics import GraphQLMetrics, time_root_fields
from graphql_service.over_http import Refusal
from graphql_service.query_cache import QueryCache
from graphql_service.resolvers import BINDABLES
from graphql_service.rest_client import (
    BoundedClient,
    ByteBudget,
    NotTheApi,
    RequestTimedOut,
    RestClient,
    RestError,
)
from graphql_service.settings import GraphQLSettings
from http_methods import refuse_unknown_methods
from http_paths import refuse_empty_segments

SCHEMA = make_executable_schema(
    [*ENTITY_SDL, load_schema_from_path(str(Path(__file__).parent / "schema"))], *BINDABLES, convert_names_case=True
)
time_root_fields(SCHEMA)

# /ready asks the REST API once, briefly: a probe that waited for a hung API (three attempts of
# GRAPHQL_TIMEOUT) answered 503 after 30 s, past any orchestrator's probe timeout.
READY_PROBE_SECONDS = 3.0


def _not_ready_reason(error: RestError) -> str:
    """Why /ready says unavailable. An answer of the REST API's (or of the gateway in front of it) is
    named by its status: a gateway's HTML error page has no detail, and its reason alone ("Bad
    Gateway") did not say who answered it."""
    if error.status == 0 or isinstance(error, NotTheApi):  # nothing answered, or not the REST API
        return error.detail
    try:
        phrase = HTTPStatus(error.status).phrase
    except ValueError:  # a status Python does not name: the reason the answer gave, if any
        phrase = ""
    answered = f"the REST API answered {error.status} {phrase or error.detail}".rstrip()
    return f"{answered}: {error.detail}" if error.detail not in ("", phrase) and phrase else answered


def _caller_token() -> str | None:
    """The caller's bearer token; None when it sends no Authorization (GRAPHQL_SERVICE_TOKEN applies),
    "" when it sends one that is no usable bearer token (Basic, `Bearer ` with none): the REST API then
    gets no token and refuses a write (401), as it would the caller's header. Both were None, and the
    service token wrote in the name of a caller whose credentials were refused."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    # Strip only HTTP whitespace (SP, HTAB): str.strip() also drops NBSP, NEL and other Unicode
    # spaces, which turned a wrong "<token>\xa0" into the right token before it reached the API.
    return token.strip(" \t") if scheme.lower() == "bearer" else ""


def _is_mutation(queries: QueryCache, data: dict) -> bool:
    """Whether the operation to run is a mutation; a document that does not parse is left to the
    executor, which reports it."""
    try:
        document = queries.parser(None, data)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, data.get("operationName"))
    return operation is not None and operation.operation == OperationType.MUTATION


def _refuse(metrics: GraphQLMetrics, refusal: Refusal):
    """A request answered with an error before GraphQL runs, counted as execute() counts its errors."""
    metrics.errors.labels(refusal.code).inc(refusal.batch or 1)
    return over_http.request_error(refusal)


def _flask_app(settings: GraphQLSettings) -> Flask:
    """The Flask app with its logging, before routes; says once if GRAPHQL_SERVICE_TOKEN is set: it
    lends its rights (writes, and the reads a REST API with API_READ_REQUIRES_TOKEN would refuse) to
    anyone who can reach GraphQL without a token. Kept, as the seed system's clients rely on it, but said."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, static_folder=None)  # the explorer blueprint serves static/ under /graphql/static
    if settings.service_token:
        app.logger.warning(
            "GRAPHQL_SERVICE_TOKEN is set: every GraphQL caller that sends no Authorization acts with it,"
            " reads and writes; set it only where GraphQL is reachable by trusted clients alone"
        )
    return app


def create_app(settings: GraphQLSettings | None = None) -> Flask:
    """The app factory: the one place a GraphQL app is built."""
    settings = settings or GraphQLSettings()
    app = _flask_app(settings)
    # /graphql//static/x is no route: a 404, not a 308 HTML redirect to a URL built from the Host header.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    http_headers.init_app(app)
    app.wsgi_app = refuse_empty_segments(
        refuse_unknown_methods(app, over_http.method_refusal), over_http.method_refusal
    )
    metrics = GraphQLMetrics(app, settings)
    client = RestClient(
        settings,
        observe=lambda method, status: metrics.rest_calls.labels(method, status).inc(),
        observe_retry=lambda method, reason: metrics.rest_retries.labels(method, reason).inc(),
    )
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
            return _refuse(metrics, Refusal("a mutation is sent with POST; GET runs queries only", 405)) + (
                {"Allow": "POST"},
            )
        token = _caller_token()
        # One deadline for every REST call of the request: the fields run one after another, and
        # 200 row reads of a hung API, each with its timeout and retries, held a worker for 100 minutes.
        # One budget of REST answer bytes too: the cost counts rows, not their size, and 1,000 rows of
        # 1 MB read 1 GB and built a 3 GB answer in the worker.
        bounded = BoundedClient(
            client, time.monotonic() + settings.request_timeout_seconds, ByteBudget(settings.max_rest_bytes)
        )
        _, result = graphql_sync(
            SCHEMA,
            data,
            context_value={"client": bounded, "token": token, "loader": RowLoader(bounded, token), "metrics": metrics},
            # The cache applies every rule (limits and the introspection switch included).
            query_parser=queries.parser,
            query_validator=queries.validator(data),
            debug=settings.debug,
            error_formatter=error_formatter_for(settings.introspection),
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
        media_type = over_http.response_type()
        return Response(body, status=over_http.status(result, media_type), mimetype=media_type)

    @app.post("/graphql")
    def graphql_endpoint():
        data = over_http.request_body()
        return _refuse(metrics, data) if isinstance(data, Refusal) else execute(data, "POST")

    def graphql_get():
        data = over_http.query_parameters()
        return _refuse(metrics, data) if isinstance(data, Refusal) else execute(data, "GET")

    # GET /graphql: GraphiQL for a browser, with its code and styles served by this app (no CDN);
    # a query in the URL for any other client (GraphQL over HTTP: no Accept or */* means JSON).
    app.register_blueprint(explorer_blueprint(title="Base B GraphQL", run_query=graphql_get))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        # A wrong method or path gets an answer GraphQL clients can read, not Werkzeug's HTML page.
        response = _refuse(metrics, Refusal(error.description or error.name, error.code or 500))
        if error.code == 405:
            response[0].headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    @app.errorhandler(http_body.BodyRefused)
    def body_refused(refused: http_body.BodyRefused):
        response, status = _refuse(metrics, Refusal(refused.detail, refused.status))
        response.headers.update(refused.headers)
        return response, status

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.error("request failed", exc_info=error)
        return _refuse(metrics, Refusal("internal error", 500, "INTERNAL_SERVER_ERROR"))

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.get("/ready")
    def ready():
        probe = min(READY_PROBE_SECONDS, settings.timeout)
        try:
            client.request("GET", "/ready", deadline=time.monotonic() + probe, retry=False)
        except RequestTimedOut:
            return jsonify({"status": "unavailable", "detail": f"the REST API did not answer within {probe:g} s"}), 503
        except RestError as exc:
            return jsonify({"status": "unavailable", "detail": _not_ready_reason(exc)}), 503
        return jsonify({"status": "ready"})

    return app
