"""Dirty source values (base_sync.dirty): zero and invalid dates in Base A, on real MariaDB with a lax
sql_mode set per session, are quarantined with the reason on both paths; runs complete and verify."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from base_sync import events, partitioned, sync
from base_sync.debezium import EnvelopeWriter, Topics, decode
from base_sync.delete_guard import DeleteBudget, RunDeleteGuard
from base_sync.demo import generate
from base_sync.dirty import Quarantined
from base_sync.source import Reach
from base_sync.state import MemoryStateStore
from tests.sync.conftest import assert_in_sync
from tests.sync.test_sync_steps import SETTINGS, run_once

ZERO_HIRED = "hired_at is the zero date 0000-00-00"
ZERO_VERSION = "updated_at is the zero timestamp 0000-00-00 00:00:00: the row has no usable version"


def insert_dirty(engine, row_id: int, hired_at: str, updated_at: str | None = None) -> None:
    """A row as a legacy writer leaves it, under a lax sql_mode (this session only)."""
    stamp = f"'{updated_at}'" if updated_at else "CURRENT_TIMESTAMP(6)"
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(
            text(
                "INSERT INTO employees (id, first_name, last_name, email, salary, hired_at, updated_at) "
                f"VALUES (:id, 'Dirty', 'Row', :email, 10.00, '{hired_at}', {stamp})"
            ),
            {"id": row_id, "email": f"dirty{row_id}@example.com"},
        )


def open_reasons(api, entity: str = "employees") -> dict[int, list[str]]:
    return {r["source_id"]: [x["message"] for x in r["reasons"]] for r in api.open_rejections(entity)}


def test_zero_dates_are_quarantined_and_runs_complete(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 30, seed_value=7)
    insert_dirty(base_a_engine, 1001, "0000-00-00")
    insert_dirty(base_a_engine, 1002, "2020-01-01", "0000-00-00 00:00:00")
    insert_dirty(base_a_engine, 1003, "2024-00-10")

    first = run_once("employees", base_a, api, store, full_refresh=True)
    assert first["load"]["quarantined"] == 3 and first["load"]["inserted"] == 30
    assert first["verify"]["quarantined"] == 2  # the two in the window; 1002 is in no window
    assert open_reasons(api) == {
        1001: [ZERO_HIRED],
        1002: [ZERO_VERSION],
        1003: ["hired_at is not a valid date: 2024-00-10"],
    }
    held = {r["source_id"]: r["record"] for r in api.open_rejections("employees")}
    assert held[1001]["hired_at"] == "0000-00-00" and held[1001]["email"] == "dirty1001@example.com"

    # Incremental: new dirty rows after the watermark; the cursor passes them (the next run reads nothing new).
    insert_dirty(base_a_engine, 1004, "0000-00-00")
    insert_dirty(base_a_engine, 1005, "2021-05-05", "0000-00-00 00:00:00")
    second = run_once("employees", base_a, api, store)
    assert second["load"]["quarantined"] == 3  # 1004 from the window, 1002 and 1005 without a version
    assert second["load"].get("inserted", 0) == 0
    third = run_once("employees", base_a, api, store)
    assert third["load"]["extracted"] == 2, "only the unversioned rows are read again, not the window"
    assert set(open_reasons(api)) == {1001, 1002, 1003, 1004, 1005}

    # Fixed in Base A (ON UPDATE gives a real stamp), then replayed: all synced, nothing open.
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE employees SET hired_at = '2020-02-02' WHERE id > 1000"))
    replayed = sync.replay_rejections("employees", base_a, api, SETTINGS)
    assert replayed.still_rejected == 0
    assert run_once("employees", base_a, api, store)["verify"]["quarantined"] == 0
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 35


def test_a_partitioned_first_load_quarantines_dirty_rows_once(base_a, base_a_engine, base_b):
    api = base_b.api()
    generate.seed(base_a_engine, "employees", 40, seed_value=8)
    insert_dirty(base_a_engine, 1001, "0000-00-00")
    insert_dirty(base_a_engine, 1002, "2020-01-01", "0000-00-00 00:00:00")
    settings = SETTINGS.model_copy(update={"partitions": 2, "partition_min_rows": 1})
    plan = partitioned.plan("employees", base_a, MemoryStateStore(), settings)
    assert len(plan) == 2
    reports = [partitioned.load_partition(p, base_a, api, settings) for p in plan]
    # The unversioned row is in no key window: the first partition alone reads and quarantines it.
    assert [r.counts.get("quarantined", 0) for r in reports] in ([2, 0], [1, 1])
    assert sum(r.counts.get("inserted", 0) for r in reports) == 40
    assert open_reasons(api) == {1001: [ZERO_HIRED], 1002: [ZERO_VERSION]}
    report, _ = partitioned.combine(partitioned.left_to_partitions("employees", MemoryStateStore(), len(plan)), reports)
    assert report.until is not None and report.until.updated_at.year > 1970


class FakeMessage:
    """What the drain keeps of a Kafka message until it dead-letters it."""

    def __init__(self, value: bytes):
        self._value = value

    def value(self) -> bytes:
        return self._value


def test_the_same_rows_as_events_end_quarantined_with_the_same_reasons(base_b):
    api = base_b.api()
    writer = EnvelopeWriter.identity("employees")
    row = {
        "id": 2001,
        "first_name": "Dirty",
        "last_name": "Event",
        "email": "dirty2001@example.com",
        "salary": None,
        "hired_at": None,  # the binlog decoder's None for an unreadable date: the relay names the column
        "created_at": datetime(2024, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2024, 1, 2, tzinfo=UTC),
    }
    zero_stamp = {**row, "id": 2002, "email": "dirty2002@example.com", "hired_at": None}
    zero_stamp["updated_at"] = datetime(1970, 1, 1, tzinfo=UTC)  # the binlog's reading of the zero TIMESTAMP
    topic = Topics().topic("employees")
    first = writer.envelope("c", None, row, {"ts_ms": 1}, 1, invalid=((), ("hired_at",)))
    second = writer.envelope("c", None, zero_stamp, {"ts_ms": 1}, 1)
    assert orjson.loads(first)["payload"]["after"]["hired_at"] == "0000-00-00", "never published as null"

    changes = [decode(topic, first), decode(topic, second)]
    plan = events.Plan([], {"employees": [(c, FakeMessage(b"")) for c in changes], "articles": []}, [])
    dead, counts = events.send(plan, api, RunDeleteGuard(DeleteBudget.of(SETTINGS), api.synced_rows))
    assert counts["employees"]["quarantined"] == 2
    assert [kind for _, kind, _ in dead] == ["Quarantined", "Quarantined"]
    assert open_reasons(api) == {2001: [ZERO_HIRED], 2002: [ZERO_VERSION]}


def test_a_chunk_of_only_rows_without_a_usable_version_logs_no_window_yet(caplog):
    """Found from outside: a first chunk holding only a quarantined row logged "the window reaches None"."""
    track = sync.progress("employees", Reach())
    with caplog.at_level("INFO", logger="base_sync"):
        track([Quarantined(7, None, {"id": 7}, [{"field": "updated_at", "message": "not a date"}])])
    (line,) = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    assert line == "employees: read 1 rows (1 so far), no row with a usable version yet", line
