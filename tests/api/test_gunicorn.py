"""The API under gunicorn with two workers: /metrics sums every worker's samples."""

from __future__ import annotations

import re

import pytest
import requests

from api_service import migrate
from testbed.servers import api_server
from tests.api.test_service import sample

pytestmark = pytest.mark.slow


@pytest.fixture
def gunicorn_api(postgres_database, tmp_path):
    migrate.upgrade(postgres_database)
    metrics_dir = tmp_path / "metrics"
    with api_server(postgres_database, "gunicorn-token", tmp_path / "gunicorn.log", 2, metrics_dir) as base:
        yield base, metrics_dir


def _requests_to_articles(text: str) -> float:
    pattern = (
        r'api_http_request_duration_seconds_count\{[^}]*method="GET"[^}]*status="200"'
        r'[^}]*url_rule="/articles"[^}]*\} (\S+)'
    )
    return sum(float(v) for v in re.findall(pattern, text))


def _workers_with_samples(metrics_dir) -> set[str]:
    return {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("histogram_*.db")}


def test_metrics_aggregate_across_workers(gunicorn_api):
    gunicorn_api, metrics_dir = gunicorn_api
    sent = 0
    # New connections until both workers have served some (the kernel picks the worker), bounded.
    while sent < 40 or (len(_workers_with_samples(metrics_dir)) < 2 and sent < 400):
        response = requests.get(f"{gunicorn_api}/articles", headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200
        sent += 1
    # Both workers wrote samples, so the sums below really come from two files.
    assert len(_workers_with_samples(metrics_dir)) == 2
    for _ in range(5):
        text = requests.get(f"{gunicorn_api}/metrics", headers={"Connection": "close"}, timeout=10).text
        assert _requests_to_articles(text) == sent
    assert text.count("# TYPE api_http_request_duration_seconds histogram") == 1


def test_bulk_and_crud_work_under_gunicorn(gunicorn_api):
    gunicorn_api, _ = gunicorn_api
    headers = {"Authorization": "Bearer gunicorn-token"}
    records = [{"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": f"t{i}"} for i in range(1, 101)]
    result = requests.post(f"{gunicorn_api}/articles/bulk", json=records, headers=headers, timeout=30).json()
    assert result["inserted"] == 100
    created = requests.post(f"{gunicorn_api}/articles", json={"title": "x"}, headers=headers, timeout=10)
    assert created.status_code == 201
    assert requests.get(f"{gunicorn_api}{created.headers['Location']}", timeout=10).json()["title"] == "x"
    metrics = requests.get(f"{gunicorn_api}/metrics", timeout=10).text
    assert (
        sample(metrics, "api_bulk_records_total", entity="articles", path="api", operation="upsert", outcome="inserted")
        == 100
    )


def test_metrics_without_a_multiprocess_folder_set_are_served_from_the_one_it_makes(postgres_database, tmp_path):
    """As a user starts it (no PROMETHEUS_MULTIPROC_DIR): the settings file makes a folder, and the
    metrics must go there (prometheus_client, imported before it, kept them in each worker: empty)."""
    migrate.upgrade(postgres_database)
    with api_server(postgres_database, "gunicorn-token", tmp_path / "gunicorn.log", 2, metrics_dir=False) as base:
        for _ in range(10):
            assert requests.get(f"{base}/articles", headers={"Connection": "close"}, timeout=10).status_code == 200
        text = requests.get(f"{base}/metrics", timeout=10).text
    assert _requests_to_articles(text) == 10, text[:500]
