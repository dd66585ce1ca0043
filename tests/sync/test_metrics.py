"""Pipeline metrics as StatsD samples (no servers; the DAG tests see them arrive over UDP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from base_sync.dead_letters import KINDS as DEAD_LETTER_KINDS
from base_sync.metrics import (
    COUNT_FAILED,
    COUNTED,
    ROW_OUTCOMES,
    batch_samples,
    dead_letters_count_samples,
    events_samples,
    memory_samples,
    waiting_samples,
)

ENTITIES = ("articles", "employees")


def as_dict(samples):
    return {name: (kind, value) for kind, name, value in samples}


def test_a_batch_sync_reports_rows_by_outcome_lag_and_success_time():
    watermark = datetime.now(UTC) - timedelta(minutes=3)
    got = as_dict(batch_samples("employees", {"extracted": 10, "inserted": 7, "stale": 3, "rejected": 0}, 2, watermark))
    assert got["base_sync.rows.batch.employees.extracted"] == ("incr", 10)
    assert got["base_sync.rows.batch.employees.inserted"] == ("incr", 7)
    assert got["base_sync.rows.batch.employees.deleted"] == ("incr", 2)
    # Zeros are sent too: a counter's series must exist before its first rise for increase() to see it.
    assert got["base_sync.rows.batch.employees.rejected"] == ("incr", 0)
    kind, lag = got["base_sync.watermark_lag_seconds.employees"]
    assert kind == "gauge" and 179 < lag < 200
    assert abs(got["base_sync.last_success.batch.employees"][1] - datetime.now(UTC).timestamp()) < 5


def test_rows_refused_for_a_null_key_are_counted_where_an_alert_can_see_them():
    got = as_dict(batch_samples("articles", {"extracted": 3, "inserted": 2, "unkeyed": 1}, 0, None))
    assert got["base_sync.rows.batch.articles.unkeyed"] == ("incr", 1)


def test_source_rows_the_batch_quarantines_are_counted_where_an_alert_can_see_them():
    """Found from outside: a zero date quarantined by the batch reached the load report and Base B's
    rejections, but no metric: no alert and no panel showed the row missing from Base B."""
    got = as_dict(batch_samples("employees", {"extracted": 500, "quarantined": 1}, 0, None))
    assert got["base_sync.rows.batch.employees.quarantined"] == ("incr", 1)
    assert as_dict(batch_samples("employees", {"extracted": 5}, 0, None))[
        "base_sync.rows.batch.employees.quarantined"
    ] == (
        "incr",
        0,
    )


def test_rows_sharing_their_key_are_counted_on_both_paths():
    """A batch load counts them (`shared_key`, in the load report) and so does a drain (dead-lettered):
    the metrics carried neither, so no alert or dashboard could see a key Base A holds twice."""
    got = as_dict(batch_samples("articles", {"extracted": 3, "quarantined": 2, "shared_key": 2}, 0, None))
    assert got["base_sync.rows.batch.articles.shared_key"] == ("incr", 2)
    drained = as_dict(events_samples(ENTITIES, {"employees": {"shared_key": 3}}, {"Quarantined": 3}, 0, None))
    assert drained["base_sync.rows.events.employees.shared_key"] == ("incr", 3)
    assert drained["base_sync.rows.events.articles.shared_key"] == ("incr", 0)


def test_a_drain_reports_rows_per_entity_dead_letters_and_lags():
    counts = {"articles": {"updated": 4}, "employees": {"deleted": 1}}
    got = as_dict(events_samples(ENTITIES, counts, {"Rejected": 2, "MassDeleteHeld": 5}, 0, 0.8))
    assert got["base_sync.rows.events.articles.updated"] == ("incr", 4)
    assert got["base_sync.rows.events.employees.deleted"] == ("incr", 1)
    assert got["base_sync.dead_letters.Rejected"] == ("incr", 2)
    assert got["base_sync.dead_letters.MassDeleteHeld"] == ("incr", 5)
    assert got["base_sync.dead_letters.BadEvent"] == ("incr", 0)
    assert got["base_sync.consumer_lag.events"] == ("gauge", 0)
    assert got["base_sync.event_lag_seconds"] == ("gauge", 0.8)
    assert "base_sync.last_success.events.articles" in got


def test_a_quiet_drain_sends_the_series_the_alerts_read_at_zero():
    """statsd-exporter makes a counter's series at its first sample and increase() needs an earlier
    one: a series born at the first held delete or dead letter would never raise MassDeletesHeld or
    DeadLettersGrowing. So every drain sends every outcome and every kind of dead letter, zeros included."""
    got = as_dict(events_samples(ENTITIES, {}, {}, 0, None))
    for entity in ENTITIES:
        for outcome in ROW_OUTCOMES:
            assert got[f"base_sync.rows.events.{entity}.{outcome}"] == ("incr", 0)
    for kind in DEAD_LETTER_KINDS:
        assert got[f"base_sync.dead_letters.{kind}"] == ("incr", 0)
    assert got["base_sync.events_lost_to_retention"] == ("incr", 0)
    lost = as_dict(events_samples(ENTITIES, {}, {}, 0, None, lost_to_retention=40))
    assert lost["base_sync.events_lost_to_retention"] == ("incr", 40)


def test_every_entity_of_the_events_path_gets_its_last_success_on_every_drain():
    # Only employees changed: articles is quiet, not stale (EventSyncStale reads last_success).
    got = as_dict(events_samples(ENTITIES, {"employees": {"updated": 1}}, {}, 0, 0.5))
    for entity in ENTITIES:
        kind, when = got[f"base_sync.last_success.events.{entity}"]
        assert kind == "gauge" and abs(when - datetime.now(UTC).timestamp()) < 5


def test_the_event_lag_is_set_on_every_drain():
    # A drain that applied nothing found nothing waiting: 0, not the last high value left standing.
    assert as_dict(events_samples(ENTITIES, {}, {}, 0, None))["base_sync.event_lag_seconds"] == ("gauge", 0)


def test_each_entitys_task_has_its_own_peak_memory():
    # The steps of every entity share their names: named by the step alone, they overwrote each other.
    got = as_dict(memory_samples("load", "employees", 2**27) + memory_samples("load", "articles", 2**26))
    assert got == {
        "base_sync.task_peak_rss_bytes.employees.load": ("gauge", 2**27),
        "base_sync.task_peak_rss_bytes.articles.load": ("gauge", 2**26),
    }


def test_the_letters_waiting_are_gauges_so_a_replayed_kind_goes_back_to_zero():
    got = as_dict(waiting_samples({"BadEvent": 2, "Rejected": 0}))
    assert got == {
        "base_sync.dead_letters_waiting.BadEvent": ("gauge", 2),
        "base_sync.dead_letters_waiting.Rejected": ("gauge", 0),
    }


def test_the_times_of_the_last_count_and_the_last_failed_count_are_gauges_by_outcome():
    got = as_dict(dead_letters_count_samples(COUNTED, 900.0) + dead_letters_count_samples(COUNT_FAILED, 1800.0))
    assert got == {
        "base_sync.dead_letters_last_count.counted": ("gauge", 900.0),
        "base_sync.dead_letters_last_count.failed": ("gauge", 1800.0),
    }
