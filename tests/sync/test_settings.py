"""The pipelines' settings refuse a value Airflow could not use, naming the variable and the value."""

from __future__ import annotations

import re

import pytest

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
