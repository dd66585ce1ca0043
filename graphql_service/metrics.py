"""Prometheus metrics of the GraphQL service: HTTP, resolver latency, errors, REST calls."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask
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
            excluded_paths=["/metrics", "/health"],
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
            "graphql_rest_calls_total", "Calls to the REST API", ["method", "status"], registry=registry
        )

    def resolve(self, resolve, obj, info, **kwargs):
        """graphql-core middleware (an object with `resolve`): times root fields only, since
        nested fields are plain dictionary reads."""
        if info.parent_type.name not in ("Query", "Mutation"):
            return resolve(obj, info, **kwargs)
        started = time.perf_counter()
        try:
            return resolve(obj, info, **kwargs)
        finally:
            self.resolver_seconds.labels(info.field_name).observe(time.perf_counter() - started)
