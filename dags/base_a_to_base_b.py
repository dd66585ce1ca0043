"""Batch sync of Base A into Base B through the REST API. Wiring only: the steps live in base_sync."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, TaskGroup, dag, task

from base_sync import airflow_tasks
from base_sync.mapping import SourceMapping
from base_sync.run_timeouts import batch_run_timeout
from base_sync.settings import SyncSettings

RUNBOOK = """
### Base A → Base B batch sync

For each entity: **plan_partitions** cuts a large first load or `full_refresh` (at least
`SYNC_PARTITION_MIN_ROWS` rows) into `SYNC_PARTITIONS` key ranges, and the mapped **load_partition**
tasks stream, push and verify one range each, on any worker (at most `SYNC_PARTITIONS_AT_ONCE`
together when set); a failed partition is retried alone, and deletes are looked for only after
every partition finished. Otherwise (every incremental run) there is no partition and **load** streams the rows of
Base A changed after the watermark (less a look-back for late commits) to the API's bulk endpoint;
**propagate_deletes** removes from Base B the rows
Base A deleted: those its `delete_log` (filled by a trigger per table) lists since the last
position, and, once a day (`SYNC_KEY_CHECK_HOURS`), when asked, and on every run where Base A has no
delete trigger (`make up`'s Base A: the task log says so), every key Base B holds that
Base A lacks (that comparison also re-sends the rows Base B lacks or holds older: commits later
than the look-back). Before it, **check_deletes** counts those deletes (writing nothing) against the
**mass-delete circuit breaker**: more than max(`SYNC_MASS_DELETE_MIN_ROWS`, 100;
`SYNC_MASS_DELETE_SHARE`, 5% of the entity's synced rows in Base B) and the run waits on
**approve_mass_delete** (Browse → Required Actions, or the task's page): its text says how many
rows, which share, the limit and from which source (delete log, key comparison). Check Base A
first (a truncated table, a wrong soft-delete rule, a changed filter). **Approve**: the deletes
go when the field `rows` covers them (fewer than counted: nothing is deleted, propagate_deletes fails
saying why and verify and commit_watermark do not run: clear check_deletes with its downstream tasks
to count and ask again; a cleared task shows its first prompt's count: type today's, which
check_deletes' log shows).
**Reject**, or no answer within `SYNC_MASS_DELETE_APPROVAL_HOURS` (12): nothing is
deleted, the load is still verified and committed, the delete log position stays, and the next
run asks again. While it waits, this run holds the DAG (`max_active_runs=1`): later runs queue.
**verify** compares counts and checksums of the window on both sides and re-sends
rows Base B lacks; **commit_watermark** then advances the watermark and the delete log position.
A failure anywhere leaves the watermark where it was: the next attempt repeats the window,
and repeating is safe (the API's version guard makes a re-sent row a no-op). Only transient
failures are retried (API or database briefly away, 429/502/503/504); a terminal one (the API
refused the request, verification still differs, an invalid setting) fails the task at once with
the reason in its log: fix the cause, then clear the task with its downstream tasks ("Downstream"
in the clear dialog, not "Only failed"). Always: after **Mark run as failed** (or a run failed by its
timeout) the tasks not yet run are *skipped*, not upstream_failed, and clearing the failed task alone
ends in a green run that never deleted, verified or committed (the watermark stays: the next run
repeats the window).

**A run that never starts its tasks** (running, no task log; a task's dependencies say "Logical
date ... is in the future": it was triggered with a future logical date) holds the DAG, and later
runs queue behind it. Mark it failed; else the scheduler fails it after `SYNC_RUN_TIMEOUT_HOURS`
(24), the longest any run may take. **A deleted DAG** comes back paused: unpause it (the
watermarks survive).

**Base A through its mapping**: every read goes through the mapping file `BASE_A_MAPPING_FILE`
(source tables, keys, cursors, filters, soft deletes, field transforms; see docs/mapping.md);
without one, Base A is the platform's own (`base-a init`). A row the mapping refuses is a rejection
with its reasons, never a failed run.

**Manual runs** (Trigger DAG w/ config): `full_refresh` re-reads all of Base A; `entities`
limits the run; `replay_rejections` re-sends the rows the API rejected before (after a fix);
`compare_keys` compares every key for hard deletes (a full refresh does too);
`approve_mass_delete` lets the run delete more than the circuit breaker's limit without asking
(only after checking Base A: it approves whatever the run finds). Not **Backfill** (beside Single
Run in the trigger dialog): a run syncs everything after its watermark, not a date interval, so a
backfill repeats the same run, several at once (README, "Running a sync by hand").

**Where to look**
- Progress and per-chunk counts: the task logs. Counts per run: the XCom of `commit_watermark`.
- Watermarks and the last run's statistics: Admin → Variables, `base_a_to_base_b.watermark.<entity>`.
  Delete the variable (or run with `full_refresh`) to re-sync from the start.
- Rejected rows, with reasons: `GET /<entity>/rejections` on the REST API. Fix the row in Base A
  (the next run sends it again) or fix the cause and run with `replay_rejections`.
- Connections: `base_a` (mysql or sqlite) and `base_b_api` (http, password = the API token).
"""

APPROVAL_RUNBOOK = """
### Approve a mass delete

This run would delete more rows than the circuit breaker lets a run delete unasked, or, while the
events path holds deletes of the entity (a mass delete it met), any rows at all; the prompt says
how many, their share of the synced rows, the limit and the source (delete log, key comparison).
Check Base A first: a truncated table, a wrong soft-delete rule or a changed filter
look like mass deletes. **Approve** with `rows` at least the count (today's, from check_deletes'
log, if this task was cleared): the deletes go. Fewer: nothing is deleted and propagate_deletes
fails saying why. **Reject** (or no answer in time): nothing is deleted, the load is still
verified and committed, and the next run asks again.
"""

settings = SyncSettings()
# The entities the mapping file maps (BASE_A_MAPPING_FILE, read, never a database, at parse time).
ENTITY_NAMES = SourceMapping.from_settings().entities


@dag(
    dag_id="base_a_to_base_b",
    schedule=settings.schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # A run whose tasks never start (a future logical date) would otherwise hold the DAG until that date.
    dagrun_timeout=batch_run_timeout(settings),
    tags=["sync", "base_a", "base_b", "batch"],
    doc_md=RUNBOOK,
    user_defined_filters=airflow_tasks.PARTITION_FILTERS,  # names load_partition's instances by range
    description="Copy Base A into Base B by cursor, every SYNC_SCHEDULE: load, deletes, verify, commit per entity",
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        # A task ends by then and is retried (a load blocked by a lock on Base A waited a day); the
        # mass-delete approval waits for an operator by its own response_timeout instead.
        "execution_timeout": timedelta(hours=settings.task_timeout_hours),
    },
    params={
        "full_refresh": Param(False, type="boolean", description="re-read every row of Base A"),
        "entities": Param(
            list(ENTITY_NAMES),
            type="array",
            items={"type": "string", "enum": list(ENTITY_NAMES)},
            minItems=1,
            uniqueItems=True,
            description="entities to sync in this run",
        ),
        "replay_rejections": Param(False, type="boolean", description="re-send rows the API rejected before"),
        "compare_keys": Param(
            False, type="boolean", description="look for hard deletes by comparing every key, not only the delete log"
        ),
        "approve_mass_delete": Param(
            False,
            type="boolean",
            description="let this run delete more than the circuit breaker's limit (SYNC_MASS_DELETE_SHARE of the "
            "synced rows, at least SYNC_MASS_DELETE_MIN_ROWS) without asking: only after checking Base A",
        ),
    },
)
def base_a_to_base_b():
    for entity in ENTITY_NAMES:
        with TaskGroup(group_id=entity, tooltip=f"sync {entity}"):
            planned = task(task_id="plan_partitions")(airflow_tasks.plan_partitions)(entity)
            loaded = task(task_id="load")(airflow_tasks.load)(entity, planned)
            # One mapped task per key range (none on incremental runs: the mapped task is skipped),
            # at most SYNC_PARTITIONS_AT_ONCE of them running together (None: no cap).
            parts = (
                task(
                    task_id="load_partition",
                    max_active_tis_per_dagrun=settings.partitions_at_once or None,
                    map_index_template=airflow_tasks.PARTITION_MAP_INDEX,  # "2/4: keys 250001..500000"
                )(airflow_tasks.load_partition)
                .partial(entity=entity)
                .expand(partition=planned)
            )
            # The mass-delete circuit breaker: count first; over the budget, an operator approves or not.
            # After every partition (none_failed: also after skipped ones), so a key comparison sees
            # every row the load wrote: one compared before its partition wrote it would stay.
            checked = task.branch(task_id=airflow_tasks.CHECK_DELETES, trigger_rule="none_failed")(
                airflow_tasks.check_deletes
            )(entity)
            approval = airflow_tasks.MassDeleteApproval(  # no answer in time: Reject, nothing deleted
                task_id=airflow_tasks.APPROVE_MASS_DELETE,
                entity=entity,
                response_timeout=timedelta(hours=settings.mass_delete_approval_hours),
                execution_timeout=None,
                doc_md=APPROVAL_RUNBOOK,
            )
            # Runs after the check alone (within the budget) or after an approval; a rejection skips it.
            deleted = task(task_id=airflow_tasks.PROPAGATE_DELETES, trigger_rule="none_failed_min_one_success")(
                airflow_tasks.propagate_deletes
            )(entity)
            # Runs after skipped deletes too (rejected): the load's window is verified and committed.
            verified = task(task_id="verify", trigger_rule="none_failed_min_one_success")(airflow_tasks.verify)(
                entity, loaded
            )
            # Runs after skipped (unmapped) partitions and skipped (rejected) deletes, never after a failed
            # task, nor when every upstream was skipped (the entity is not in the run's `entities`). An
            # asset event base_b.<entity> only when the run changed Base B (through the alias).
            outlet = airflow_tasks.BASE_B_CHANGES
            commit = task(task_id="commit_watermark", outlets=[outlet], trigger_rule="none_failed_min_one_success")(
                airflow_tasks.commit_watermark
            )
            [loaded, parts] >> checked >> [approval, deleted]
            approval >> deleted >> verified
            # The plan too: the commit takes only its partitions' reports (a re-planned run keeps the
            # results of map indexes the new plan dropped). The deletes' result it reads itself: a
            # rejection skips them (`commit_watermark`).
            deleted >> commit(entity, loaded, verified, parts, planned)


base_a_to_base_b()
