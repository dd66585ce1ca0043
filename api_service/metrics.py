"""Prometheus metrics of the API: HTTP metrics by prometheus-flask-exporter, plus bulk outcomes.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set, see gunicorn.conf.py) every worker writes its
samples to that folder and `/metrics` sums them, so a scrape sees the whole server.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from prometheus_client import CollectorRegistry, Counter
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from api_service.schemas import BulkResult
from api_service.settings import ApiSettings

BULK_OUTCOMES = ("inserted", "updated", "unchanged", "stale", "deleted", "not_found", "rejected")


class ApiMetrics:
    """The app's metrics, in a registry of its own so several apps can live in one process."""

    def __init__(self, app: Flask, settings: ApiSettings):
        registry = CollectorRegistry()
        options = dict(
            registry=registry,
            group_by="url_rule",  # the route template, never the raw path with ids in it
            defaults_prefix="api",
            excluded_paths=["/metrics", "/health"],
            default_labels={"service": "api"},
        )
        if settings.prometheus_multiproc_dir:
            # gunicorn.conf.py creates it; a one-off process (a CLI command) may come first.
            Path(settings.prometheus_multiproc_dir).mkdir(parents=True, exist_ok=True)
            self.exporter = GunicornInternalPrometheusMetrics(app, **options)
        else:
            self.exporter = PrometheusMetrics(app, **options)
        self.exporter.info("api_info", "REST API over Base B", version="0.1.0")
        self.bulk_records = Counter(
            "api_bulk_records_total",
            "Records of bulk requests by entity, operation and outcome",
            ["entity", "operation", "outcome"],
            registry=registry,
        )

    def count_bulk(self, entity: str, operation: str, result: BulkResult) -> None:
        for outcome in BULK_OUTCOMES:
            value = getattr(result, outcome)
            if value:
                self.bulk_records.labels(entity, operation, outcome).inc(value)


def init_app(app: Flask, settings: ApiSettings) -> ApiMetrics:
    metrics = ApiMetrics(app, settings)
    app.extensions["api_metrics"] = metrics
    return metrics
