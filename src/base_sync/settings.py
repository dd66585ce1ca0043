"""The sync library's settings, from the environment (SYNC_*)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from baseab_contract.bulk_format import SOURCE_ID_RANGE
from env_settings import DAY, GIB, HOUR, WEEK, WEEK_HOURS, YEAR_HOURS, EnvSettings

# A quarter of the API's default body limit (API_MAX_CONTENT_LENGTH, 64 MiB): room for a lower one.
MAX_BODY_BYTES = 16 * 2**20
# Three quarters of it: a chunk's JSON (names, quotes and escapes added) still fits one request.
CHUNK_BYTES = 12 * 2**20
# Messages of one events batch: 5,000 events of narrow rows (schemas and both images) stay one batch.
EVENT_BATCH_BYTES = 32 * 2**20

# The API client's: seconds to connect, retries of a call (each with back-off), the first wait.
API_CONNECT_TIMEOUT = 10.0
API_RETRIES = 5
API_BACKOFF = 0.5
API_TIMEOUT = 120.0  # seconds per API request, unless SYNC_API_TIMEOUT says otherwise


def longest_api_call_seconds(timeout: float = API_TIMEOUT, retries: int = API_RETRIES) -> int:
    """How long one API call may take with all its retries: each try its connect and read timeouts,
    and the back-off between them (urllib3's: none before the first retry, then doubling)."""
    tries = retries + 1
    waits = sum(API_BACKOFF * 2 ** (n - 1) for n in range(2, tries))
    return int(tries * (min(API_CONNECT_TIMEOUT, timeout) + timeout) + waits) + 1


# Airflow's schedule presets (a `None` schedule is not a setting here: every DAG runs on one).
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")


class _Schedules:
    """Validation of the schedule settings: a cron expression or a preset Airflow accepts, refused here
    with the value and an example (EnvSettings names the variable), rather than by Airflow's parser
    at DAG import (whose error names neither the variable nor the value)."""

    @field_validator("schedule", "fallback_schedule", check_fields=False)
    @classmethod
    def _cron_or_preset(cls, value: str, info: ValidationInfo) -> str:
        from croniter import croniter  # Airflow's own (its cron timetables): installed wherever a DAG runs

        if value in PRESETS or croniter.is_valid(value):
            return value
        raise ValueError(f"{value!r} is no cron expression (5 fields, e.g. '*/15 * * * *') nor a preset")


DEFAULT_RUN_TIMEOUT_HOURS = 24.0
# An online schema change's cut-over (pt-online-schema-change, gh-ost) or a column renamed and back takes seconds.
SCHEMA_RECHECK_SECONDS = 15.0


class SyncSettings(_Schedules, EnvSettings):
    model_config = SettingsConfigDict(env_prefix="SYNC_", extra="ignore")

    chunk_size: int = Field(5000, ge=1, le=20_000, description="rows per bulk request")
    chunk_bytes: int = Field(
        CHUNK_BYTES,
        ge=65_536,
        le=GIB,
        description="most bytes of text a chunk of rows holds, whatever SYNC_CHUNK_SIZE: wide rows (long texts) "
        "make chunks of fewer rows; keep it below SYNC_MAX_BODY_BYTES, or chunks are encoded twice to be split",
    )
    schema_recheck_seconds: float = Field(
        SCHEMA_RECHECK_SECONDS,
        ge=0,
        le=600,
        description="when a task's schema check finds only mapped tables or columns missing, it checks again "
        "once after this many seconds before failing for good (a rename under way, an online schema change's "
        "cut-over); 0: no second check",
    )
    push_concurrency: int = Field(2, ge=1, le=16, description="bulk requests in flight at once")
    lookback_seconds: float = Field(
        60.0, ge=0, le=WEEK, description="re-read this far behind the watermark, for transactions that committed late"
    )
    bucket_size: int = Field(
        10_000,
        ge=1,
        le=SOURCE_ID_RANGE[1],  # the API's: a BIGINT
        description="keys per bucket when comparing keys for hard deletes",
    )
    key_check_hours: float = Field(
        24.0,
        ge=0,
        le=YEAR_HOURS,
        description="compare every key and version of both sides at most this often (0: every run): hard "
        "deletes, and rows committed too late for the look-back; in between, hard deletes come from Base A's "
        "delete log, at a cost proportional to the deletes",
    )
    delete_log_retention_hours: float = Field(
        168.0,
        gt=0,
        le=YEAR_HOURS,
        description="the sync purges Base A's delete log entries this far behind its position",
    )
    repair_limit: int = Field(
        100_000,
        ge=0,
        le=10_000_000,  # the keys re-sent are held in memory
        description="most rows verification re-sends itself; beyond it the task fails (no retry) and the next run "
        "re-reads the window",
    )
    partitions: int = Field(
        4,
        ge=1,
        le=64,
        description="key ranges a first load or full refresh is cut into, each its own mapped task (1: no split)",
    )
    partitions_at_once: int = Field(
        0,
        ge=0,
        le=64,
        description="most partitions of one entity loading at the same time (0: as many as the executor has "
        "slots); with SYNC_PUSH_CONCURRENCY it bounds the bulk requests a partitioned load keeps at the API",
    )
    partition_min_rows: int = Field(
        500_000,
        ge=0,
        le=10**12,
        description="a table with fewer rows than this is loaded in one piece, whatever SYNC_PARTITIONS",
    )
    mass_delete_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="a run that would delete more than this share of an entity's synced rows in Base B stops before "
        "deleting and waits for an operator's approval (the circuit breaker); an events run holds the deletes past "
        "it as dead letters, approved by replaying them",
    )
    mass_delete_min_rows: int = Field(
        100,
        ge=0,
        le=10_000_000,  # the deletes found are held in memory up to this many (PlannedDeletes)
        description="the circuit breaker lets this many deletes through whatever the share (small tables)",
    )
    mass_delete_approval_hours: float = Field(
        12.0,
        gt=0,
        le=WEEK_HOURS,
        description="how long a blocked mass delete waits for an operator in the Airflow UI; then it is rejected",
    )
    task_timeout_hours: float = Field(
        6.0,
        gt=0,
        le=WEEK_HOURS,
        description="the longest a batch task may run before Airflow stops it and retries it (a hung read, a lock "
        "held on Base A); the mass-delete approval waits by SYNC_MASS_DELETE_APPROVAL_HOURS instead",
    )
    run_timeout_hours: float | None = Field(
        None,
        gt=0,
        le=2 * WEEK_HOURS,  # room for both the longest approval wait and the longest task timeout
        validate_default=True,
        description="the longest a batch run may take before Airflow fails it (its dagrun_timeout), so that a run "
        "whose tasks never start (a manual run given a future logical date) does not hold the DAG for good; at "
        "least SYNC_MASS_DELETE_APPROVAL_HOURS + SYNC_TASK_TIMEOUT_HOURS, and by default 24 or that sum if "
        "larger. Raise it for a first load that takes longer",
    )

    @field_validator("run_timeout_hours")
    @classmethod
    def _outlasts_an_approval(cls, value: float | None, info: ValidationInfo) -> float | None:
        # A run that waited its full approval time still has one task's time to delete, verify and commit.
        approval, task = info.data.get("mass_delete_approval_hours"), info.data.get("task_timeout_hours")
        if approval is None or task is None:
            return value
        if value is None:  # not set: a day, or longer where the other two settings need it (no refusal on upgrade)
            return max(DEFAULT_RUN_TIMEOUT_HOURS, approval + task)
        if value >= approval + task:
            return value
        raise ValueError(
            f"{value} h would fail a run that waited for a mass-delete approval before it could commit: set it to at "
            f"least SYNC_MASS_DELETE_APPROVAL_HOURS + SYNC_TASK_TIMEOUT_HOURS ({approval} + {task} h)"
        )

    # At most a day: with its retries it is MySQL's net_write_timeout and wait_timeout (mysql_session.idle_seconds).
    api_timeout: float = Field(API_TIMEOUT, gt=0, le=DAY, description="seconds per API request")
    max_body_bytes: int = Field(
        MAX_BODY_BYTES,
        ge=65_536,
        le=GIB,
        description="largest bulk request body (below the API's API_MAX_CONTENT_LENGTH)",
    )
    schedule: str = Field("*/15 * * * *", description="cron or preset of the batch DAG, read when the DAG is parsed")
    base_a_conn_id: str = Field("base_a", description="Airflow connection of Base A (mysql or sqlite)")
    api_conn_id: str = Field("base_b_api", description="Airflow connection of the REST API (http; password = token)")


class EventSettings(_Schedules, EnvSettings):
    """The events path: the topics the relay writes and the DAG drains (EVENTS_*)."""

    model_config = SettingsConfigDict(env_prefix="EVENTS_", extra="ignore")

    kafka_conn_id: str = Field(
        "base_a_kafka",
        description="Airflow connection of the broker (kafka; extra = librdkafka settings, enable.auto.commit false)",
    )
    topic_prefix: str = Field(
        "base_a", description="Debezium's topic.prefix: topics are <prefix>.<source database>.<source table>"
    )
    source_database: str = Field(
        "base_a",
        description="Base A's schema (database) name, the middle part of the topic names; read when the DAG is "
        "parsed, so it is a setting, not looked up in Base A. It must be the database the relay's "
        "RELAY_BASE_A_URL (or Debezium's database.include.list) names",
    )
    dlq_topic: str = Field("base_a.dlq", description="where malformed and rejected events go, with the reason")
    dlq_retention_ms: int = Field(
        -1,
        ge=-1,
        le=YEAR_HOURS * HOUR * 1000,
        description="retention.ms the dead-letter topic is created with: -1 (the default) keeps letters until "
        "replayed and beyond (the topic holds their only copy), else at least an hour, in milliseconds. An existing "
        "topic is not changed: a shorter retention on it is warned of, with the command that changes it",
    )
    dlq_count_seconds: int = Field(
        900,
        ge=60,
        le=DAY,
        description="a drain counts the dead letters waiting (not replayed) when the last count is this old: "
        "a count reads the whole dead-letter topic, too much for every drain of a large one",
    )
    group_id: str = Field("base_a_events.apply", description="consumer group whose offsets mark what Base B holds")
    batch_size: int = Field(5000, ge=1, le=20_000, description="events applied per bulk request at most")
    batch_bytes: int = Field(
        EVENT_BATCH_BYTES,
        ge=65_536,
        le=GIB,
        description="most bytes of messages a batch holds, whatever EVENTS_BATCH_SIZE: events of wide rows (up to "
        "RELAY_MESSAGE_MAX_BYTES each) make batches of fewer events",
    )
    idle_seconds: float = Field(
        5.0,
        gt=0,
        le=HOUR,
        description="a run ends once no event arrived for this long; while a run waits, a change is applied in "
        "well under a second, after it the next change waits for a new run (seconds to start)",
    )
    max_run_seconds: float = Field(600.0, gt=0, le=DAY, description="a run hands over to the next one after this long")
    fallback_schedule: str = Field(
        "* * * * *", description="cron of the runs made whether or not an asset event arrived (burst tails)"
    )
    api_timeout: float = Field(60.0, gt=0, le=DAY, description="seconds per API request")
    max_body_bytes: int = Field(
        MAX_BODY_BYTES,
        ge=65_536,
        le=GIB,
        description="largest bulk request body (below the API's API_MAX_CONTENT_LENGTH)",
    )
    api_conn_id: str = Field("base_b_api", description="Airflow connection of the REST API (http; password = token)")

    @field_validator("dlq_retention_ms")
    @classmethod
    def _kept_or_an_hour(cls, value: int) -> int:
        if value == -1 or value >= HOUR * 1000:
            return value
        raise ValueError(f"{value} is neither -1 (keep until replayed) nor at least an hour (3600000 ms)")
