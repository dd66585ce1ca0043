"""The pipelines' settings refuse a value Airflow could not use, naming the variable and the value."""

from __future__ import annotations

import logging
import os
import re

import pytest
from sqlalchemy import text

import env_settings
from api_service.settings import ApiSettings
from base_sync import state
from base_sync.errors import ConfigurationError
from base_sync.mapping import MappingSettings, SourceMapping
from base_sync.relay import RelaySettings
from base_sync.settings import EventSettings, SyncSettings
from base_sync.source import source_engine
from env_settings import DAY, WEEK_HOURS, InvalidSettings
from graphql_service.settings import GraphQLSettings
from testbed.fresh_python import answer_of


@pytest.mark.parametrize(
    ("settings", "variable", "value"),
    [
        (SyncSettings, "SYNC_SCHEDULE", "*/15 * * *"),
        (SyncSettings, "SYNC_SCHEDULE", "every-quarter-hour"),
        (EventSettings, "EVENTS_FALLBACK_SCHEDULE", "nonsense"),
    ],
)
def test_a_schedule_airflow_cannot_parse_is_refused_by_name(monkeypatch, settings, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings, match=re.escape(f"{variable}: {value!r} is no cron expression")):
        settings()


@pytest.mark.parametrize("value", ["*/15 * * * *", "0 3 * * 1-5", "@daily", "@continuous"])
def test_cron_expressions_and_presets_pass(monkeypatch, value):
    monkeypatch.setenv("SYNC_SCHEDULE", value)
    assert SyncSettings().schedule == value


def test_an_unknown_log_level_is_refused(monkeypatch):
    monkeypatch.setenv("GRAPHQL_LOG_LEVEL", "LOUD")
    with pytest.raises(InvalidSettings, match="GRAPHQL_LOG_LEVEL: Input should be 'DEBUG'"):
        GraphQLSettings()


def test_an_empty_mapping_file_setting_means_the_platforms_own_tables(monkeypatch):
    monkeypatch.setenv("BASE_A_MAPPING_FILE", "")
    assert MappingSettings().mapping_file is None and SourceMapping.from_settings().is_identity


@pytest.mark.parametrize(
    "raw",
    [
        '{"watermark": "yesterday"}',
        "not json",
        "[1]",
        '{"watermark": {"updated_at": "x", "id": 1}}',
        '{"stats": 5}',
        '{"watermark": {"updated_at": "2026-01-01T00:00:00", "id": 1}, "stats": {}}',  # no zone: read as UTC?
    ],
)
def test_a_watermark_variable_edited_into_no_position_fails_at_once_named(raw):
    with pytest.raises(ConfigurationError, match=r"Airflow Variable 'base_a_to_base_b.watermark.articles' is no sync"):
        state._position("base_a_to_base_b.watermark.articles", raw)
    good = '{"watermark": {"updated_at": "2026-01-01T00:00:00+00:00", "id": 3}, "stats": {}}'
    assert state._position("v", good)["watermark"]["id"] == 3


def test_a_watermark_time_without_a_zone_is_named_as_such():
    raw = '{"watermark": {"updated_at": "2026-01-01T00:00:00", "id": 1}, "stats": {}}'
    with pytest.raises(ConfigurationError, match=r"updated_at '2026-01-01T00:00:00' has no zone \(write \+00:00"):
        state._position("base_a_to_base_b.watermark.articles", raw)


@pytest.mark.parametrize(
    ("settings", "variable", "value", "bound"),
    [
        (SyncSettings, "SYNC_TASK_TIMEOUT_HOURS", "1e300", "168"),  # a timedelta overflowed parsing the DAG
        (SyncSettings, "SYNC_MASS_DELETE_APPROVAL_HOURS", "1e20", "168"),
        (SyncSettings, "SYNC_DELETE_LOG_RETENTION_HOURS", "1e300", "8784"),
        (SyncSettings, "SYNC_LOOKBACK_SECONDS", "1e300", "604800"),
        (SyncSettings, "SYNC_API_TIMEOUT", "1e9", "86400"),  # MySQL's wait_timeout is a year at most
        (SyncSettings, "SYNC_MAX_BODY_BYTES", "1099511627776", "1073741824"),
        (EventSettings, "EVENTS_MAX_RUN_SECONDS", "1e300", "86400"),
        (EventSettings, "EVENTS_IDLE_SECONDS", "1e20", "3600"),
        (RelaySettings, "RELAY_SAVE_INTERVAL", "1e20", "30"),  # librdkafka's poll timeout: int milliseconds
        (RelaySettings, "RELAY_MESSAGE_MAX_BYTES", "2000000000", "1000000000"),  # librdkafka's own maximum
        (RelaySettings, "RELAY_PARTITIONS", "1000000000", "10000"),
    ],
)
def test_a_time_or_size_too_large_is_refused_at_once_naming_the_variable(monkeypatch, settings, variable, value, bound):
    """Found from outside: SYNC_TASK_TIMEOUT_HOURS=1e300 was taken, and the DAG failed to parse with an
    OverflowError naming no variable. Each time and size has an upper bound, refused with its name."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings) as refused:
        settings()
    assert str(refused.value) == f"invalid settings: {variable}: Input should be less than or equal to {bound}"


DAG_TIMEOUTS = """
import json, runpy
dag = runpy.run_path('dags/base_a_to_base_b.py')['base_a_to_base_b']()
print(json.dumps({
    "execution": sorted({t.execution_timeout.total_seconds() for t in dag.tasks if t.execution_timeout}),
    "response": sorted({t.response_timeout.total_seconds() for t in dag.tasks if hasattr(t, "response_timeout")}),
    "run": dag.dagrun_timeout.total_seconds(),
}))
"""


def test_the_batch_dag_parses_with_its_longest_timeouts():
    """The bounds are within what Airflow takes: a week of hours is a task's execution_timeout and the
    approval's response_timeout, two the run's dagrun_timeout, which must outlast both together (parsed
    in a fresh interpreter, as the scheduler does)."""
    env = {
        "SYNC_TASK_TIMEOUT_HOURS": str(WEEK_HOURS),
        "SYNC_MASS_DELETE_APPROVAL_HOURS": str(WEEK_HOURS),
        "SYNC_RUN_TIMEOUT_HOURS": str(2 * WEEK_HOURS),
    }
    week = WEEK_HOURS * 3600.0
    found = answer_of("-c", DAG_TIMEOUTS, env={**os.environ, **env})
    assert found == {"execution": [week], "response": [week], "run": 2 * week}


def test_base_a_takes_the_session_timeouts_of_the_longest_api_timeout(make_mariadb_database):
    """SYNC_API_TIMEOUT, with its retries, is the read session's net_write_timeout and wait_timeout
    (mysql_session.idle_seconds): at its bound, a day, MariaDB sets them as asked (it caps them at a year)."""
    engine = source_engine(make_mariadb_database(), api_timeout=SyncSettings(api_timeout=DAY).api_timeout)
    try:
        with engine.connect() as conn:
            waits = conn.execute(text("SELECT @@net_write_timeout, @@wait_timeout")).one()
    finally:
        engine.dispose()
    assert tuple(waits) == (6 * DAY + 136,) * 2  # 6 tries of connect and read timeouts, back-off, a minute


# Found from outside: a misspelled variable with a settings prefix was ignored silently, and its setting
# kept its default (SYNC_CHUNK_SZE=100; RELAY_BASEA_URL, and the relay read its default Base A).


@pytest.fixture
def warnings_of(monkeypatch, caplog):
    """The misspelling warnings logged while building settings, each process's first for a name (the
    record of names already warned of is this test's own)."""
    monkeypatch.setattr(env_settings, "_warned", set(), raising=False)
    caplog.set_level(logging.WARNING, logger="env_settings")

    def warnings_of(*names: str) -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == "env_settings" and any(name in record.getMessage() for name in names)
        ]

    return warnings_of


@pytest.mark.parametrize(
    ("settings", "variable", "value", "meant"),
    [
        (SyncSettings, "SYNC_CHUNK_SZE", "100", "SYNC_CHUNK_SIZE"),
        (RelaySettings, "RELAY_BASEA_URL", "mysql://relay:hunter2@base-a:3306/base_a", "RELAY_BASE_A_URL"),
        (EventSettings, "EVENTS_TOPIC_PREFX", "legacy", "EVENTS_TOPIC_PREFIX"),
        (ApiSettings, "API_DB_POOLSIZE", "50", "API_DB_POOL_SIZE"),
        (ApiSettings, "API_WORKER", "8", "API_WORKERS"),  # gunicorn's, read outside the class
        (GraphQLSettings, "GRAPHQL_MAX_DEPT", "3", "GRAPHQL_MAX_DEPTH"),
        (MappingSettings, "BASE_A_MAPING_FILE", "mapping.yaml", "BASE_A_MAPPING_FILE"),
        (GraphQLSettings, "GRAPHQL_REST_API_URI", "http://127.0.0.1:5000", "REST_API_URL"),  # the alias's name
    ],
)
def test_a_misspelled_variable_is_warned_of_naming_the_one_meant(
    monkeypatch, warnings_of, settings, variable, value, meant
):
    monkeypatch.setenv(variable, value)
    made = settings()  # a warning, not a refusal: a stray variable must not stop a service
    assert warnings_of(variable) == [f"{variable} is not a setting and is ignored: did you mean {meant}?"]
    assert value not in " ".join(warnings_of(variable))  # never the value: a URL may hold a password
    if settings is SyncSettings:
        assert made.chunk_size == SyncSettings.model_fields["chunk_size"].default


@pytest.mark.parametrize(
    "variable",
    ["API_KEY", "API_VERSION", "API_HOST", "API_URL", "API_PORT", "API_SECRET", "API_BASE_URL", "API_TIMEOUT"],
)
def test_a_hosts_own_api_variable_is_not_taken_for_a_misspelling(monkeypatch, warnings_of, variable):
    """API_ is a common prefix of other programs' variables on a host: those stay quiet."""
    monkeypatch.setenv(variable, "something")
    ApiSettings()
    assert warnings_of(variable) == []


@pytest.mark.parametrize(
    ("settings", "variable", "value"),
    [
        (SyncSettings, "SYNC_CHUNK_SIZE", "100"),
        (SyncSettings, "sync_chunk_size", "100"),  # read too: pydantic-settings ignores the case
        (RelaySettings, "RELAY_BASE_A_URL", "mysql://root@127.0.0.1:3306/base_a"),
        (ApiSettings, "API_WORKERS", "4"),  # gunicorn's
        (GraphQLSettings, "REST_API_URL", "http://127.0.0.1:5000"),  # an alias
        (GraphQLSettings, "GRAPHQL_REST_API_URL", "http://127.0.0.1:5000"),  # its name, read too
        (MappingSettings, "BASE_A_URL", "sqlite:///base_a.sqlite"),  # the CLI's
    ],
)
def test_a_variable_that_is_read_gives_no_warning(monkeypatch, warnings_of, settings, variable, value):
    monkeypatch.setenv(variable, value)
    settings()
    assert warnings_of(variable) == []


def test_a_misspelling_is_warned_of_once_per_process(monkeypatch, warnings_of):
    """Settings are built many times in a process (each DAG parse, each task, the relay's topics, a
    gunicorn worker forked from the master that warned): the log says it once per name."""
    monkeypatch.setenv("SYNC_CHUNK_SZE", "100")
    for _ in range(3):
        SyncSettings()
    monkeypatch.setenv("SYNC_PARTITONS", "8")
    SyncSettings()
    assert warnings_of("SYNC_CHUNK_SZE", "SYNC_PARTITONS") == [
        "SYNC_CHUNK_SZE is not a setting and is ignored: did you mean SYNC_CHUNK_SIZE?",
        "SYNC_PARTITONS is not a setting and is ignored: did you mean SYNC_PARTITIONS?",
    ]
