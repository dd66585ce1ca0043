"""Near-real-time sync: Base A's change events from Kafka into Base B. Wiring only: the steps live in base_sync."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, dag, task

from base_sync import airflow_tasks, run_timeouts
from base_sync.debezium import Topics
from base_sync.settings import EventSettings
from base_sync.wake_trigger import ChangeWakeTrigger

RUNBOOK = """
### Base A change events → Base B

The CDC relay (`base-a-relay`, or Debezium's MySQL connector) publishes every row change of the
mapped Base A tables to `<EVENTS_TOPIC_PREFIX>.<EVENTS_SOURCE_DATABASE>.<table>` as a Debezium
envelope, the row in the table's own shape. A message wakes this DAG (an asset watcher on the
topics); a fallback schedule runs it every minute as well, so the tail of a burst never waits.

**apply_changes** reads every partition from the consumer group's committed offsets, in batches:
each change goes through the entity's source mapping (`BASE_A_MAPPING_FILE`, as the batch DAG),
the newest change per key goes to the bulk upsert or delete endpoint (a soft-deleted row is a
delete), a row the mapping refuses to the API's rejections with the reasons, and the offsets are committed
only after the API answered. A batch that fails comes back on the next run or retry, and
repeating it is harmless (the API's version guard). Events older than Base B's row count as
`stale`, so this path and the batch DAG never undo each other.

**Dead letters**: a malformed event, one the mapping refuses (`Quarantined`, also an open rejection
in the API), or one the API rejects, goes to `base_a.dlq` unchanged, with
Kafka Connect's headers `__connect.errors.topic|partition|offset|exception.message` naming where
it came from and why. It never blocks its partition. `base-sync-dlq list` shows them; fix the
cause, then `base-sync-dlq replay PARTITION:OFFSET` (or `--all` with filters) sends them back to
their topic, or let the next batch run carry the row over. A run counts the letters not replayed
(every `EVENTS_DLQ_COUNT_SECONDS`, 15 minutes): alert DeadLettersWaiting while any wait.

**Mass deletes**: per entity, a run sends at most the batch DAG's circuit-breaker limit of
deletes, `max(SYNC_MASS_DELETE_MIN_ROWS, ceil(SYNC_MASS_DELETE_SHARE × Base B's synced rows))`
(100 and 5% by default), counted across its batches. The deletes past it are not sent: they go to
the dead letters as `MassDeleteHeld`, the reason saying how many, the limit and why; the run logs
`MASS DELETE HELD` and counts `held_deletes`. Check Base A (a mass DELETE, a wrong soft-delete
rule or filter); if the deletes are right, approve them by replaying:
`base-sync-dlq replay --all --kind MassDeleteHeld --approve-mass-delete` (the next run sends
them uncounted; a row changed since stays, the version guard answers `stale`). If they are a
mistake, fix Base A and leave the letters be.

**Failures**: an unreachable or restarting API is retried with back-off; a refusal (a 4xx such as
a wrong token) fails the task at once with the reason, since a retry would fail the same way.

**A run that never starts its task** (running, no task log; the task's dependencies say "Logical
date ... is in the future": it was triggered with a future logical date) holds the DAG: no other
run is made, so no change is applied. Mark it failed; else the scheduler fails it after the DAG's
timeout (about 2 h: every try at `EVENTS_MAX_RUN_SECONDS` and its retries). **A deleted DAG** comes
back paused: unpause it (the consumer group's offsets survive).

**Where to look**: counts per run in the XCom and log of `apply_changes` (consumed, inserted,
updated, stale, deleted, held_deletes, approved_deletes, dead_lettered, lag). Connections:
`base_a_kafka` (kafka; extra holds `bootstrap.servers`, `group.id` of the wake-up consumer,
`enable.auto.commit: false`) and `base_b_api`.
"""

settings = EventSettings()
topics = Topics.from_settings(settings)  # reads the mapping file, never Base A
changes = Asset(
    name="base_a.changes",
    group="base_a",
    watchers=[
        AssetWatcher(
            name="base_a_change_topics",
            trigger=ChangeWakeTrigger(
                topics=topics.names,
                kafka_config_id=settings.kafka_conn_id,
                poll_timeout=0.5,
            ),
        )
    ],
)


@dag(
    dag_id="base_a_events",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.fallback_schedule, timezone="UTC"), assets=changes
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # A run whose task never starts (a future logical date) would otherwise hold the DAG until that date.
    dagrun_timeout=run_timeouts.events_run_timeout(settings),
    tags=["sync", "base_a", "base_b", "events"],
    doc_md=RUNBOOK,
    description="Apply Base A's change events (Debezium envelopes from Kafka) through the REST API",
    default_args={
        "owner": "data-platform",
        "retries": run_timeouts.EVENTS_RETRIES,
        "retry_delay": run_timeouts.EVENTS_RETRY_DELAY,
        "retry_exponential_backoff": True,
        "max_retry_delay": run_timeouts.EVENTS_MAX_RETRY_DELAY,
    },
)
def base_a_events():
    # An asset event base_b.<entity> only for the entities a run changed (through the alias).
    task(
        task_id="apply_changes",
        outlets=[airflow_tasks.BASE_B_CHANGES],
        priority_weight=airflow_tasks.EVENTS_PRIORITY_WEIGHT,
        weight_rule="absolute",
    )(airflow_tasks.apply_changes)()


base_a_events()
