"""The statsd-exporter mapping, checked against every StatsD name Airflow and the pipelines send.

The names: those a real Airflow run emitted (refresh the capture with
`UPDATE_STATSD_CAPTURE=1 pytest tests/sync/test_events_dag.py`), every name in Airflow's own list
of its metrics (metrics_template.yaml, legacy and new names, with their types), and every name the
pipelines' metrics module builds. statsd-exporter is applied as tests/monitoring/statsd_exporter.py
follows it.
"""

from __future__ import annotations

import importlib.resources
import inspect
import re
import subprocess
from collections import defaultdict
from datetime import UTC, datetime

import pytest
import yaml

from base_sync import metrics
from base_sync.dead_letters import KINDS as DEAD_LETTER_KINDS
from testbed.servers import REPO, require_program
from tests.monitoring.statsd_exporter import METRIC_TYPES, Series, StatsdMapper, escape, load_mappings

MAPPER = StatsdMapper(load_mappings())
CAPTURE = (REPO / "tests" / "monitoring" / "data" / "airflow_statsd_names.txt").read_text().split()
NAMES = sorted({line.split("|")[0] for line in CAPTURE})

# Airflow's list of the metrics it sends: `name` (meant for tags, which plain StatsD drops) and
# `legacy_name` (the labels in the name), `{placeholders}` filled with values like a real run's.
TEMPLATE = yaml.safe_load(
    importlib.resources.files("airflow._shared.observability.metrics").joinpath("metrics_template.yaml").read_text()
)["metrics"]
TEMPLATE_TYPES = {"counter": "c", "gauge": "g", "timer": "ms"}
PLACEHOLDERS = {
    "job_name": "job",  # Job's class name, lowered (airflow.jobs.job)
    "job_id": "42",
    "dag_id": "base_a_events",
    "task_id": "apply_changes",
    "return_code": "0",
    "state": "success",
    "operator_name": "PythonOperator",
    "task_type": "BashOperator",
    "file_name": "base_a_events",
    "dag_file": "base_a_events",
    "bundle_name": "dags-folder",
    "executor_class_name": "LocalExecutor",
    "pool_name": "default_pool",
    "hostname": "vm",
    "queue": "default",
    "event_type": "start",
    "transport_type": "http",
    "worker_name": "edge1",
    "status": "ok",
}


def template_samples() -> set[tuple[str, str]]:
    samples = set()
    for metric in TEMPLATE:
        for name in (metric["name"], metric["legacy_name"]):
            if name != "-":
                samples.add(("airflow." + name.format(**PLACEHOLDERS), TEMPLATE_TYPES[metric["type"]]))
    return samples


# Every function of metrics.py that builds samples, called as the DAG tasks call it.
PLATFORM_SAMPLES = {
    "batch_samples": lambda: metrics.batch_samples("employees", {}, 0, datetime.now(UTC)),
    "events_samples": lambda: metrics.events_samples(["employees"], {}, {}, 0, 0.0),
    "waiting_samples": lambda: metrics.waiting_samples(dict.fromkeys(DEAD_LETTER_KINDS, 0)),
    "dead_letters_count_samples": lambda: [
        sample
        for outcome in (metrics.COUNTED, metrics.COUNT_FAILED)
        for sample in metrics.dead_letters_count_samples(outcome, 0.0)
    ],
    "schema_samples": lambda: metrics.schema_samples("employees", []),
    "delete_log_samples": lambda: metrics.delete_log_samples("employees", False),
    "memory_samples": lambda: metrics.memory_samples("load_partition", "employees", 1),
}


def platform_samples() -> set[tuple[str, str]]:
    kinds = {"incr": "c", "gauge": "g"}
    return {("airflow." + name, kinds[kind]) for build in PLATFORM_SAMPLES.values() for kind, name, _ in build()}


SAMPLES = {tuple(line.split("|")) for line in CAPTURE} | template_samples() | platform_samples()
TYPES = dict(SAMPLES)  # c, g or ms


def apply(name: str) -> tuple[str, dict] | None:
    """(Prometheus name, labels) the exporter makes of a StatsD name ("" when dropped), or None: no mapping matches."""
    result = MAPPER.series(name, TYPES[name])
    return None if result.mapping is None else (result.name, result.labels)


def flattened(result: Series) -> bool:
    """The StatsD name became the Prometheus name: no mapping matched, or one that keeps the whole
    name (a captured field in its name and no labels)."""
    return result.mapping is None or ("$" in result.mapping["name"] and not result.mapping.get("labels"))


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
    assert apply("airflow.base_sync.watermark_lag_seconds.employees") == (
        "base_sync_watermark_lag_seconds",
        {"entity": "employees"},
    )
    assert apply("airflow.base_sync.rows.batch.employees.extracted")[1]["path"] == "batch"
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
        and flattened(MAPPER.series(n, TYPES[n]))
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
    mapping = MAPPER.series(statsd_name, "ms").mapping
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
    named = ("dag_id", "task_id", "file_name", "dag_file", "bundle_name", "pool_name", "hostname", "queue")
    identifiers |= {
        PLACEHOLDERS[k] for k in (*named, "executor_class_name", "operator_name", "task_type", "worker_name")
    }
    flattened_names = [
        n for n, t in sorted(SAMPLES) if flattened(MAPPER.series(n, t)) and identifiers & set(n.split("."))
    ]
    assert flattened_names == []


def exposed(samples=SAMPLES) -> dict[str, dict[str, set[str]]]:
    """Prometheus name -> statsd-exporter's metric type -> the StatsD names that made it. A timer's
    histogram takes its _bucket, _count and _sum names too (statsd-exporter refuses a counter or
    gauge named so: checkHistogramNameCollision)."""
    names: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name, statsd_type in samples:
        result, metric_type = MAPPER.series(name, statsd_type), METRIC_TYPES[statsd_type]
        if result.name:
            suffixes = ("", "_bucket", "_count", "_sum") if metric_type == "observer" else ("",)
            for suffix in suffixes:
                names[result.name + suffix][metric_type].add(name)
    return names


def test_airflows_and_the_pipelines_names_are_all_checked():
    assert {("airflow.scheduler.tasks.killed_externally", "c"), ("airflow.scheduler.tasks.starving", "g")} <= SAMPLES
    assert ("airflow.dag.base_a_events.apply_changes.duration", "ms") in SAMPLES  # a legacy name, filled in
    for outcome in metrics.ROW_OUTCOMES:
        assert {(f"airflow.base_sync.rows.{path}.employees.{outcome}", "c") for path in ("batch", "events")} <= SAMPLES
    builders = {name for name, _ in inspect.getmembers(metrics, inspect.isfunction) if name.endswith("_samples")}
    assert builders == set(PLATFORM_SAMPLES), "a new function of metrics.py: add it to PLATFORM_SAMPLES"
    assert [n for n, t in SAMPLES if TYPES[n] != t] == [], "a name sent as two types"


def test_no_prometheus_name_gets_two_statsd_types():
    """statsd-exporter keeps a name's first type and drops every sample of another (counted in
    statsd_exporter_events_conflict_total): the gauges scheduler.tasks.executable and starving and
    the counter scheduler.tasks.killed_externally on one name lost one or the other."""
    conflicts = {
        name: {t: sorted(sources) for t, sources in types.items()}
        for name, types in exposed().items()
        if len(types) > 1
    }
    assert conflicts == {}


def test_no_prometheus_name_gets_two_sets_of_label_names():
    """A tag-style twin (airflow.ti.finish) whose drop did not take effect fell to the catch-all
    regex and became an unlabelled airflow_ti_finish_total beside the labelled family of that name:
    every sum over the family counted its samples twice."""
    label_names: dict[str, dict[tuple[str, ...], set[str]]] = defaultdict(lambda: defaultdict(set))
    for name, statsd_type in SAMPLES:
        result = MAPPER.series(name, statsd_type)
        if result.name:
            label_names[result.name][tuple(sorted(result.labels))].add(name)
    mixed = {
        name: {labels: sorted(sources)[:2] for labels, sources in sets.items()}
        for name, sets in label_names.items()
        if len(sets) > 1
    }
    assert mixed == {}


def test_every_glob_mapping_takes_effect():
    """statsd-exporter loads, without a word, a glob ending on a field an earlier glob already
    passed through, and never matches it: `airflow.ti.finish` (drop) below `airflow.ti.finish.*.*.*`."""
    assert [mapping["match"] for mapping in MAPPER.ineffective_globs] == []


def mapper_of(config: str) -> StatsdMapper:
    return StatsdMapper(load_mappings(config))


@pytest.mark.parametrize(
    ("config", "statsd_name", "prometheus_name", "labels"),
    [  # statsd-exporter's own cases (pkg/mapper/mapper_test.go, glob_disable_ordering: false)
        (
            "mappings:\n- {match: order.*.*, name: testa, labels: {label: '${1}_foo'}}\n"
            "- {match: order.*.bbb, name: testb, labels: {label: '${1}_foo'}}",
            "order.good.bbb",
            "testa",
            {"label": "good_foo"},
        ),
        (  # the captures of a path tried and left do not leak into the one that matches
            "mappings:\n- {match: '*.dummy.*', name: metric_one, labels: {system: $1, attribute: $2}}\n"
            "- {match: full.name.*, name: metric_two, labels: {system: static, attribute: $1}}",
            "full.name.anothertest",
            "metric_two",
            {"system": "static", "attribute": "anothertest"},
        ),
        ("mappings:\n- {match: test.*, name: name, labels: {label: $1_foo}}", "test.a", "name", {"label": ""}),
        (
            "mappings:\n- {match: '*', name: single_segment, labels: {label: '${1}'}}",
            "test",
            "single_segment",
            {"label": "test"},
        ),
        # fsm.go: a shorter glob first, then the longer one beginning with it: both take effect
        ("mappings:\n- {match: a.b, name: short}\n- {match: a.b.*, name: long}", "a.b", "short", {}),
        ("mappings:\n- {match: a.b, name: short}\n- {match: a.b.*, name: long}", "a.b.c", "long", {}),
        # the other way round the shorter one never matches: the name is kept, escaped
        ("mappings:\n- {match: a.b.*, name: long}\n- {match: a.b, name: short}", "a.b", "a_b", {}),
        # an earlier `*` wins over a later exact field, whatever the path
        ("mappings:\n- {match: a.*.c, name: star}\n- {match: a.b.c, name: exact}", "a.b.c", "star", {}),
        ("mappings:\n- {match: a.b.c, name: exact}\n- {match: a.*.c, name: star}", "a.b.c", "exact", {}),
        # a field that leads nowhere: back to the `*` beside it (same length, then another length)
        ("mappings:\n- {match: a.b.x.y, name: exact}\n- {match: a.*.c.d, name: star_$1}", "a.b.c.d", "star_b", {}),
        ("mappings:\n- {match: a.b.c.d, name: longer}\n- {match: a.*.c, name: star_$1}", "a.b.c", "star_b", {}),
        # a typed glob takes effect only for its type
        ("mappings:\n- {match: a.b, name: gauge_only, match_metric_type: gauge}", "a.b", "a_b", {}),
    ],
)
def test_the_port_maps_as_statsd_exporter_does(config, statsd_name, prometheus_name, labels):
    result = mapper_of(config).series(statsd_name, "c")
    assert (result.name, result.labels) == (prometheus_name, labels)


def test_a_glob_ending_where_an_earlier_one_passed_is_reported_ineffective():
    mapper = mapper_of(
        "mappings:\n- {match: a.b.*, name: long}\n- {match: a.b, name: short}\n- {match: a.b.*, name: again}"
    )
    assert [mapping["name"] for mapping in mapper.ineffective_globs] == ["short", "again"]


def test_counters_end_in_total_timers_in_seconds_and_gauges_in_neither():
    wrong = []
    for name, types in exposed().items():
        for metric_type, sources in types.items():
            ok = {
                "counter": name.endswith("_total"),
                "gauge": not name.endswith("_total"),
                "observer": name.endswith(("_seconds", "_seconds_bucket", "_seconds_count", "_seconds_sum")),
            }[metric_type]
            if not ok:
                wrong.append((name, metric_type, sorted(sources)[:2]))
    assert sorted(wrong) == []


def exposition() -> str:
    """The text statsd-exporter would serve after one sample of each name (its default help text)."""
    lines = []
    by_name: dict[str, list[tuple[str, Series]]] = defaultdict(list)
    for name, statsd_type in sorted(SAMPLES):
        result = MAPPER.series(name, statsd_type)
        if result.name:
            by_name[result.name].append((METRIC_TYPES[statsd_type], result))
    for name, results in sorted(by_name.items()):
        metric_type = {"observer": "histogram"}.get(results[0][0], results[0][0])
        lines += [f"# HELP {name} Metric autogenerated by statsd_exporter.", f"# TYPE {name} {metric_type}"]
        for labels in sorted({tuple(sorted(result.labels.items())) for _, result in results}):
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            if metric_type == "histogram":
                bucket = ",".join(filter(None, [text, 'le="+Inf"']))
                lines += [f"{name}_bucket{{{bucket}}} 1", f"{name}_sum{{{text}}} 1", f"{name}_count{{{text}}} 1"]
            else:
                lines.append(f"{name}{{{text}}} 1")
    return "\n".join(lines) + "\n"


def test_what_statsd_exporter_would_serve_passes_promtools_lint():
    """promtool check metrics, as the services' own /metrics pass it: counters without _total, and
    camelCase names (an operator's class in the name: operator_successes_<Class>) failed."""
    promtool = require_program("promtool", "Debian package prometheus; `make test` installs it when root")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize(
    ("statsd_name", "prometheus_name", "labels"),
    [
        ("airflow.scheduler.tasks.killed_externally", "airflow_scheduler_tasks_killed_externally_total", {}),
        ("airflow.scheduler.tasks.starving", "airflow_scheduler_tasks", {"state": "starving"}),
        (
            "airflow.base_sync.rows.batch.employees.quarantined",
            "base_sync_rows_total",
            {"path": "batch", "entity": "employees", "outcome": "quarantined"},
        ),
        (
            "airflow.base_sync.rows.events.employees.shared_key",
            "base_sync_rows_total",
            {"path": "events", "entity": "employees", "outcome": "shared_key"},
        ),
        (
            "airflow.operator_successes__PythonDecoratedOperator",
            "airflow_operator_successes_total",
            {"operator": "_PythonDecoratedOperator"},
        ),
        ("airflow.operator_failures_PythonOperator", "airflow_operator_failures_total", {"operator": "PythonOperator"}),
        (
            "airflow.task_instance_created__PythonDecoratedOperator",
            "airflow_task_instance_created_total",
            {"operator": "_PythonDecoratedOperator"},
        ),
        ("airflow.operator_successes", "", {}),  # sent with the class as a tag, which plain StatsD drops
        ("airflow.task_instance_created", "", {}),
        ("airflow.job_start", "airflow_job_start_total", {}),
        ("airflow.dag_processing.processes", "airflow_dag_processing_processes_total", {}),
        ("airflow.dagrun.first_task_start_delay", "airflow_dagrun_first_task_start_delay_seconds", {}),
    ],
)
def test_names_sent_live_or_listed_by_airflow_map_to_their_series(statsd_name, prometheus_name, labels):
    result = MAPPER.series(statsd_name, TYPES[statsd_name])
    assert (result.name, result.labels) == (prometheus_name, labels)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [  # statsd-exporter's own cases (pkg/mapper/escape_test.go)
        ("clean", "clean"),
        ("0starts_with_digit", "_0starts_with_digit"),
        ("with--doubledash", "with_doubledash"),
        ("with---multiple-dashes", "with_multiple_dashes"),
        ("with.dot", "with_dot"),
        ("with\N{FACE SCREAMING IN FEAR}emoji", "with_emoji"),
        ("with.*.multiple", "with___multiple"),
        ("test.web-server.foo.bar", "test_web_server_foo_bar"),
    ],
)
def test_names_are_escaped_as_statsd_exporter_escapes_them(name, escaped):
    assert escape(name) == escaped


def test_readme_names_every_row_outcome_the_pipelines_emit():
    from base_sync.metrics import ROW_OUTCOMES

    readme = (REPO / "README.md").read_text()
    (listed,) = re.findall(r"`rows\.<batch\|events>\.<entity>\.<([a-z_|]+)>`", readme)
    assert listed.split("|") == list(ROW_OUTCOMES)
