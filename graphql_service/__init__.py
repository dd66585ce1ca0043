"""GraphQL service (Ariadne, schema first) that reads and writes Base B only through the REST API."""

from __future__ import annotations

import logging
from pathlib import Path

from ariadne import graphql_sync, load_schema_from_path, make_executable_schema
from ariadne.explorer import ExplorerGraphiQL
from flask import Flask, Response, jsonify, request

from graphql_service.errors import error_formatter
from graphql_service.limits import validation_rules
from graphql_service.loaders import RowLoader
from graphql_service.metrics import GraphQLMetrics
from graphql_service.resolvers import BINDABLES
from graphql_service.rest_client import RestClient, RestError
from graphql_service.settings import GraphQLSettings

SCHEMA = make_executable_schema(
    load_schema_from_path(str(Path(__file__).parent / "schema")), *BINDABLES, convert_names_case=True
)


def _caller_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def create_app(settings: GraphQLSettings | None = None) -> Flask:
    """The app factory: the one place a GraphQL app is built."""
    settings = settings or GraphQLSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__)
    metrics = GraphQLMetrics(app, settings)
    client = RestClient(settings, observe=lambda method, status: metrics.rest_calls.labels(method, status).inc())
    app.extensions["rest_client"] = client
    explorer_html = ExplorerGraphiQL(title="Base B GraphQL").html(None)
    rules = validation_rules(settings.max_depth, settings.max_cost)

    @app.get("/graphql")
    def explorer():
        return Response(explorer_html, mimetype="text/html")

    @app.post("/graphql")
    def graphql_endpoint():
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            message = 'send a JSON object: {"query": "...", "variables": {...}}'
            return jsonify({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}), 400
        token = _caller_token()
        success, result = graphql_sync(
            SCHEMA,
            data,
            context_value={"client": client, "token": token, "loader": RowLoader(client, token)},
            validation_rules=rules,
            introspection=settings.introspection,
            debug=settings.debug,
            error_formatter=error_formatter,
            middleware=[metrics],
            logger=None,
        )
        for error in result.get("errors", []):
            metrics.errors.labels(error.get("extensions", {}).get("code", "UNKNOWN")).inc()
        return jsonify(result), 200 if success else 400

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
