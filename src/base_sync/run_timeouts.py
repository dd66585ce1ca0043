"""How long a DAG run may take before Airflow's scheduler fails it (the DAGs' `dagrun_timeout`).

Without one, a run that never starts its tasks holds the DAG for good (`max_active_runs=1`): a
manual run given a future logical date waits "Logical date ... is in the future" until that date,
and every later run queues behind it. The timeout must outlast every legitimate run, so it is
computed from the settings that bound one."""

from __future__ import annotations

from datetime import timedelta

from base_sync.settings import EventSettings, SyncSettings, longest_api_call_seconds

# The events DAG's retry policy (its default_args), here so the timeout follows it.
EVENTS_RETRIES = 3
EVENTS_RETRY_DELAY = timedelta(seconds=5)
EVENTS_MAX_RETRY_DELAY = timedelta(minutes=2)
# A try's start-up (the task process, the consumer's assignment) and its close (the producer's flush).
EVENTS_TRY_OVERHEAD = timedelta(minutes=1)


def events_run_timeout(settings: EventSettings) -> timedelta:
    """Every try of apply_changes at its longest, and the waits between them.

    A try stops taking batches after EVENTS_MAX_RUN_SECONDS, then settles the batch in flight and
    the rows it held back (an API call each at most, with its retries), so it ends about then."""
    tail = timedelta(seconds=2 * longest_api_call_seconds(settings.api_timeout))
    one_try = timedelta(seconds=settings.max_run_seconds) + tail + EVENTS_TRY_OVERHEAD
    return (EVENTS_RETRIES + 1) * one_try + EVENTS_RETRIES * EVENTS_MAX_RETRY_DELAY


def batch_run_timeout(settings: SyncSettings) -> timedelta:
    """SYNC_RUN_TIMEOUT_HOURS. The batch run's worst case (each of its sequential steps failing at
    SYNC_TASK_TIMEOUT_HOURS on every try, and the approval's wait) is days: a blocked DAG would stay
    blocked that long, so the bound is a setting of its own, kept above one approval's wait and one
    task's timeout after it (SyncSettings checks)."""
    return timedelta(hours=settings.run_timeout_hours)
