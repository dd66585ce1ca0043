"""The pipelines' settings refuse a value Airflow could not use, naming the variable and the value."""

from __future__ import annotations

import re

import pytest

from base_sync import state
from base_sync.errors import ConfigurationError
from base_sync.mapping import MappingSettings, SourceMapping
from base_sync.settings import EventSettings, SyncSettings
from env_settings import InvalidSettings
from graphql_service.settings import GraphQLSettings


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
