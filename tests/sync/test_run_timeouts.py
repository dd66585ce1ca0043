"""The DAGs' dagrun_timeout, from the settings: long enough for every legitimate run, finite for a stuck one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from base_sync.run_timeouts import EVENTS_MAX_RETRY_DELAY, EVENTS_RETRIES, batch_run_timeout, events_run_timeout
from base_sync.settings import EventSettings, SyncSettings
from env_settings import InvalidSettings


def test_an_events_run_may_use_every_try_at_its_longest_and_no_more_than_a_few_hours():
    settings = EventSettings()
    timeout = events_run_timeout(settings)
    tries = EVENTS_RETRIES + 1
    assert timeout > tries * timedelta(seconds=settings.max_run_seconds) + EVENTS_RETRIES * EVENTS_MAX_RETRY_DELAY
    assert timedelta(hours=1) < timeout < timedelta(hours=3), timeout  # the defaults: about 1 h 50 min


def test_a_longer_events_run_gets_a_longer_timeout():
    short = events_run_timeout(EventSettings(max_run_seconds=60))
    assert events_run_timeout(EventSettings(max_run_seconds=3600)) - short == (EVENTS_RETRIES + 1) * timedelta(
        seconds=3540
    )


def test_a_batch_run_times_out_by_its_setting():
    assert batch_run_timeout(SyncSettings()) == timedelta(hours=24)
    assert batch_run_timeout(SyncSettings(run_timeout_hours=48)) == timedelta(hours=48)


def test_a_batch_run_timeout_shorter_than_an_approval_and_a_task_is_refused_naming_the_variables(monkeypatch):
    monkeypatch.setenv("SYNC_MASS_DELETE_APPROVAL_HOURS", "12")
    monkeypatch.setenv("SYNC_TASK_TIMEOUT_HOURS", "6")
    monkeypatch.setenv("SYNC_RUN_TIMEOUT_HOURS", "17")
    with pytest.raises(InvalidSettings, match=r"^invalid settings: SYNC_RUN_TIMEOUT_HOURS: 17.0 h .* at least "):
        SyncSettings()
    monkeypatch.setenv("SYNC_RUN_TIMEOUT_HOURS", "18")
    assert SyncSettings().run_timeout_hours == 18


def test_an_unset_batch_run_timeout_outlasts_a_long_approval_and_task_instead_of_refusing(monkeypatch):
    """A deployment upgraded with a long approval wait and task timeout set keeps a DAG that parses."""
    monkeypatch.setenv("SYNC_MASS_DELETE_APPROVAL_HOURS", "48")
    monkeypatch.setenv("SYNC_TASK_TIMEOUT_HOURS", "12")
    assert batch_run_timeout(SyncSettings()) == timedelta(hours=60)
