"""Pipeline metrics: what a sync or a drain did, as StatsD samples.

The DAG tasks send these through Airflow's own StatsD client, so they travel the same path as
Airflow's metrics (statsd-exporter maps `airflow.base_sync.*` to labelled Prometheus series; see
monitoring/statsd/mapping.yml). Built here as plain tuples, so this module needs no Airflow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from base_sync.dead_letters import KINDS as DEAD_LETTER_KINDS

BATCH, EVENTS = "batch", "events"
ALL_ENTITIES = "all"  # the entity label of a task that is not one entity's
# held_deletes: deletes the events path's mass-delete breaker kept back for an operator's approval;
# unkeyed: source rows with a NULL key, refused and logged but kept nowhere (load.report_unkeyed);
# shared_key: rows of a key Base A holds in more than one row, quarantined by the batch (load.push_chunks)
# or dead-lettered by the drain (events.prepare), never synced as one (shared_keys);
# quarantined: source rows the mapping refuses (dirty.py), kept as rejections by the batch (the drain's
# are dead letters of kind Quarantined; shared_key rows among them): alert SourceRowsNotApplied reads it.
ROW_OUTCOMES = (
    "extracted",
    "inserted",
    "updated",
    "unchanged",
    "stale",
    "rejected",
    "quarantined",
    "deleted",
    "held_deletes",
    "unkeyed",
    "shared_key",
)


def batch_samples(entity: str, counts: dict, deleted: int, watermark: datetime | None) -> list[tuple[str, str, float]]:
    """(kind, name, value) of one verified batch sync of an entity; kind is "incr" or "gauge"."""
    samples = _rows(BATCH, entity, {**counts, "deleted": deleted})
    if watermark is not None:
        samples.append(("gauge", f"base_sync.watermark_lag_seconds.{entity}", time.time() - watermark.timestamp()))
    samples.append(("gauge", f"base_sync.last_success.{BATCH}.{entity}", time.time()))
    return samples


def events_samples(
    entities: Iterable[str],
    counts_by_entity: dict[str, dict],
    dead_letters_by_kind: dict[str, int],
    lag: int,
    event_lag_seconds: float | None,
    lost_to_retention: int = 0,
) -> list[tuple[str, str, float]]:
    """(kind, name, value) of one drain: rows per entity and outcome, dead letters by kind, consumer and event lag.

    `entities`: every entity the events path syncs. Each gets its rows and its last success on every
    drain, also one that consumed nothing: a quiet table is not a stale one (EventSyncStale).
    """
    samples = []
    for entity in dict.fromkeys([*entities, *counts_by_entity]):
        samples += _rows(EVENTS, entity, counts_by_entity.get(entity, {}))
        samples.append(("gauge", f"base_sync.last_success.{EVENTS}.{entity}", time.time()))
    for kind, count in (dict.fromkeys(DEAD_LETTER_KINDS, 0) | dict(dead_letters_by_kind)).items():  # 0 too: see _rows
        samples.append(("incr", f"base_sync.dead_letters.{kind}", count))
    samples.append(("incr", "base_sync.events_lost_to_retention", lost_to_retention))  # EventsLostToRetention
    samples.append(("gauge", "base_sync.consumer_lag.events", lag))
    # Set on every drain, or an old high value would stay (EventConsumerLagHigh): a drain that
    # applied nothing found nothing to apply, so no change waits.
    samples.append(("gauge", "base_sync.event_lag_seconds", event_lag_seconds or 0.0))
    return samples


def waiting_samples(waiting_by_kind: dict[str, int]) -> list[tuple[str, str, float]]:
    """The dead letters on the dead-letter topic that no replay marker names, by kind
    (`dead_letters.waiting_by_kind`, every kind, 0 too): a replay brings its kind to 0 at the next
    count, where the counter of letters written (dead_letters.<kind>) only grows."""
    return [("gauge", f"base_sync.dead_letters_waiting.{kind}", count) for kind, count in waiting_by_kind.items()]


# The outcomes of a count of the dead letters waiting (`dead_letters_count_samples`).
COUNTED, COUNT_FAILED = "counted", "failed"


def dead_letters_count_samples(outcome: str, at: float) -> list[tuple[str, str, float]]:
    """When a count of the dead letters waiting last succeeded (COUNTED) or failed (COUNT_FAILED), in
    epoch seconds. A failed count sends no waiting gauges, and statsd-exporter keeps their last value
    for ever: a failure newer than the last success tells they are stale (DeadLettersNotCounted)."""
    return [("gauge", f"base_sync.dead_letters_last_count.{outcome}", at)]


def schema_samples(entity: str, unmapped: list[str]) -> list[tuple[str, str, float]]:
    """The source columns of the entity's table that its mapping does not read (a new column in Base
    A raises it; the sync ignores them)."""
    return [("gauge", f"base_sync.source_unmapped_columns.{entity}", len(unmapped))]


def delete_log_samples(entity: str, stale: bool) -> list[tuple[str, str, float]]:
    """1 while the entity's delete-log triggers no longer match their table (`delete_log_triggers`):
    the batch compares every key, and a trigger naming a missing column fails Base A's own writes."""
    return [("gauge", f"base_sync.delete_log_stale.{entity}", 1.0 if stale else 0.0)]


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (Linux's VmHWM, which starts anew at exec: getrusage's
    ru_maxrss would carry the peak of the process it was forked from); None where /proc has none."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def memory_samples(task: str, entity: str, peak: int | None) -> list[tuple[str, str, float]]:
    """A task process's peak memory (`peak_rss_bytes`): nothing when it is unknown. Named by entity
    and step: the steps of every entity share their names (`load`, `verify`) and would overwrite
    each other's gauge. `entity` is ALL_ENTITIES for a task of no one entity (the events drain)."""
    return [] if peak is None else [("gauge", f"base_sync.task_peak_rss_bytes.{entity}.{task}", peak)]


def _rows(path: str, entity: str, counts: dict) -> list[tuple[str, str, float]]:
    """Every outcome, zeros too: statsd-exporter makes a counter's series at its first sample, and
    increase() needs an earlier sample to see a rise, so a series born at its first held delete or
    dead letter would hide it from the alerts (MassDeletesHeld, DeadLettersGrowing)."""
    return [("incr", f"base_sync.rows.{path}.{entity}.{outcome}", counts.get(outcome, 0)) for outcome in ROW_OUTCOMES]
