"""Grafana dashboards as files: structure, the metric names they use, and every query run by a real Prometheus.

Grafana itself cannot run here; Prometheus can. A real Prometheus scrapes a real API process while
a real batch sync (the sync library, from a SQLite Base A) loads Base B through it, and every
panel's query is sent to it: a query it cannot parse fails the test, and the service panels on the
API's series (the 5xx ratio too, with no 5xx) and the pipeline panels the API feeds (rows synced,
stale and rejected, last write) must return data.
The other pipeline series travel through statsd-exporter, which cannot be installed here (no Debian
package, no Go toolchain): for them the test checks that each metric they name is one the StatsD
mapping produces from names captured from a real Airflow run.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import requests
import yaml
from sqlalchemy import text

from api_service import migrate
from base_sync import records, sync
from base_sync.api_client import BaseBApi
from base_sync.demo import generate
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, source_engine
from base_sync.source_schema import create_schema
from base_sync.state import MemoryStateStore
from testbed.servers import REPO, api_server, free_port, require_program, wait_for_http

GRAFANA = REPO / "monitoring" / "grafana"
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
MAPPING = yaml.safe_load((REPO / "monitoring" / "statsd" / "mapping.yml").read_text())["mappings"]
# Metrics the services and the relay serve on their own /metrics, by name prefix.
SERVICE_PREFIXES = ("api_", "graphql_", "relay_", "up")


def targets(dashboard: dict) -> list[tuple[str, str]]:
    return [(panel["title"], t["expr"]) for panel in dashboard["panels"] for t in panel["targets"]]


def as_promql(expr: str) -> str:
    """Grafana's interval variables replaced the way Grafana would."""
    return expr.replace("$__rate_interval", "1m").replace("$__range", "5m")


def test_dashboards_are_provisioned_with_the_prometheus_data_source():
    assert set(DASHBOARDS) == {"pipelines", "services"}
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    for name, dashboard in DASHBOARDS.items():
        assert dashboard["uid"] and dashboard["title"], name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid and panel["targets"], (name, panel["title"])
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_pipelines_dashboard_shows_what_the_issue_asks_for():
    titles = " ".join(title.lower() for title, _ in targets(DASHBOARDS["pipelines"]))
    for topic in ("runs by state", "duration", "failures", "rows synced", "freshness", "event lag", "dead letters"):
        assert topic in titles, topic


def test_pipeline_panels_name_only_metrics_the_statsd_mapping_or_a_service_produces():
    produced = {m["name"] for m in MAPPING if m.get("action") != "drop"}
    # A mapping's name may hold a captured field ($1): it matches any word there.
    patterns = [re.compile("[a-z_]+".join(re.escape(part) for part in re.split(r"\$\d+", n))) for n in produced]
    for title, expr in targets(DASHBOARDS["pipelines"]):
        for metric in re.findall(r"\b(?:airflow|base_sync)_[a-z_]+", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert any(p.fullmatch(base) for p in patterns), f"{title}: {metric} is not produced by the mapping"


def test_a_percent_panel_shows_only_ratios():
    """A rate drawn as a percentage reads as nonsense (GraphQL's errors per second were on the 5xx ratio)."""
    for name, dashboard in DASHBOARDS.items():
        for panel in dashboard["panels"]:
            if panel["fieldConfig"]["defaults"].get("unit") == "percentunit":
                for target in panel["targets"]:
                    assert " / " in target["expr"], (name, panel["title"], target["expr"])


SECONDS = re.compile(r"_seconds(?:_bucket)?(?![_a-z])")  # a duration or a time, not a histogram's _count


def test_a_panel_mixing_seconds_and_counts_gives_each_query_its_unit():
    """One unit for a panel drew the event lag (seconds) and the messages waiting on one axis as
    either; a per-query unit override puts them on axes of their own."""
    for name, dashboard in DASHBOARDS.items():
        for panel in dashboard["panels"]:
            seconds = {t["refId"] for t in panel["targets"] if SECONDS.search(t["expr"])}
            if seconds and seconds != {t["refId"] for t in panel["targets"]}:
                overridden = {
                    o["matcher"]["options"]
                    for o in panel["fieldConfig"]["overrides"]
                    if o["matcher"]["id"] == "byFrameRefID" and {"id": "unit", "value": "s"} in o["properties"]
                }
                assert overridden == seconds, (name, panel["title"])
                assert panel["fieldConfig"]["defaults"]["unit"] != "s", (name, panel["title"])


def test_the_up_panel_tells_the_replicas_apart():
    (panel,) = [p for p in DASHBOARDS["services"]["panels"] if p["targets"][0]["expr"] == "up"]
    assert "{{instance}}" in panel["targets"][0]["legendFormat"]


def test_statsd_counter_panels_count_a_series_new_in_the_range():
    """statsd-exporter makes a series at its first sample: increase() alone would show 0 for a first
    failed run or dead letter (tests/monitoring/test_prometheus.py, the alerts' twin)."""
    from tests.monitoring.test_prometheus import new_series_uncounted

    uncounted = [(title, new_series_uncounted(expr)) for d in DASHBOARDS.values() for title, expr in targets(d)]
    assert [(title, found) for title, found in uncounted if found] == []


def test_statsd_counter_panels_show_a_new_series_at_once_and_not_an_old_counter_in_a_young_prometheus(tmp_path):
    """Prometheus has scraped statsd-exporter for 5 minutes, the panels' range is 30m. A first failed
    run, failed task, held delete, dead letter at minute 3 shows at once: its series appeared while the
    exporter was scraped. A counter the exporter had before Prometheus's first scrape shows no rise.
    promtool's PromQL engine evaluates the panels' queries on these series."""
    promtool = require_program("promtool", "Debian package prometheus; `make test` installs it when root")
    target = 'job="statsd-exporter", instance="{}:9102"'
    old, new = "1x40", "_x3 {}x37"  # there since the first scrape; appeared at minute 3
    series = (
        [(f"up{{{target.format(i)}}}", "1x40") for i in ("old", "new")]
        + [
            (f'airflow_dagrun_duration_seconds_count{{dag_id="{d}", state="failed", {target.format(d)}}}', v)
            for d, v in (("old", old), ("new", new.format(1)))
        ]
        + [
            (f'airflow_ti_finish_total{{dag_id="{d}", task_id="t", state="failed", {target.format(d)}}}', v)
            for d, v in (("old", old), ("new", new.format(1)))
        ]
        + [
            (f'base_sync_rows_total{{path="events", entity="{e}", outcome="held_deletes", {target.format(e)}}}', v)
            for e, v in (("old", "150x40"), ("new", new.format(20)))
        ]
        + [
            (f'base_sync_rows_total{{path="batch", entity="{e}", outcome="quarantined", {target.format(e)}}}', v)
            for e, v in (("old", "4x40"), ("new", new.format(1)))
        ]
        + [
            (f'base_sync_dead_letters_total{{kind="{k}", {target.format(i)}}}', v)
            for i, k, v in (("old", "Rejected", "7x40"), ("new", "BadEvent", new.format(2)))
        ]
    )
    panels = {panel["title"]: panel["targets"] for panel in DASHBOARDS["pipelines"]["panels"]}
    expected = {
        ("DAG runs by state", 0): [('{dag_id="new", state="failed"}', 1), ('{dag_id="old", state="failed"}', 0)],
        ("Task failures", 0): [('{dag_id="new", task_id="t"}', 1), ('{dag_id="old", task_id="t"}', 0)],
        ("Rows not applied: stale, rejected, quarantined, held deletes", 1): [
            ('{path="events", entity="new", outcome="held_deletes"}', 20),
            ('{path="events", entity="old", outcome="held_deletes"}', 0),
        ],
        ("Rows not applied: stale, rejected, quarantined, held deletes", 2): [
            ('{path="batch", entity="new", outcome="quarantined"}', 1),
            ('{path="batch", entity="old", outcome="quarantined"}', 0),
        ],
        ("Dead letters", 0): [('{kind="BadEvent"}', 2), ('{kind="Rejected"}', 0)],
    }
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in series],
                "promql_expr_test": [
                    {
                        "expr": panels[title][ref]["expr"].replace("$__range", "30m"),
                        "eval_time": "5m",
                        "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
                    }
                    for (title, ref), samples in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "panels_test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [promtool, "test", "rules", "panels_test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus scraping a real API process every second; yields (prometheus URL, API URL)."""
    binary = require_program("prometheus", "Debian package prometheus; `make test` installs it when root")
    work = tmp_path_factory.mktemp("prometheus")
    database = f"sqlite:///{work / 'base_b.sqlite'}"
    migrate.upgrade(database)
    with api_server(database, "token", work / "api.log") as api:
        config = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "api", "static_configs": [{"targets": [api.removeprefix("http://")]}]}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with open(work / "prometheus.log", "w") as log:
            server = subprocess.Popen(
                [
                    binary,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/-/ready", server, timeout=60)
            yield f"http://127.0.0.1:{port}", api
        finally:
            server.terminate()
            server.wait(30)


def query(prometheus_url: str, expr: str) -> list:
    answer = requests.get(f"{prometheus_url}/api/v1/query", params={"query": as_promql(expr)}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", f"{expr}: {body.get('error')}"
    return body["data"]["result"]


def batch_sync(api: str, workdir) -> None:
    """Two rounds of the batch sync through the API, as the DAG's tasks make them: 60 employees, one
    of them rejected (a client took its email first), then updates; and one stale write."""
    engine = source_engine(f"sqlite:///{workdir / 'base_a.sqlite'}")
    create_schema(engine)
    generate.seed(engine, "employees", 60, seed_value=7)
    with engine.connect() as conn:
        taken = conn.execute(text("SELECT email FROM employees WHERE id = 2")).scalar_one()
    client, store = BaseBApi(api, "token", sync_path="batch"), MemoryStateStore()
    try:
        # A client created a row with that email through the API first: the synced one is rejected.
        created = client.session.post(f"{api}/employees", json={"first_name": "C", "last_name": "L", "email": taken})
        assert created.status_code == 201, created.text
        for _ in range(3):  # over a few scrapes: a rate needs two samples
            sync.load("employees", BaseA(engine), client, store, SyncSettings(lookback_seconds=0))
            generate.churn(engine, "employees", 5, 0, 0, seed_value=8)
            time.sleep(1.5)
        (row,) = next(BaseA(engine).rows_by_keys("employees", [3], 1))
        older = {**records.to_record("employees", row), "source_updated_at": "2000-01-01T00:00:00Z"}
        assert client.bulk_upsert("employees", records.encode([older]))["stale"] == 1  # older than Base B's row
    finally:
        client.close()
        engine.dispose()


def test_every_panel_query_is_valid_promql_and_the_service_and_api_fed_pipeline_panels_have_data(prometheus, tmp_path):
    prometheus_url, api = prometheus
    deadline = time.monotonic() + 30
    while not query(prometheus_url, 'up{job="api"} == 1'):  # a rate needs the series seen before the traffic
        assert time.monotonic() < deadline, "Prometheus never scraped the API"
        time.sleep(0.5)
    for _ in range(3):  # traffic over a few scrapes
        for path in ("/articles", "/employees", "/articles/999999"):
            requests.get(f"{api}{path}", timeout=5)
        time.sleep(1.5)
    batch_sync(api, tmp_path)
    deadline = time.monotonic() + 30
    while not query(prometheus_url, 'increase(api_bulk_records_total{path="batch", outcome="stale"}[1m]) > 0'):
        assert time.monotonic() < deadline, "Prometheus never saw the API's traffic and the sync"
        time.sleep(1)
    for dashboard in DASHBOARDS.values():
        for _title, expr in targets(dashboard):
            query(prometheus_url, expr)  # raises on a query Prometheus cannot run
    # This Prometheus scrapes the API alone: every Services query on the API's series (or up) must
    # show data on this healthy API, the 5xx ratio too (0, not "No data": it has no 5xx series).
    api_only = [
        (title, expr)
        for title, expr in targets(DASHBOARDS["services"])
        if all(m == "up" or m.startswith("api_") for m in re.findall(r"\b(?:api_|graphql_|relay_)\w+|\bup\b", expr))
    ]
    assert {title for title, _ in api_only} >= {
        "Request rate",
        "Error ratio (5xx)",
        "REST API latency (p50, p95, p99)",
        "REST latency by route (p95)",
        "Services up",
    }
    for title, expr in api_only:
        assert query(prometheus_url, expr), f"{title}: {expr} has no data"
    (ratio,) = query(prometheus_url, next(expr for title, expr in api_only if title == "Error ratio (5xx)"))
    assert float(ratio["value"][1]) == 0
    pipelines = {panel["title"]: panel["targets"] for panel in DASHBOARDS["pipelines"]["panels"]}
    synced = query(prometheus_url, pipelines["Rows synced per entity and path"][0]["expr"])
    assert {(r["metric"]["path"], r["metric"]["outcome"]) for r in synced} >= {
        ("batch", "inserted"),
        ("batch", "updated"),
    }
    not_applied = query(
        prometheus_url, pipelines["Rows not applied: stale, rejected, quarantined, held deletes"][0]["expr"]
    )
    assert {r["metric"]["outcome"]: float(r["value"][1]) > 0 for r in not_applied} == {"rejected": True, "stale": True}
    (last_write,) = query(prometheus_url, pipelines["Freshness: since the last successful sync"][1]["expr"])
    assert last_write["metric"] == {"path": "batch", "entity": "employees"} and 0 <= float(last_write["value"][1]) < 120
