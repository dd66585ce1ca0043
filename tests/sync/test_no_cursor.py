"""A Base A table without a cursor (`cursor: none`): synced by comparing checksums of key buckets.

A legacy table of another team (no change stamp, German names, a soft-delete flag) on the real
MariaDB, mapped to Base B's employees; the API as a process over PostgreSQL. About 5 s.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, text

from base_sync import partitioned, sync
from base_sync.checksummed import CHECKSUMS, bucket_ranges
from base_sync.key_ranges import KeyRange
from base_sync.mapping import SourceMapping
from base_sync.records import encode
from base_sync.reports import LoadReport
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, source_engine
from base_sync.state import MemoryStateStore
from baseab_contract.entities import ENTITIES
from tests.sync.conftest import synced_rows

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=7, bucket_size=10, partition_min_rows=1)
ENTITY = "employees"

LEGACY_TABLE = """
CREATE TABLE personal (
    pers_nr INT PRIMARY KEY,
    vorname VARCHAR(100) NOT NULL,
    nachname VARCHAR(100) NOT NULL,
    mail VARCHAR(255) NOT NULL,
    abt CHAR(1) NULL,
    gehalt DECIMAL(12, 2) NULL,
    eintritt DATE NULL,
    aktiv TINYINT NOT NULL DEFAULT 1,
    bemerkung VARCHAR(200) NULL
)
"""

MAPPING = """
source: {time_zone: Europe/Berlin}
entities:
  employees:
    table: personal
    key: pers_nr
    cursor: none
    soft_delete: {column: aktiv, deleted_when: 0}
    fields:
      first_name: {column: vorname, trim: true}
      last_name: {column: nachname}
      email: {column: mail, trim: true, case: lower}
      department: {column: abt, map: {V: Sales, E: Engineering}}
      salary: {column: gehalt}
      hired_at: {column: eintritt}
"""


@pytest.fixture
def legacy(base_a_engine, tmp_path) -> BaseA:
    """Base A with the platform's own tables (so an `employees` delete trigger exists, on another
    table) and the legacy table `personal`, rows 1..100; a reader through the mapping."""
    with base_a_engine.begin() as conn:
        conn.exec_driver_sql(LEGACY_TABLE)
        for key in range(1, 101):
            conn.execute(
                text(
                    "INSERT INTO personal (pers_nr, vorname, nachname, mail, abt, gehalt, eintritt, bemerkung) "
                    "VALUES (:k, :first, :last, :mail, :abt, :salary, :hired, NULL)"
                ),
                {
                    "k": key,
                    "first": f" Vor{key} ",
                    "last": f"Nach{key}",
                    "mail": f"P{key}@Example.COM",
                    "abt": "VE"[key % 2] if key % 7 else None,
                    "salary": Decimal(40_000 + key) if key % 5 else None,
                    "hired": f"2020-01-{1 + key % 28:02d}",
                },
            )
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    return BaseA(base_a_engine, SourceMapping.from_file(path))


def run_once(base_a: BaseA, api, store, settings=SETTINGS) -> tuple[LoadReport, dict, dict]:
    """One batch run as the DAG orders it; the commit gets the stats the DAG's commit task builds."""
    report = sync.load(ENTITY, base_a, api, store, settings)
    deleted = sync.propagate_deletes(ENTITY, base_a, api, store, settings)
    verified = sync.verify(ENTITY, base_a, api, LoadReport.from_json(report.to_json()), settings)
    stats = {"load": report.to_json(), "verify": verified.to_json(), "deletes": deleted.to_json()}
    sync.commit(ENTITY, store, LoadReport.from_json(report.to_json()), stats)
    return report, deleted.to_json(), verified.to_json()


def mapped_source(base_a: BaseA, engine: Engine) -> dict[int, tuple]:
    """{key: (data fields...)} of the live legacy rows, mapped the way the events path maps a row."""
    view = base_a.view(ENTITY)
    names = ENTITIES[ENTITY].field_names
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM personal WHERE aktiv <> 0"))]
    out = {}
    for row in rows:
        record = view.apply(row, version=datetime(2000, 1, 1))
        out[row["pers_nr"]] = tuple(_plain(record.get(n)) for n in names)
    return out


def _plain(value):
    return str(value) if isinstance(value, Decimal) else value


def assert_base_b_holds(base_a: BaseA, engine: Engine, database_url: str, versions: dict[int, datetime]) -> None:
    """Base B holds exactly the mapped live rows, each at the version given for its bucket."""
    expected, held = mapped_source(base_a, engine), synced_rows(database_url, ENTITY)
    assert sorted(held) == sorted(expected)
    differing = [k for k in expected if held[k][1:] != expected[k]]
    assert differing == [], (differing[:3], [(held[k], expected[k]) for k in differing[:3]])
    wrong = {k: held[k][0] for k in held if held[k][0] != versions[k // SETTINGS.bucket_size]}
    assert wrong == {}


def test_a_table_without_a_cursor_resends_only_the_buckets_whose_checksum_changed(
    legacy, base_a_engine, base_b, caplog
):
    caplog.set_level(logging.INFO, logger="base_sync")
    store, api = MemoryStateStore(), base_b.api()
    assert not legacy.view(ENTITY).has_cursor
    assert partitioned.plan(ENTITY, legacy, store, SETTINGS) == []  # a first load in one piece

    # First run: nothing stored, every row read, each at Base A's clock when the reads began.
    before = legacy.now()
    first, _, verified = run_once(legacy, api, store)
    assert before <= first.clock <= legacy.now()
    assert first.clock.utcoffset() == timedelta(0)  # UTC, to the microsecond (Base B holds it exactly, below)
    assert first.counts["inserted"] == first.scan.rows_reread == 100 and first.scan.compared == 0
    assert first.scan.changed == list(range(11)) and verified["rows"] == 100 and verified["repaired"] == 0
    assert_base_b_holds(legacy, base_a_engine, base_b.database_url, dict.fromkeys(range(11), first.clock))
    state = store.last_stats(ENTITY)
    assert state[CHECKSUMS]["bucket_size"] == 10 and len(state[CHECKSUMS]["buckets"]) == 11
    assert "buckets" not in state["load"]["scan"]  # stored once, not again in the load report
    assert store.get(ENTITY).updated_at == first.clock

    # Three updates (buckets 1 and 3), two inserts (a new bucket 11), a hard delete (5), a soft
    # delete (7), and a change of a column the mapping does not read (bucket 9: no change for Base B).
    with base_a_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE personal SET nachname = 'Neu' WHERE pers_nr IN (12, 15)")
        conn.exec_driver_sql("UPDATE personal SET gehalt = NULL, abt = 'X' WHERE pers_nr = 33")
        conn.exec_driver_sql(
            "INSERT INTO personal (pers_nr, vorname, nachname, mail) VALUES "
            "(111, 'Neu', 'Eins', 'n1@example.com'), (112, 'Neu', 'Zwei', 'n2@example.com')"
        )
        conn.exec_driver_sql("DELETE FROM personal WHERE pers_nr = 57")
        conn.exec_driver_sql("UPDATE personal SET aktiv = 0 WHERE pers_nr = 78")
        conn.exec_driver_sql("UPDATE personal SET bemerkung = 'nur intern' WHERE pers_nr = 91")

    caplog.clear()
    second, deleted, verified = run_once(legacy, api, store)
    scan = second.scan
    assert scan.compared == 12 and scan.changed == [1, 3, 5, 7, 11] and scan.gone == []
    # The live rows of the changed buckets (10 + 10 + 9 + 9 + 2), nothing else.
    assert scan.rows_reread == second.counts["extracted"] == 40
    # The unchanged rows of a changed bucket come with a newer version: the API counts them updated.
    assert second.counts["inserted"] == 2 and second.counts["updated"] == 38
    assert deleted["deleted"] == 2 and deleted["buckets"] == 12 and deleted["suspect_buckets"] == 2
    assert verified == {"rows": 40, "repaired": 0, "ahead": 0, "moved_on": 0, "quarantined": 0}
    assert second.clock > first.clock
    versions = dict.fromkeys(range(12), first.clock) | dict.fromkeys(scan.changed, second.clock)
    assert_base_b_holds(legacy, base_a_engine, base_b.database_url, versions)
    cost = [r.getMessage() for r in caplog.records if "buckets compared" in r.getMessage()]
    assert cost and "12 buckets compared, 5 changed, 0 gone; 40 rows re-read" in cost[0]

    # A run without changes re-reads nothing, and Base B keeps every version.
    third, deleted, verified = run_once(legacy, api, store)
    assert third.scan.compared == 12 and third.scan.changed == [] and third.scan.rows_reread == 0
    assert third.counts.get("extracted", 0) == 0 and deleted["deleted"] == 0 and verified["rows"] == 0
    assert_base_b_holds(legacy, base_a_engine, base_b.database_url, versions)
    assert store.get(ENTITY).updated_at == third.clock


def test_verification_finds_and_repairs_a_row_missing_from_an_unchanged_bucket(legacy, base_a_engine, base_b):
    """A bucket whose (count, key sum) differs between the sides is checked key by key, changed or not."""
    store, api = MemoryStateStore(), base_b.api()
    first, _, _ = run_once(legacy, api, store)
    engine = create_engine(base_b.database_url)
    with engine.begin() as conn:  # a row lost from Base B behind the sync's back
        conn.execute(text("DELETE FROM employees WHERE source_id = 44"))
    engine.dispose()
    second, _, verified = run_once(legacy, api, store)
    assert second.scan.changed == [] and verified["repaired"] == 1 and verified["rows"] == 10
    held = synced_rows(base_b.database_url, ENTITY)
    assert 44 in held and held[44][0] > first.clock  # re-sent at Base A's clock of the repair


def test_a_row_without_a_key_is_refused_loudly_on_every_run(legacy, base_a_engine, base_b, caplog):
    """A nullable key column holding NULL: in no bucket, yet counted `unkeyed` and logged each run."""
    with base_a_engine.begin() as conn:
        conn.execute(text("ALTER TABLE personal DROP PRIMARY KEY, MODIFY pers_nr INT NULL, ADD UNIQUE (pers_nr)"))
        conn.execute(text("INSERT INTO personal (pers_nr, vorname, nachname, mail) VALUES (NULL, 'No', 'Key', 'n@k')"))
    store, api = MemoryStateStore(), base_b.api()
    for _ in range(2):
        caplog.clear()
        report, _, _ = run_once(legacy, api, store)
        assert report.counts["unkeyed"] == 1
        assert any("NULL key" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert len(synced_rows(base_b.database_url, ENTITY)) == 100


def test_an_event_committed_after_the_clock_wins_over_the_batch_copy(legacy, base_a_engine, base_b):
    """The batch's version is Base A's clock when its reads began, an event's its commit time: the
    version guard keeps the later one, whichever path writes last."""
    store, api = MemoryStateStore(), base_b.api()
    run_once(legacy, api, store)
    with base_a_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE personal SET nachname = 'Batch' WHERE pers_nr IN (12, 15)")
    committed = legacy.now() + timedelta(seconds=5)  # an event of key 15 committed after the next read began
    (row,) = next(legacy.rows_by_keys(ENTITY, [15], 10))
    event = legacy.view(ENTITY).apply({**row, "nachname": "Event"}, version=committed)
    assert api.bulk_upsert(ENTITY, encode([event]))["updated"] == 1
    second, _, verified = run_once(legacy, api, store)
    assert second.clock < committed and second.scan.changed == [1]
    assert second.counts["stale"] == 1 and second.counts["updated"] == 9 and verified["repaired"] == 0
    held = synced_rows(base_b.database_url, ENTITY)
    assert held[15][:3] == (committed, "Vor15", "Event") and held[12][:3] == (second.clock, "Vor12", "Batch")


def test_bucket_ranges_merge_neighbours():
    assert bucket_ranges([3, 1, 2, 7], 10) == [KeyRange(10, 39), KeyRange(70, 79)]
    assert bucket_ranges([], 10) == []
    assert bucket_ranges(range(5), 10, max_keys=20) == [KeyRange(0, 19), KeyRange(20, 39), KeyRange(40, 49)]
    assert bucket_ranges([0, 1], 10, max_keys=5) == [KeyRange(0, 9), KeyRange(10, 19)]


SQLITE_MAPPING = """
entities:
  employees:
    table: personal
    key: pers_nr
    cursor: none
    soft_delete: {column: aktiv, deleted_when: 0}
    fields:
      first_name: {column: vorname, trim: true}
      last_name: {column: nachname}
      email: {column: mail, case: lower}
"""


def test_an_sqlite_base_a_hashes_the_rows_in_python(tmp_path, base_b):
    """SQLite has no MD5: the checksums are summed while the rows stream, the same way on both reads."""
    engine = source_engine(f"sqlite:///{tmp_path / 'legacy.sqlite'}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE personal (pers_nr INTEGER PRIMARY KEY, vorname TEXT NOT NULL, nachname TEXT NOT NULL, "
            "mail TEXT NOT NULL, aktiv INTEGER NOT NULL DEFAULT 1)"
        )
        conn.execute(
            text("INSERT INTO personal (pers_nr, vorname, nachname, mail) VALUES (:k, :f, :l, :m)"),
            [{"k": k, "f": f"Vor{k}", "l": f"Nach{k}", "m": f"P{k}@X.DE"} for k in range(1, 51)],
        )
    path = tmp_path / "mapping.yaml"
    path.write_text(SQLITE_MAPPING)
    base_a = BaseA(engine, SourceMapping.from_file(path))
    store, api = MemoryStateStore(), base_b.api()
    first, _, _ = run_once(base_a, api, store)
    assert first.counts["inserted"] == 50 and len(first.scan.checksums) == 6
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE personal SET nachname = 'Neu' WHERE pers_nr = 23")
        conn.exec_driver_sql("UPDATE personal SET aktiv = 0 WHERE pers_nr = 41")
    second, deleted, verified = run_once(base_a, api, store)
    assert second.scan.changed == [2, 4] and second.scan.rows_reread == 19 and deleted["deleted"] == 1
    assert verified["rows"] == 19 and verified["repaired"] == 0
    held = synced_rows(base_b.database_url, ENTITY)
    assert sorted(held) == [k for k in range(1, 51) if k != 41] and held[23][2] == "Neu"
    assert {k: v[0] for k, v in held.items() if v[0] == second.clock}.keys() == set(range(20, 30)) | (
        set(range(40, 50)) - {41}
    )
    third, _, _ = run_once(base_a, api, store)
    assert third.scan.changed == [] and third.scan.rows_reread == 0
    engine.dispose()
