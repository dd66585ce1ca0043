"""The statsd-exporter mapping, checked against the StatsD names a real Airflow run emitted.

statsd-exporter itself is not installable here (it runs in docker-compose), so this applies its
glob rule (`*` = one dot-separated field, first match wins) to the captured names. Refresh the
capture with `UPDATE_STATSD_CAPTURE=1 pytest tests/sync/test_events_dag.py`.
"""

from __future__ import annotations

import re

import pytest
import yaml

from testbed.servers import REPO

MAPPING = yaml.safe_load((REPO / "monitoring" / "statsd" / "mapping.yml").read_text())["mappings"]
CAPTURE = (REPO / "tests" / "monitoring" / "data" / "airflow_statsd_names.txt").read_text().split()
NAMES = sorted({line.split("|")[0] for line in CAPTURE})
TYPES = {line.split("|")[0]: line.split("|")[1] for line in CAPTURE}  # c, g or ms


def apply_one(mapping: dict, name: str) -> bool:
    pattern, fields = mapping["match"].split("."), name.split(".")
    return len(pattern) == len(fields) and all(w == g or (w == "*" and g) for w, g in zip(pattern, fields, strict=True))


def apply(name: str) -> tuple[str, dict] | None:
    """(Prometheus name, labels) the exporter makes of a StatsD name, or None when no mapping matches."""
    fields = name.split(".")
    for mapping in MAPPING:
        pattern = mapping["match"].split(".")
        if len(pattern) != len(fields):
            continue
        captured = []
        for want, got in zip(pattern, fields, strict=True):
            if want == "*" and got:
                captured.append(got)
            elif want != got:
                break
        else:

            def fill(text, captured=captured):
                return re.sub(r"\$(\d+)", lambda m: captured[int(m.group(1)) - 1], text)

            if mapping.get("action") == "drop":
                return "", {}
            return fill(mapping["name"]), {k: fill(v) for k, v in (mapping.get("labels") or {}).items()}
    return None


def mapped(prefix: str) -> list[tuple[str, str, dict]]:
    return [(n, *apply(n)) for n in NAMES if n.startswith(prefix) and apply(n)]


def test_the_capture_is_from_a_real_run_with_both_kinds_of_metrics():
    assert len(NAMES) > 50
    assert any(n.startswith("airflow.base_sync.") for n in NAMES) and "airflow.scheduler_heartbeat" in NAMES


@pytest.mark.parametrize(
    ("statsd_name", "prometheus_name", "labels"),
    [
        (
            "airflow.dagrun.duration.success.base_a_events",
            "airflow_dagrun_duration_seconds",
            {"state": "success", "dag_id": "base_a_events"},
        ),
        (
            "airflow.ti.finish.base_a_events.apply_changes.success",
            "airflow_ti_finish_total",
            {"dag_id": "base_a_events", "task_id": "apply_changes", "state": "success"},
        ),
        (
            "airflow.dag.base_a_events.apply_changes.duration",
            "airflow_task_duration_seconds",
            {"dag_id": "base_a_events", "task_id": "apply_changes"},
        ),
        ("airflow.pool.open_slots.default_pool", "airflow_pool_open_slots", {"pool": "default_pool"}),
        ("airflow.executor.open_slots.LocalExecutor", "airflow_executor_open_slots", {"executor": "LocalExecutor"}),
        ("airflow.scheduler_heartbeat", "airflow_scheduler_heartbeat_total", {}),
        ("airflow.triggerer_heartbeat", "airflow_triggerer_heartbeat_total", {}),
        ("airflow.dag_processing.import_errors", "airflow_dag_processing_import_errors", {}),
        ("airflow.asset.updates", "airflow_asset_updates_total", {}),
        (
            "airflow.base_sync.rows.events.employees.inserted",
            "base_sync_rows_total",
            {"path": "events", "entity": "employees", "outcome": "inserted"},
        ),
        ("airflow.base_sync.dead_letters.BadEvent", "base_sync_dead_letters_total", {"kind": "BadEvent"}),
        ("airflow.base_sync.dead_letters.MassDeleteHeld", "base_sync_dead_letters_total", {"kind": "MassDeleteHeld"}),
        (
            "airflow.base_sync.dead_letters_waiting.Rejected",
            "base_sync_dead_letters_waiting",
            {"kind": "Rejected"},
        ),
        ("airflow.base_sync.event_lag_seconds", "base_sync_event_lag_seconds", {}),
        (
            "airflow.base_sync.last_success.events.employees",
            "base_sync_last_success_timestamp_seconds",
            {"path": "events", "entity": "employees"},
        ),
    ],
)
def test_captured_names_map_to_labelled_series(statsd_name, prometheus_name, labels):
    assert statsd_name in NAMES, f"{statsd_name} was not emitted in the captured run"
    assert apply(statsd_name) == (prometheus_name, labels)


def test_batch_metrics_not_in_the_capture_map_too():
    assert apply("airflow.base_sync.watermark_lag_seconds.articles") == (
        "base_sync_watermark_lag_seconds",
        {"entity": "articles"},
    )
    assert apply("airflow.base_sync.rows.batch.articles.extracted")[1]["path"] == "batch"
    stale = ("base_sync_delete_log_stale", {"entity": "employees"})
    assert apply("airflow.base_sync.delete_log_stale.employees") == stale
    assert apply("airflow.base_sync.task_peak_rss_bytes.employees.load_partition") == (
        "base_sync_task_peak_rss_bytes",
        {"entity": "employees", "task": "load_partition"},
    )


def test_the_times_of_the_dead_letter_counts_map_to_one_gauge_by_outcome():
    """Not in the capture (taken before they were sent): when the waiting letters were last counted,
    and when a count last failed (DeadLettersNotCounted compares the two)."""
    for outcome in ("counted", "failed"):
        assert apply(f"airflow.base_sync.dead_letters_last_count.{outcome}") == (
            "base_sync_dead_letters_last_count_timestamp_seconds",
            {"outcome": outcome},
        )


def test_every_pipeline_name_and_every_dag_and_task_name_is_mapped():
    unmapped = [
        n
        for n in NAMES
        if n.startswith(
            (
                "airflow.base_sync.",
                "airflow.dagrun.duration.",
                "airflow.ti.finish.",
                "airflow.pool.",
                "airflow.executor.",
            )
        )
        and apply(n) is None
    ]
    assert unmapped == []


def test_tag_style_duplicates_are_dropped_and_legacy_names_kept():
    assert apply("airflow.dagrun.duration.success") == ("", {})
    assert apply("airflow.pool.open_slots") == ("", {})
    assert apply("airflow.pool.open_slots.default_pool")[0] == "airflow_pool_open_slots"


def test_mapped_series_names_are_valid_prometheus_names():
    for name in NAMES:
        result = apply(name)
        if result and result[0]:
            assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", result[0]), (name, result[0])


@pytest.mark.parametrize(
    "statsd_name", ["airflow.dagrun.duration.success.base_a_events", "airflow.dag.base_a_events.apply_changes.duration"]
)
def test_run_and_task_durations_have_buckets_up_to_an_hour(statsd_name):
    """statsd-exporter's default buckets end at 10 s: every batch run (25-90 s) would land in +Inf."""
    (mapping,) = [m for m in MAPPING if m.get("action") != "drop" and apply_one(m, statsd_name)]
    buckets = mapping["histogram_options"]["buckets"]
    assert buckets == sorted(buckets) and buckets[-1] >= 3600
    assert len([b for b in buckets if 20 <= b <= 120]) >= 4, "batch runs need resolution there"


@pytest.mark.parametrize(
    ("statsd_name", "prometheus_name", "labels"),
    [
        ("airflow.triggers.running", "", {}),  # a gauge: its labelled twin is triggers.running.<host>
        ("airflow.triggers.running.vm", "airflow_triggers_running", {"hostname": "vm"}),
        (
            "airflow.ti.queued.default.base_a_events.apply_changes",
            "airflow_task_instances",
            {"state": "queued", "queue": "default", "dag_id": "base_a_events", "task_id": "apply_changes"},
        ),
        (
            "airflow.ti.running.default.base_a_events.apply_changes",
            "airflow_task_instances",
            {"state": "running", "queue": "default", "dag_id": "base_a_events", "task_id": "apply_changes"},
        ),
        ("airflow.ti.running", "", {}),
        (
            "airflow.dagrun.dependency-check.base_a_events",
            "airflow_dagrun_dependency_check_seconds",
            {"dag_id": "base_a_events"},
        ),
        ("airflow.dagrun.dependency-check", "", {}),
        (
            "airflow.dag_processing.last_run.seconds_ago.base_a_events",
            "airflow_dag_processing_last_run_seconds_ago",
            {"file": "base_a_events"},
        ),
        ("airflow.dag_processing.last_run.seconds_ago", "", {}),
    ],
)
def test_gauges_and_per_dag_names_map_to_their_own_labelled_series(statsd_name, prometheus_name, labels):
    assert statsd_name in NAMES
    assert apply(statsd_name) == (prometheus_name, labels)


def test_no_name_with_a_dag_task_file_or_host_in_it_is_left_to_the_flattened_default():
    """An unmapped name becomes airflow_<dotted_name>: one metric per DAG, task or file."""
    keys = {"dag_id", "task_id", "file", "bundle", "hostname", "pool", "queue", "executor", "entity"}
    identifiers = {v for n in NAMES if (r := apply(n)) and r[0] for k, v in r[1].items() if k in keys}
    assert {"base_a_events", "apply_changes", "default_pool", "vm"} <= identifiers
    flattened = [n for n in NAMES if apply(n) is None and identifiers & set(n.split("."))]
    assert flattened == []


def test_a_gauge_is_never_a_total_and_no_series_mixes_statsd_types():
    types: dict[str, set[str]] = {}
    for name in NAMES:
        result = apply(name)
        prometheus_name = result[0] if result else "airflow_" + name.removeprefix("airflow.").replace(".", "_")
        if prometheus_name:
            types.setdefault(prometheus_name, set()).add(TYPES[name])
            assert not (TYPES[name] == "g" and prometheus_name.endswith("_total")), (name, prometheus_name)
    assert {n: t for n, t in types.items() if len(t) > 1} == {}


def test_readme_names_every_row_outcome_the_pipelines_emit():
    from base_sync.metrics import ROW_OUTCOMES

    readme = (REPO / "README.md").read_text()
    (listed,) = re.findall(r"`rows\.<batch\|events>\.<entity>\.<([a-z_|]+)>`", readme)
    assert listed.split("|") == list(ROW_OUTCOMES)
