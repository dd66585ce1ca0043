"""`make up` on embedded defaults, used as a user would, then `make down`.

The platform (tests/e2e/embedded/conftest.py) runs with the event maker changing employees every
3 s, so the event path is busy from the start; articles change only through the batch path.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from testbed.platform import base_a_versions, base_b_versions, wait_for

pytestmark = pytest.mark.slow
DAG = "base_a_to_base_b"


def test_make_up_made_the_change_topics_before_airflow(platform):
    """With BASE_A_CHURN_EVERY=0 nothing published, so nothing made the topics the events DAG's asset
    watcher reads: the triggerer logged UNKNOWN_TOPIC_OR_PART with a traceback every 2 s (outside
    probe). make up makes them before Airflow starts, whatever the churn setting."""
    topics = AdminClient({"bootstrap.servers": platform.kafka_bootstrap}).list_topics(timeout=10).topics
    assert {"base_a.base_a.personal", "base_a.dlq"} <= set(topics)  # the demo mapping's employees
    made = platform.up_log.read_text()
    assert made.index("topics on ") < made.index("started airflow-triggerer"), made[-3000:]
    triggerer = (platform.var / "log" / "airflow-triggerer.log").read_text()
    assert "UNKNOWN_TOPIC_OR_PART" not in triggerer and "waiting for Kafka topic" not in triggerer


def test_a_run_triggered_through_airflows_rest_api_succeeds(platform):
    run = platform.airflow("POST", f"/dags/{DAG}/dagRuns", json={"logical_date": None, "conf": {}})
    path = f"/dags/{DAG}/dagRuns/{run['dag_run_id']}"
    state = wait_for(
        "the triggered run to finish",
        lambda: (s := platform.airflow("GET", path)["state"]) in ("success", "failed") and s,
        timeout=300,
    )
    tasks = platform.airflow("GET", f"{path}/taskInstances")["task_instances"]
    assert state == "success", [(t["task_id"], t["state"]) for t in tasks]
    assert tasks and {t["state"] for t in tasks} <= {"success", "skipped"}


def test_graphql_reads_what_the_batch_dag_synced(platform):
    # Articles change only through the batch DAG, which has run (make up, then the test above).
    assert base_b_versions(platform, "articles") == base_a_versions(
        platform.base_a_url, "articles", platform.mapping_file
    )
    one = platform.graphql("{ getArticlesPage(limit: 1) { items { id title } } }")["getArticlesPage"]["items"][0]
    article = platform.graphql("query($id: ID!) { getArticle(id: $id) { id title } }", id=one["id"])["getArticle"]
    assert article == one


def test_changes_in_base_a_arrive_through_the_event_path(platform):
    def events_applied() -> float:
        return bulk_records(platform, path="events", outcome="updated")

    wait_for("the event path to apply the event maker's updates", events_applied, timeout=240)
    # Stop the event maker (it finishes its round: every change it made has its event), then
    # Base B must catch up with Base A with no batch run in between.
    os.killpg(int((platform.var / "run" / "event-maker.pid").read_text()), signal.SIGTERM)
    wait_for("the event maker to stop", lambda: not platform_process_alive(platform, "event-maker"), timeout=60)
    stopped_at = time.time()
    expected = base_a_versions(platform.base_a_url, "employees", platform.mapping_file)
    wait_for(
        "Base B's employees to equal Base A's",
        lambda: base_b_versions(platform, "employees") == expected,
        timeout=240,
        every=3,
    )
    assert platform.runs_started_since(DAG, stopped_at) == 0, "a batch run may have done the event path's work"


def test_the_pipeline_metrics_are_on_the_apis_metrics_and_prometheus_scrapes_the_services(platform):
    for path in ("batch", "events"):
        assert bulk_records(platform, path=path, operation="upsert") > 0, f"no {path} rows counted by the API"

    def targets() -> dict[str, str]:
        answer = requests.get(f"{platform.prometheus_url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] for t in answer["data"]["activeTargets"]}

    # Only what make up started, every target up: no relay (a SQLite Base A) and no statsd-exporter,
    # whose `up == 0` would fire ServiceDown on a healthy platform.
    want = {"api": "up", "graphql": "up", "prometheus": "up"}
    wait_for("Prometheus to scrape the API, GraphQL and itself, and nothing else", lambda: targets() == want)


def test_a_dead_scheduler_is_started_again(platform):
    """An Airflow process that dies (a crash, a bug: Airflow 3.3's `tasks test` can kill the scheduler)
    is started again by its keeper, in the same process group `make down` stops."""

    before = platform.kept_processes("airflow-scheduler", b"scheduler")
    os.kill(min(before), signal.SIGKILL)  # the scheduler itself (its pool's processes come after it)
    wait_for("a new scheduler", lambda: platform.kept_processes("airflow-scheduler", b"scheduler") - before, timeout=90)
    log = (platform.var / "log" / "airflow-scheduler.log").read_text()
    assert "exited with status" in log and "starting it again" in log


@pytest.mark.parametrize("name", ["api", "graphql"])
def test_a_dead_service_is_started_again(platform, name):
    """Found from outside: the API's or GraphQL's gunicorn master killed stayed down until `make down`
    (ServiceDown fired with no way back); Airflow and the relay had a keeper, they none."""
    program = f"gunicorn: master [{name}_service.wsgi:app]".encode()  # its title (setproctitle)
    before = platform.kept_processes(name, program)
    os.kill(min(before), signal.SIGKILL)
    url = platform.api_url if name == "api" else platform.graphql_url
    wait_for(f"a new {name} master", lambda: platform.kept_processes(name, program) - before, timeout=60)
    wait_for(f"{name} healthy again", lambda: _healthy(f"{url}/health"), timeout=60)
    assert "starting it again" in (platform.var / "log" / f"{name}.log").read_text()


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_make_down_stops_every_process_it_started(platform):
    assert platform.leftover_processes(), "the platform should be running before make down"
    assert platform.make("down", timeout=180).returncode == 0
    assert platform.leftover_processes() == []
    assert not list((platform.var / "run").glob("*.pid"))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{platform.api_url}/health", timeout=5)


def bulk_records(platform, **labels: str) -> float:
    """The sum of api_bulk_records_total samples matching the labels, from the API's /metrics."""
    text = requests.get(f"{platform.api_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "api_bulk_records_total" and labels.items() <= sample.labels.items()
    )


def platform_process_alive(platform, name: str) -> bool:
    try:
        os.killpg(int((platform.var / "run" / f"{name}.pid").read_text()), 0)
    except ProcessLookupError:
        return False
    return True
