"""Prometheus metrics of the API: HTTP metrics by prometheus-flask-exporter, plus bulk outcomes.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set, see gunicorn.conf.py) every worker writes its
samples to that folder and `/metrics` sums them, so a scrape sees the whole server.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from api_service.schemas import BulkResult
from api_service.settings import ApiSettings

log = logging.getLogger(__name__)

BULK_OUTCOMES = ("inserted", "updated", "unchanged", "stale", "deleted", "not_found", "rejected")
# Which pipeline sent a bulk request (header X-Sync-Path); anything else counts as a direct "api" client.
SYNC_PATHS = ("batch", "events")
SYNC_PATH_HEADER = "X-Sync-Path"


def sync_path(header_value: str | None) -> str:
    """The `path` label: one of SYNC_PATHS, else "api", so a client cannot grow the label set."""
    value = (header_value or "").strip().lower()
    return value if value in SYNC_PATHS else "api"


class ApiMetrics:
    """The app's metrics, in a registry of its own so several apps can live in one process."""

    def __init__(self, app: Flask, settings: ApiSettings):
        registry = CollectorRegistry()
        options = dict(
            registry=registry,
            group_by="url_rule",  # the route template, never the raw path with ids in it
            defaults_prefix="api",
            excluded_paths=["/metrics$", "/health$", "/ready$"],  # probes are no traffic (regexes: anchored)
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
            "Records of bulk requests by entity, sync path (batch, events or api), operation and outcome",
            ["entity", "path", "operation", "outcome"],
            registry=registry,
        )
        self.bulk_last_write = Gauge(
            "api_bulk_last_write_timestamp_seconds",
            "When a bulk request of this entity and sync path last changed rows in Base B (Unix time)",
            ["entity", "path"],
            registry=registry,
            multiprocess_mode="max",  # the newest over every gunicorn worker
        )
        # A page whose database failed after its 200 began: the request metrics count it a success.
        self.pages_cut_short = Counter(
            "api_pages_cut_short_total",
            "List pages answered 200 whose body was cut short (Base B failed after the answer began), by route",
            ["url_rule"],
            registry=registry,
        )

    def count_bulk(self, entity: str, path: str, operation: str, result: BulkResult) -> None:
        for outcome in BULK_OUTCOMES:
            # Every outcome's series exists from the first request on, at 0 until it happens:
            # Prometheus' increase() and rate() need a sample before the first count.
            count = getattr(result, outcome)
            if count < 0:
                # A counting bug must not turn a committed write into a 500 (Counter.inc raises
                # ValueError below zero): log it loudly and count nothing for that outcome.
                log.error("bulk %s of %s counted %s = %d; not recorded", operation, entity, outcome, count)
                count = 0
            self.bulk_records.labels(entity, path, operation, outcome).inc(count)
        # Only a request that changed rows: one whose records were all unchanged, stale or rejected
        # wrote nothing, and a pipeline whose every record is refused must not look fresh.
        if result.inserted or result.updated or result.deleted:
            self.bulk_last_write.labels(entity, path).set_to_current_time()


def init_app(app: Flask, settings: ApiSettings) -> ApiMetrics:
    metrics = ApiMetrics(app, settings)
    app.extensions["api_metrics"] = metrics
    return metrics
