"""Prometheus metrics of the GraphQL service: HTTP, resolver latency, errors, REST calls."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask
from graphql import GraphQLFieldResolver, GraphQLResolveInfo, GraphQLSchema, default_field_resolver
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from graphql_service.settings import GraphQLSettings


class GraphQLMetrics:
    """The service's metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self, app: Flask, settings: GraphQLSettings):
        registry = CollectorRegistry()
        options = dict(
            registry=registry,
            group_by="url_rule",
            defaults_prefix="graphql",
            excluded_paths=["/metrics$", "/health$", "/ready$"],  # probes are no traffic (regexes: anchored)
            default_labels={"service": "graphql"},
        )
        if settings.prometheus_multiproc_dir:
            Path(settings.prometheus_multiproc_dir).mkdir(parents=True, exist_ok=True)
            GunicornInternalPrometheusMetrics(app, **options)
        else:
            PrometheusMetrics(app, **options)
        self.resolver_seconds = Histogram(
            "graphql_resolver_seconds", "Time in root resolvers", ["field"], registry=registry
        )
        self.errors = Counter("graphql_errors_total", "GraphQL errors by code", ["code"], registry=registry)
        self.rest_calls = Counter(
            "graphql_rest_calls_total",
            # status: the answer's, "unreachable", "deadline", or "too_large" (a read stopped at the
            # request's GRAPHQL_MAX_REST_BYTES)
            "Calls to the REST API by their outcome, each counted once whatever its retries",
            ["method", "status"],
            registry=registry,
        )
        # Retries apart: HTTP requests sent = calls + retries, and retries alone show an API failing.
        self.rest_retries = Counter(
            "graphql_rest_retries_total",
            "REST calls sent again (each one more HTTP request), by what the attempt before got",
            ["method", "reason"],
            registry=registry,
        )


def time_root_fields(schema: GraphQLSchema) -> None:
    """Times every Query and Mutation field into the request's metrics (`info.context["metrics"]`).

    The resolvers are wrapped once, rather than timed by graphql-core middleware, since middleware
    runs for every field: a 100-item page has 500 fields that are plain dictionary reads.
    """
    for root in (schema.query_type, schema.mutation_type):
        for field in root.fields.values() if root else ():
            field.resolve = _timed(field.resolve or default_field_resolver)


def _timed(resolve: GraphQLFieldResolver) -> GraphQLFieldResolver:
    def timed(obj, info: GraphQLResolveInfo, **kwargs):
        started = time.perf_counter()
        try:
            return resolve(obj, info, **kwargs)
        finally:
            info.context["metrics"].resolver_seconds.labels(info.field_name).observe(time.perf_counter() - started)

    return timed
