"""A legacy-shaped Base A on the real MariaDB, through the mapping: the SQL the batch extract pushes
down and the Python the events path applies give the same records and the same refusals, and the
batch steps keep Base B equal to the mapped source."""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml
from sqlalchemy import Engine, create_engine, select, text

from api_service.models import TABLES
from api_service.schemas import SCHEMAS
from base_sync import sync
from base_sync.debezium import Topics
from base_sync.delete_guard import LEFT_SCOPE
from base_sync.dirty import Quarantined
from base_sync.mapping import SourceMapping, parse_mapping
from base_sync.mapping.check import check_source
from base_sync.records import encode
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, Reach, source_engine
from base_sync.source_schema import install_delete_log
from base_sync.state import MemoryStateStore
from testbed.relay import RelayProcess
from tests.sync.conftest import binlog_database, read_topic

MAPPING = Path(__file__).parent / "fixtures" / "legacy_mapping.yaml"
SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=4, bucket_size=10)

LEGACY_DDL = [
    """CREATE TABLE personal (
        pers_nr INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        mandant INT NOT NULL DEFAULT 1,
        vorname VARCHAR(100), nachname VARCHAR(100), mail VARCHAR(255), abt CHAR(2),
        stelle VARCHAR(300), gehalt DECIMAL(12,2), eintritt DATE,
        angelegt_am DATETIME NOT NULL, geaendert_am DATETIME NULL, aktiv TINYINT NOT NULL DEFAULT 1,
        KEY ix_geaendert (geaendert_am)
    )""",
    """CREATE TABLE beitrag (
        nr BIGINT NOT NULL PRIMARY KEY, titel VARCHAR(200) NOT NULL, untertitel VARCHAR(50),
        text TEXT, autor INT, stand TIMESTAMP(6) NOT NULL
    )""",
]
COLUMNS = "(pers_nr, mandant, vorname, nachname, mail, abt, stelle, gehalt, eintritt, angelegt_am, geaendert_am, aktiv)"
ROWS = [
    # a plain row never updated: the creation stamp (winter, UTC+1) is the version
    "(1, 1, '  Anna  ', 'Berg', ' ANNA@Example.COM ', 'V', 'Dev', 100.50, '2020-02-29', "
    "'2024-01-15 10:00:00', NULL, 1)",
    # updated inside the repeated hour when clocks go back: the earlier reading (CEST)
    "(2, 1, 'Bo', 'Lund', 'bo@example.com', 'E', NULL, 0.00, NULL, '2024-01-01 00:00:00', '2024-10-27 02:30:00', 1)",
    # updated inside the hour clocks skip: read with the offset before the change (CET)
    "(3, 1, 'Cy', 'Moe', 'cy@example.com', '7', 'Ops lead', 1.00, '2021-06-30', '2024-01-01 00:00:00', "
    "'2024-03-31 02:30:00', 1)",
    # a department code the value map does not list: refused, with the reason
    "(4, 1, 'Di', 'Ng', 'di@example.com', 'X', 'Dev', 2.00, NULL, '2024-05-01 12:00:00', NULL, 1)",
    # the zero date in a column mapped with zero_date: null
    "(5, 1, 'Ed', 'Oz', 'ed@example.com', 'V', REPEAT('p', 150), 3.00, '0000-00-00', '2024-05-02 12:00:00', NULL, 1)",
    # soft-deleted: never an upsert
    "(6, 1, 'Fay', 'Pi', 'fay@example.com', 'V', 'Dev', 4.00, NULL, '2024-05-03 12:00:00', NULL, 0)",
    # another tenant: outside the filter
    "(7, 2, 'Gus', 'Qu', 'gus@example.com', 'V', 'Dev', 5.00, NULL, '2024-05-04 12:00:00', NULL, 1)",
    # the zero timestamp in the cursor: no usable version, quarantined
    "(8, 1, 'Hal', 'Ro', 'hal@example.com', 'V', 'Dev', 6.00, NULL, '2024-05-05 12:00:00', '0000-00-00 00:00:00', 1)",
]


@pytest.fixture
def legacy(make_mariadb_database):
    engine = source_engine(make_mariadb_database())
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))  # the lax mode that lets zero dates in
        for statement in LEGACY_DDL:
            conn.execute(text(statement))
        conn.execute(text(f"INSERT INTO personal {COLUMNS} VALUES {', '.join(ROWS)}"))
        conn.execute(
            text(
                "INSERT INTO beitrag VALUES (1, 'Hello', 'World', 'body', 42, '2024-06-01 08:00:00.5'),"
                " (2, 'Solo', NULL, NULL, NULL, '2024-06-02 09:00:00')"
            )
        )
    yield BaseA(engine, SourceMapping.from_file(MAPPING))
    engine.dispose()


def _normalised(records: list, entity: str) -> list:
    """Records as the API reads them (its msgspec decoder): text and datetimes compare alike."""
    fast = SCHEMAS[entity].fast
    clean = [r for r in records if not isinstance(r, Quarantined)]
    return fast.decode(encode(clean)), [
        (r.source_id, r.version, r.reasons) for r in records if isinstance(r, Quarantined)
    ]


@pytest.mark.parametrize("entity", ["employees", "articles"])
def test_sql_pushdown_and_python_give_the_same_records_and_refusals(legacy, entity):
    view = legacy.view(entity)
    pushed = [r for chunk in legacy.unversioned(entity, 100) for r in chunk]
    pushed += [r for chunk in legacy.extract(entity, None, 100) for r in chunk]
    keys = sorted(r.source_id if isinstance(r, Quarantined) else r["source_id"] for r in pushed)
    rows = {row[view.spec.key]: row for chunk in legacy.rows_by_keys(entity, keys, 100) for row in chunk}
    # The events path sees zero dates as the decoder reports them: named in `invalid`.
    invalid = {8: frozenset({"geaendert_am"})} if entity == "employees" else {}
    in_python = [view.apply(rows[key], invalid.get(key, frozenset())) for key in keys]
    by_key = sorted(pushed, key=lambda r: r.source_id if isinstance(r, Quarantined) else r["source_id"])
    pushed_clean, pushed_refused = _normalised(by_key, entity)
    python_clean, python_refused = _normalised(in_python, entity)
    assert pushed_clean == python_clean
    assert pushed_refused == python_refused


def test_the_mapped_values(legacy):
    records = {
        r["source_id"]: r for chunk in legacy.extract("employees", None, 100) for r in chunk if isinstance(r, dict)
    }
    refused = {r.source_id: r for chunk in legacy.unversioned("employees", 100) for r in chunk}
    refused |= {
        r.source_id: r for chunk in legacy.extract("employees", None, 100) for r in chunk if isinstance(r, Quarantined)
    }
    assert sorted(records) == [1, 2, 3, 5]  # 4 and 8 refused, 6 soft-deleted, 7 another tenant
    anna = records[1]
    assert (anna["first_name"], anna["last_name"], anna["email"]) == ("Anna", "BERG", "anna@example.com")
    assert (anna["department"], anna["salary"], anna["hired_at"]) == ("Sales", "100.50", "2020-02-29")
    assert anna["source_updated_at"] == anna["created_at"] == "2024-01-15T09:00:00.000000Z"  # CET
    assert records[2]["source_updated_at"] == "2024-10-27T00:30:00.000000Z"  # the earlier 02:30 (CEST)
    assert records[2]["position"] == "n/a" and records[2]["department"] == "Engineering"
    assert records[3]["source_updated_at"] == "2024-03-31T01:30:00.000000Z"  # the skipped 02:30, read as CET
    assert records[3]["department"] == "Ops"  # a YAML integer key matches the CHAR code '7'
    assert records[5]["hired_at"] is None and records[5]["position"] == "p" * 100  # zero date -> NULL; truncated
    assert refused[4].reasons == [
        {"field": "department", "message": "department: the value 'X' is not in the mapping's value map"}
    ]
    assert refused[4].version == "2024-05-01T10:00:00.000000Z"
    assert refused[8].version is None
    assert refused[8].reasons[0]["field"] == "geaendert_am"
    assert "zero timestamp" in refused[8].reasons[0]["message"]
    assert "no usable version" in refused[8].reasons[0]["message"]
    articles = {r["source_id"]: r for chunk in legacy.extract("articles", None, 100) for r in chunk}
    assert (
        articles[1]["title"] == "Hello - World" and articles[1]["content"] == "BODY!" and articles[1]["author"] == "42"
    )
    assert articles[2]["title"] == "Solo" and articles[2]["content"] is None and articles[2]["author"] is None
    assert articles[1]["source_updated_at"] == "2024-06-01T08:00:00.500000Z"  # a UTC TIMESTAMP as it is


def _base_b(database_url: str, entity: str) -> dict:
    table = TABLES[entity]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.source_id.isnot(None), table.c.deleted_at.is_(None)))
            return {row.source_id: row for row in rows}
    finally:
        engine.dispose()


def _run(entity, base_a, api, store):
    report = sync.load(entity, base_a, api, store, SETTINGS)
    deleted = sync.propagate_deletes(entity, base_a, api, store, SETTINGS)
    verified = sync.verify(entity, base_a, api, report, SETTINGS)
    sync.commit(entity, store, report, {"deletes": deleted.to_json()})
    return report, deleted, verified


def test_batch_steps_keep_base_b_equal_to_the_mapped_source(legacy, base_b):
    api, store = base_b.api(), MemoryStateStore()
    report, _, verified = _run("employees", legacy, api, store)
    assert report.counts["inserted"] == 4 and report.counts["quarantined"] == 2
    assert (verified.rows, verified.quarantined) == (5, 1)  # the refused row 4 has a version: in the window
    held = _base_b(base_b.database_url, "employees")
    assert sorted(held) == [1, 2, 3, 5]
    assert held[1].email == "anna@example.com" and held[1].salary == Decimal("100.50")
    assert held[2].source_updated_at == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    rejected = {r["source_id"]: r for r in api.open_rejections("employees")}
    assert set(rejected) == {4, 8}

    # Base A's team fixes the code, soft-deletes Anna, moves Bo to another tenant, edits Cy.
    with legacy.engine.begin() as conn:
        conn.execute(text("UPDATE personal SET abt = 'E', geaendert_am = '2024-11-01 09:00:00' WHERE pers_nr = 4"))
        conn.execute(text("UPDATE personal SET aktiv = 0, geaendert_am = '2024-11-01 09:00:01' WHERE pers_nr = 1"))
        conn.execute(text("UPDATE personal SET mandant = 3, geaendert_am = '2024-11-01 09:00:02' WHERE pers_nr = 2"))
        conn.execute(
            text("UPDATE personal SET vorname = ' Cyd ', geaendert_am = '2024-11-01 09:00:03' WHERE pers_nr = 3")
        )
    report, deleted, verified = _run("employees", legacy, api, store)
    assert report.counts["inserted"] == 1 and report.counts["updated"] == 1  # 4 fixed, 3 edited
    held = _base_b(base_b.database_url, "employees")
    assert sorted(held) == [3, 4, 5]  # Anna soft-deleted, Bo out of the filter: both deleted in Base B
    assert held[3].first_name == "Cyd" and held[4].department == "Engineering"
    assert deleted.deleted == 2
    assert {r["source_id"] for r in api.open_rejections("employees")} == {8}


def test_replay_after_a_fix_sends_the_mapped_row(legacy, base_b):
    api, store = base_b.api(), MemoryStateStore()
    _run("employees", legacy, api, store)
    assert {r["source_id"] for r in api.open_rejections("employees")} == {4, 8}
    # The map learns the code (a fix on our side, not in Base A): the row did not change, so only a
    # replay sends it again, through the mapping.
    fixed = SourceMapping.from_file(MAPPING)
    department = fixed.spec.entities["employees"].fields["department"]
    fields = {
        **fixed.spec.entities["employees"].fields,
        "department": department.model_copy(update={"map": {**department.map, "X": "Research"}}),
    }
    entity = fixed.spec.entities["employees"].model_copy(update={"fields": fields})
    fixed = SourceMapping(
        fixed.spec.model_copy(update={"entities": {**fixed.spec.entities, "employees": entity}}), "fixed"
    )
    replayed = sync.replay_rejections("employees", BaseA(legacy.engine, fixed), api, SETTINGS)
    assert replayed.still_rejected == 1  # row 8 still has no version
    assert _base_b(base_b.database_url, "employees")[4].department == "Research"


def test_soft_deletes_and_filter_moves_follow_the_changes_with_a_delete_log(legacy, base_b):
    """With the delete log installed (hard deletes from it), a run reads the rows that left the
    mapping's scope from its window: no key comparison, a cost that follows the changes."""
    install_delete_log(legacy.engine, legacy.mapping, ["employees"])
    api, store = base_b.api(), MemoryStateStore()
    _run("employees", legacy, api, store)  # the first run compares every key
    with legacy.engine.begin() as conn:
        conn.execute(text("UPDATE personal SET aktiv = 0, geaendert_am = '2024-11-01 09:00:01' WHERE pers_nr = 1"))
        conn.execute(text("UPDATE personal SET mandant = 3, geaendert_am = '2024-11-01 09:00:02' WHERE pers_nr = 2"))
        conn.execute(text("DELETE FROM personal WHERE pers_nr = 3"))
    _, deleted, _ = _run("employees", legacy, api, store)
    report = deleted.to_json()
    assert "suspect_buckets" not in report  # no key comparison ran
    assert (report["left_scope"], report["from_log"], report["deleted"]) == (2, 1, 3)
    assert sorted(_base_b(base_b.database_url, "employees")) == [5]


def _rejected_run(entity, base_a, api, store, settings):
    """A run as the DAG makes it when the operator rejects its mass delete: the load, the plan over
    the limit, the deletes withheld, verify and the commit."""
    report = sync.load(entity, base_a, api, store, settings)
    plan = sync.plan_deletes(entity, base_a, api, store, settings)
    assert not plan.within_budget, plan.message
    withheld = sync.deletes_withheld(entity, store, plan.to_json())
    sync.verify(entity, base_a, api, report, settings)
    sync.commit(entity, store, report, {"deletes": withheld})
    return plan


def test_rejected_soft_deletes_are_found_again_after_the_watermark_moved_past_them(legacy, base_b):
    """A rejected mass soft-delete waits: the runs after it read the rows that left the scope from
    where the rejected run read them, however far the watermark moved since."""
    install_delete_log(legacy.engine, legacy.mapping, ["employees"])
    settings = SETTINGS.model_copy(update={"mass_delete_min_rows": 1})  # limit 1: two deletes ask
    api, store = base_b.api(), MemoryStateStore()
    _run("employees", legacy, api, store)
    with legacy.engine.begin() as conn:
        conn.execute(text("UPDATE personal SET aktiv = 0, geaendert_am = '2024-11-01 09:00:01' WHERE pers_nr <= 2"))
        conn.execute(text("UPDATE personal SET stelle = 'QA', geaendert_am = '2024-11-01 09:00:05' WHERE pers_nr = 5"))
    first = _rejected_run("employees", legacy, api, store, settings)
    assert first.by_source == {LEFT_SCOPE: 2}
    with legacy.engine.begin() as conn:  # the table goes on changing: the watermark moves on
        conn.execute(text("UPDATE personal SET stelle = 'Ops', geaendert_am = '2024-11-02 09:00:00' WHERE pers_nr = 5"))
    again = _rejected_run("employees", legacy, api, store, settings)
    assert again.by_source == {LEFT_SCOPE: 2}, "the next run asks again"
    assert sorted(_base_b(base_b.database_url, "employees")) == [1, 2, 3, 5], "nothing deleted unasked"
    approved = sync.propagate_deletes("employees", legacy, api, store, settings, approved=2)
    assert (approved.left_scope, approved.deleted) == (2, 2)
    assert sorted(_base_b(base_b.database_url, "employees")) == [3, 5]


def test_a_row_whose_filter_column_becomes_null_leaves_the_scope_with_its_change(legacy, base_b):
    """`mandant = 1` is NULL, not false, where mandant is NULL: the run reading the change deletes
    the row in Base B as it deletes one moved to another tenant (NOT of NULL would keep it)."""
    install_delete_log(legacy.engine, legacy.mapping, ["employees"])
    with legacy.engine.begin() as conn:
        conn.execute(text("ALTER TABLE personal MODIFY mandant INT NULL"))
    api, store = base_b.api(), MemoryStateStore()
    _run("employees", legacy, api, store)
    with legacy.engine.begin() as conn:
        conn.execute(text("UPDATE personal SET mandant = NULL, geaendert_am = '2024-11-01 09:00:01' WHERE pers_nr = 1"))
        conn.execute(text("UPDATE personal SET mandant = 3, geaendert_am = '2024-11-01 09:00:02' WHERE pers_nr = 2"))
    _, deleted, _ = _run("employees", legacy, api, store)
    report = deleted.to_json()
    assert "suspect_buckets" not in report  # found from the window, not by a key comparison
    assert (report["left_scope"], report["deleted"]) == (2, 2)
    assert sorted(_base_b(base_b.database_url, "employees")) == [3, 5]


def test_a_filter_holds_where_its_sql_is_true_not_only_where_it_is_1(legacy):
    """A condition is true where it is not 0 (FIND_IN_SET gives the position): the filter is copied
    as it is, never compared with 1."""
    as_written = SourceMapping.from_file(MAPPING)
    entity = as_written.spec.entities["employees"].model_copy(update={"filter": "FIND_IN_SET(mandant, '9,1')"})
    spec = as_written.spec.model_copy(update={"entities": {**as_written.spec.entities, "employees": entity}})
    positional = BaseA(legacy.engine, SourceMapping(spec, "positional"))
    expected = {1, 2, 3, 4, 5, 8}  # tenant 1's live rows
    assert positional.keys_between("employees", 0, 100) == legacy.keys_between("employees", 0, 100) == expected


def test_a_row_restored_under_the_stamp_of_its_delete_is_repaired_not_called_ahead(legacy, base_b):
    """A legacy writer flags a row deleted and back without touching its stamp: Base B holds a
    tombstone of the very version Base A's live row has. A plain write loses that tie (in an event
    stream the delete came after), so the load calls it stale; verification re-reads the row after
    the tombstone and restores it, instead of passing with the row `ahead` and missing for good."""
    api, store = base_b.api(), MemoryStateStore()
    _run("employees", legacy, api, store)
    version = _base_b(base_b.database_url, "employees")[1].source_updated_at
    deleted = api.bulk_delete("employees", [{"source_id": 1, "source_updated_at": version.isoformat()}])
    assert deleted["deleted"] == 1
    report = sync.load("employees", legacy, api, store, SETTINGS, full_refresh=True)
    assert report.counts["stale"] == 1  # the tie, lost by the load's plain write
    verified = sync.verify("employees", legacy, api, report, SETTINGS)
    assert (verified.repaired, verified.ahead) == (1, 0)
    assert sorted(_base_b(base_b.database_url, "employees")) == [1, 2, 3, 5]


def test_another_tenants_busy_rows_are_no_deletes_for_the_breaker(legacy, base_b):
    """Rows outside the filter that change (or go) are sent as deletes, and Base B keeps their
    tombstones, but they are not deletes of anything it held: the mass-delete breaker counts only
    the rows it would really delete, so another tenant's busy day never waits for an approval."""
    install_delete_log(legacy.engine, legacy.mapping, ["employees"])
    others = ", ".join(
        f"({key}, 2, 'O', 'T', 'o{key}@example.com', 'V', 'Dev', 1.00, NULL, '2024-05-04 12:00:00', NULL, 1)"
        for key in range(100, 400)
    )
    with legacy.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO personal {COLUMNS} VALUES {others}"))
    api, store = base_b.api(), MemoryStateStore()
    _run("employees", legacy, api, store)
    with legacy.engine.begin() as conn:  # well past SYNC_MASS_DELETE_MIN_ROWS (100), all the other tenant's
        conn.execute(text("UPDATE personal SET stelle = 'Ops', geaendert_am = '2024-11-02 08:00:00' WHERE mandant = 2"))
        conn.execute(text("DELETE FROM personal WHERE mandant = 2 AND pers_nr >= 250"))
        conn.execute(text("UPDATE personal SET aktiv = 0, geaendert_am = '2024-11-02 09:00:00' WHERE pers_nr = 1"))
    _, deleted, _ = _run("employees", legacy, api, store)
    report = deleted.to_json()
    assert report["planned"]["total"] == 1 and report["planned"]["within_budget"]  # Anna, soft-deleted
    assert (report["deleted"], report["from_log"]) == (1, 150)
    assert sorted(_base_b(base_b.database_url, "employees")) == [2, 3, 5]


def test_a_row_with_a_null_key_is_refused_loudly_on_every_run_and_the_others_sync(legacy, base_b, caplog):
    """A nullable UNIQUE key column holding NULL: `base-a check` warns of the column; each run refuses
    the row ("key is NULL"), logs it as an error and counts it `unkeyed` (Base B keys rejections by
    source_id: it cannot be kept there), and syncs, verifies and compares keys for the other rows."""
    with legacy.engine.begin() as conn:
        conn.execute(text("ALTER TABLE beitrag DROP PRIMARY KEY, MODIFY nr BIGINT NULL, ADD UNIQUE (nr)"))
        conn.execute(
            text("INSERT INTO beitrag VALUES (NULL, 'No number yet', NULL, NULL, NULL, '2024-06-03 08:00:00')")
        )
    checked = check_source(legacy.engine, legacy.mapping, legacy.backend, ["articles"])
    assert checked.problems == []
    assert [(w.column, w.found.split(":")[0]) for w in checked.entities["articles"].warnings] == [
        ("nr", "a nullable column")
    ]
    api, store = base_b.api(), MemoryStateStore()
    for window in (2, 0):  # no window holds it: every run refuses it again
        caplog.clear()
        report, deleted, verified = _run("articles", legacy, api, store)
        assert report.counts["unkeyed"] == 1 and report.counts.get("quarantined", 0) == 0
        assert (verified.rows, verified.quarantined) == (window, 0) and deleted.deleted == 0
        (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
        assert "NULL key" in logged.getMessage() and "No number yet" in logged.getMessage()
    assert sorted(_base_b(base_b.database_url, "articles")) == [1, 2]
    assert list(api.open_rejections("articles")) == []
    reach = Reach()
    (refused,) = [r for chunk in legacy.unversioned("articles", 10) for r in chunk]
    reach.add([refused])  # it has a version, but no key: no position
    assert reach.cursor is None
    assert refused.reasons == [{"field": "nr", "message": "key is NULL: nr holds no value to sync the row by"}]
    row = {"nr": None, "titel": "No number yet", "untertitel": None, "text": None, "autor": None}
    in_python = legacy.view("articles").apply({**row, "stand": datetime(2024, 6, 3, 8, tzinfo=UTC)})
    assert isinstance(in_python, Quarantined) and in_python.reasons == refused.reasons

    install_delete_log(legacy.engine, legacy.mapping, ["articles"])
    with legacy.engine.begin() as conn:  # the log's triggers never fail the owner's write, nor miss a key
        conn.execute(text("DELETE FROM beitrag WHERE nr IS NULL"))
        conn.execute(text("UPDATE beitrag SET nr = NULL WHERE nr = 2"))  # a key set to NULL is gone from Base B
        assert conn.execute(text("SELECT id FROM delete_log")).scalars().all() == [2]
    _, deleted, _ = _run("articles", legacy, api, store)
    assert deleted.deleted == 1 and sorted(_base_b(base_b.database_url, "articles")) == [1]


def test_rows_whose_key_base_b_cannot_hold_are_quarantined_and_the_run_goes_on(legacy, base_b):
    """A signed key with sentinel rows (0, negative): Base B holds keys 1..2^63-1 only. Each such row
    is an open rejection with the reason, on both paths alike, and verification accepts it."""
    with legacy.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO beitrag VALUES (0, 'Unknown', NULL, NULL, NULL, '2024-06-03 08:00:00'),"
                " (-3, 'Sentinel', NULL, NULL, NULL, '2024-06-04 08:00:00')"
            )
        )
    api, store = base_b.api(), MemoryStateStore()
    report, _, verified = _run("articles", legacy, api, store)
    assert report.counts["inserted"] == 2 and report.counts["quarantined"] == 2
    assert verified.quarantined == 2
    rejected = {r["source_id"]: r["reasons"] for r in api.open_rejections("articles")}
    assert set(rejected) == {0, -3}
    assert "outside Base B's key range" in rejected[-3][0]["message"] and rejected[-3][0]["field"] == "nr"
    assert sorted(_base_b(base_b.database_url, "articles")) == [1, 2]
    view = legacy.view("articles")
    (rows,) = legacy.rows_by_keys("articles", [-3], 10)
    assert isinstance(view.apply(rows[0]), Quarantined)  # the events path's mapping refuses it too
    again, _, _ = _run("articles", legacy, api, store)  # nothing changed: nothing stalls either
    assert again.counts.get("extracted", 0) == 0
    install_delete_log(legacy.engine, legacy.mapping, ["articles"])
    with legacy.engine.begin() as conn:
        conn.execute(text("DELETE FROM beitrag WHERE nr IN (-3, 2)"))
    _, deleted, _ = _run("articles", legacy, api, store)
    assert deleted.deleted == 1 and sorted(_base_b(base_b.database_url, "articles")) == [1]
    with legacy.engine.begin() as conn:  # now from the delete log: key 0's entry too
        conn.execute(text("DELETE FROM beitrag WHERE nr = 0"))
    _, deleted, _ = _run("articles", legacy, api, store)
    assert deleted.from_log == 1 and deleted.deleted == 0
    # Its delete closes its quarantine; -3 went before the log was read (the key comparison sends
    # only keys Base B holds), so its rejection stays open, as any quarantined row's would.
    assert {r["source_id"] for r in api.open_rejections("articles")} == {-3}


# The same Base A row on both paths: the batch extract's SQL, and the relay's event of it (the real
# binlog, the real relay) through the decoder. A wide table of the types whose text or dates the
# two paths read each in their own way; each test maps it as it needs (the relay publishes every
# column of the table, whatever the mapping reads).

WIDE = """CREATE TABLE breit (
    nr BIGINT NOT NULL PRIMARY KEY,
    geaendert DATETIME(6) NULL,
    zeit0 DATETIME NULL,
    zeit6 DATETIME(6) NULL,
    zeit_nn DATETIME NOT NULL DEFAULT '2024-01-01 00:00:00',
    tag DATE NULL,
    tag_nn DATE NOT NULL DEFAULT '2024-01-01',
    name VARCHAR(100) NOT NULL DEFAULT 'n',
    kurz CHAR(6) NULL,
    zahl_f FLOAT NULL,
    zahl_d DOUBLE NULL,
    marken SET('sql','php') NULL,
    marken_nn SET('sql','php') NOT NULL DEFAULT ''
)"""
WIDE_BASICS = {"first_name": {"column": "name"}, "last_name": {"column": "name"}, "email": {"column": "name"}}


@dataclass
class Relayed:
    engine: Engine
    relay: RelayProcess
    database: str
    bootstrap: str
    keys: Iterator[int]

    def both_paths(self, fields: dict, rows: list[dict], cursor=("geaendert",), sql_mode: str = "", **more) -> tuple:
        """Each row inserted under `sql_mode`, then read by the batch extract and from its event:
        ({key: outcome}, {key: outcome}), an outcome a record as the API reads it or the refusal
        (version, reasons). `more`: more of the entity's mapping (`created`)."""
        spec = {
            "table": "breit",
            "key": "nr",
            "cursor": [{"column": c} for c in cursor],
            "fields": {**WIDE_BASICS, **fields},
            **more,
        }
        mapping = SourceMapping(parse_mapping({"source": {"time_zone": "UTC"}, "entities": {"employees": spec}}), "t")
        keyed = [{"nr": next(self.keys), "geaendert": "2024-05-01 00:00:00", **row} for row in rows]
        with self.engine.begin() as conn:
            conn.execute(text("SET SESSION sql_mode = :mode"), {"mode": sql_mode})
            for row in keyed:
                names = ", ".join(row)
                conn.execute(text(f"INSERT INTO breit ({names}) VALUES ({', '.join(':' + n for n in row)})"), row)
        self.engine.dispose()  # the reads in new sessions, not in one `sql_mode` set
        keys = [row["nr"] for row in keyed]
        batch = [r for chunk in BaseA(self.engine, mapping).records_by_keys("employees", keys, 100) for r in chunk]
        topics = Topics(self.relay.prefix, self.database, mapping)
        changes = [topics.decode(m.topic(), m.value(), m.key()) for m in self._events(topics.topic("employees"), keys)]
        # A row the mapping deletes (`soft_delete`) is no record: the batch path does not read it either.
        events = [c.record if c.action == "upsert" else c.quarantined for c in changes if c.action != "delete"]
        return _outcomes(batch), _outcomes(events)

    def _events(self, topic: str, keys: list[int], timeout: float = 30) -> list:
        wanted = {str(key).encode() for key in keys}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in read_topic(self.bootstrap, topic) if m.key() in wanted]
            if len(found) >= len(keys):
                return found
            time.sleep(0.3)
        raise AssertionError(f"{topic}: {len(found)} of {len(keys)} events after {timeout} s")


def _outcomes(records: list) -> dict:
    """{key: the record as JSON carries it, stamps read as instants; or a refusal's (version, reasons)}."""
    outcomes = {}
    for record in records:
        if isinstance(record, Quarantined):
            outcomes[record.source_id] = (record.version, record.reasons)
            continue
        (sent,) = orjson.loads(encode([record]))
        for stamp in ("source_updated_at", "created_at", "updated_at"):
            sent[stamp] = datetime.fromisoformat(sent[stamp])
        outcomes[sent["source_id"]] = sent
    return outcomes


@pytest.fixture(scope="module")
def relayed(binlog_port, kafka_bootstrap, tmp_path_factory) -> Iterator[Relayed]:
    """The wide table on the MariaDB with its binlog on, and the relay publishing it."""
    database = f"breit_{uuid.uuid4().hex[:8]}"
    url = binlog_database(binlog_port, database)
    engine = source_engine(url)
    with engine.begin() as conn:
        conn.execute(text(WIDE))
    workdir = tmp_path_factory.mktemp("relay")
    mapping_file = workdir / "mapping.yaml"
    spec = {"table": "breit", "key": "nr", "cursor": [{"column": "geaendert"}], "fields": WIDE_BASICS}
    mapping_file.write_text(yaml.safe_dump({"entities": {"employees": spec}}))
    relay = RelayProcess(url, kafka_bootstrap, workdir)
    relay.env["BASE_A_MAPPING_FILE"] = str(mapping_file)
    relay.start()
    yield Relayed(engine, relay, database, kafka_bootstrap, itertools.count(1))
    relay.stop()
    engine.dispose()


def test_a_real_1970_01_01_is_the_epoch_on_both_paths_not_the_zero_date(relayed):
    """The relay writes a zero date as its text ('0000-00-00'), so its 0 days or 0 ms is the epoch:
    read as Debezium's zero date of a NOT NULL column, a real 1970-01-01 was refused on the events
    path alone (or written NULL with zero_date: null, Base B flipping with the path that wrote last)."""
    epoch_day = {"tag_nn": "1970-01-01", "zeit_nn": "1970-01-01 00:00:00"}
    for hired in ({"column": "tag_nn"}, {"column": "tag_nn", "zero_date": "null"}):
        fields = {"hired_at": hired, "position": {"column": "zeit_nn", "cast": "string"}}
        batch, events = relayed.both_paths(fields, [epoch_day])
        assert events == batch
        (record,) = batch.values()
        assert (record["hired_at"], record["position"]) == ("1970-01-01", "1970-01-01 00:00:00")
    # A DATETIME cursor at the epoch is a version (a DATETIME's first valid value is 1000-01-01).
    batch, events = relayed.both_paths({}, [{"zeit0": "1970-01-01 00:00:00"}], cursor=["zeit0"])
    assert events == batch
    (record,) = batch.values()
    assert record["source_updated_at"] == datetime(1970, 1, 1, tzinfo=UTC)


def test_text_made_of_a_date_that_is_no_date_is_its_text_on_both_paths(relayed):
    """`zero_date` is a date field's rule: a text field (`cast: string`, a concat) takes such a value's
    text as MariaDB gives it. The events path refused the row by `zero_date: reject` (the default of
    every field), the batch path wrote the text."""
    fields = {
        "position": {"column": "zeit0", "cast": "string"},
        "department": {"concat": ["name", "zeit6"]},
    }
    rows = [
        {"zeit0": "0000-00-00 00:00:00", "zeit6": "0000-00-00 00:00:00"},
        {"zeit0": "2024-02-30 10:00:00", "zeit6": "2024-02-30 10:00:00.5"},
        {"zeit0": "2024-00-10 08:00:00", "zeit6": "2024-04-00 10:00:00.25"},
    ]
    batch, events = relayed.both_paths(fields, rows, sql_mode="ALLOW_INVALID_DATES")
    assert events == batch
    assert [(r["position"], r["department"]) for r in batch.values()] == [
        ("0000-00-00 00:00:00", "n 0000-00-00 00:00:00"),
        ("2024-02-30 10:00:00", "n 2024-02-30 10:00:00.5"),
        ("2024-00-10 08:00:00", "n 2024-04-00 10:00:00.25"),
    ]


def test_a_cursor_that_is_no_date_is_one_reason_whatever_else_reads_it(relayed):
    """The cursor's reason is the row's one: a text or date field reading the same column adds none
    on the batch path, and added a second one on the events path."""
    zero = [{"geaendert": "0000-00-00 00:00:00"}]
    for fields in ({"email": {"column": "geaendert", "cast": "string"}}, {"hired_at": {"column": "geaendert"}}):
        batch, events = relayed.both_paths(fields, zero)
        assert events == batch
        ((version, reasons),) = batch.values()
        assert version is None
        assert reasons == [
            {
                "field": "geaendert",
                "message": "geaendert is the zero timestamp 0000-00-00 00:00:00: the row has no usable version",
            }
        ]


def test_a_later_cursor_column_that_is_no_date_is_named_once_as_a_stamp_where_it_is_read_as_a_date(relayed):
    """The version comes from the first cursor column; a later one holding no real date matters only
    where a date field or the creation stamp reads it, and then as a stamp (the version unharmed)."""
    cursor = ["geaendert", "zeit6"]
    rows = [{"zeit6": "0000-00-00 00:00:00"}, {"zeit6": "2024-02-30 10:00:00.5"}]
    for more in ({"fields": {"hired_at": {"column": "zeit6"}}}, {"created": {"column": "zeit6"}}):
        fields = more.pop("fields", {})
        batch, events = relayed.both_paths(fields, rows, cursor, "ALLOW_INVALID_DATES", **more)
        assert events == batch
        assert [reasons for _, reasons in batch.values()] == [
            [{"field": "zeit6", "message": "zeit6 is the zero timestamp 0000-00-00 00:00:00"}],
            [{"field": "zeit6", "message": "zeit6 is not a valid timestamp: 2024-02-30 10:00:00.500000"}],
        ]
        assert {version for version, _ in batch.values()} == {"2024-05-01T00:00:00.000000Z"}


def test_a_float_or_double_made_text_is_mariadbs_text_on_both_paths(relayed):
    """`cast: string`, a concat and a value map's key write a FLOAT or DOUBLE as MariaDB does; the
    events path wrote Python's text ('100.0', '1e-05', '1e+16') and FLOAT's 4 bytes read as a
    double ('1.100000023841858' of 1.1)."""
    fields = {
        "position": {"column": "zahl_d", "cast": "string"},
        "department": {"concat": ["zahl_f", "zahl_d"]},
        "last_name": {"column": "zahl_f", "map": {"1.1": "one point one", "16777200": "big"}, "unmapped": "null"},
    }
    pairs = [(1.1, 100.0), (16777217.0, 1e15), (1e-5, 1e-5), (0.1, 1e16), (-2.5, 0.1 + 0.2), (123456.7, 1e-16)]
    batch, events = relayed.both_paths(fields, [{"zahl_f": f, "zahl_d": d} for f, d in pairs])
    assert events == batch
    assert [(r["position"], r["department"], r["last_name"]) for r in batch.values()] == [
        ("100", "1.1 100", "one point one"),
        ("1e15", "16777200 1e15", "big"),
        ("0.00001", "0.00001 0.00001", None),
        ("1e16", "0.1 1e16", None),
        ("0.30000000000000004", "-2.5 0.30000000000000004", None),
        ("1e-16", "123457 1e-16", None),
    ]


@contextlib.contextmanager
def global_sql_mode(port: int, mode_sql: str) -> Iterator[None]:
    """The server's global sql_mode set to `mode_sql` (an SQL expression) while the block runs, as
    a server configured so would start every session; put back after."""
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{port}/mysql")
    with admin.begin() as conn:
        default = conn.execute(text("SELECT @@GLOBAL.sql_mode")).scalar_one()
        conn.execute(text(f"SET GLOBAL sql_mode = {mode_sql}"))
    try:
        yield
    finally:
        with admin.begin() as conn:
            conn.execute(text("SET GLOBAL sql_mode = :mode"), {"mode": default})
        admin.dispose()


def test_a_char_column_is_read_unpadded_whatever_sql_mode_base_a_runs_by_default(relayed, binlog_port):
    """A server whose global sql_mode holds PAD_CHAR_TO_FULL_LENGTH padded the batch path's CHAR
    values ('AB    ': a value map missed, text built of it carried the spaces) where the binlog,
    and so the events path, holds 'AB'; the batch's sessions take the mode off."""
    fields = {
        "position": {"column": "kurz", "map": {"AB": "Alpha"}, "unmapped": "keep"},
        "department": {"column": "kurz"},
        "last_name": {"concat": ["name", "kurz"], "separator": " "},
    }
    with global_sql_mode(binlog_port, "CONCAT_WS(',', @@GLOBAL.sql_mode, 'PAD_CHAR_TO_FULL_LENGTH')"):
        batch, events = relayed.both_paths(fields, [{"kurz": "AB", "name": "anna"}, {"kurz": ""}])
    relayed.engine.dispose()
    assert events == batch
    first, second = batch.values()
    assert (first["position"], first["department"], first["last_name"]) == ("Alpha", "AB", "anna AB")
    assert second["department"] == ""


def test_a_changed_mapping_makes_the_next_run_a_full_refresh(legacy, base_b):
    """Found from outside: a changed value map reached only the rows changed afterwards, and verify
    (keys and versions) passed with the others mapped the old way."""
    api, store = base_b.api(), MemoryStateStore()
    report = sync.load("employees", legacy, api, store, SETTINGS)
    sync.commit("employees", store, report, {sync.MAPPING_DIGEST: legacy.mapping.digest("employees")})
    assert not sync.refresh_wanted("employees", legacy, store, asked=False)
    assert _base_b(base_b.database_url, "employees")[2].department == "Engineering"

    document = yaml.safe_load(MAPPING.read_text())
    document["entities"]["employees"]["fields"]["department"]["map"]["E"] = "Engineering Dept"
    changed = BaseA(legacy.engine, SourceMapping(parse_mapping(document, "changed"), "changed"))
    assert changed.mapping.digest("articles") == legacy.mapping.digest("articles")  # only its own entity
    assert sync.refresh_wanted("employees", changed, store, asked=False)
    again = sync.load("employees", changed, api, store, SETTINGS, full_refresh=True)
    assert again.since is None and again.counts["updated"] == 1
    assert _base_b(base_b.database_url, "employees")[2].department == "Engineering Dept"
    sync.commit("employees", store, again, {sync.MAPPING_DIGEST: changed.mapping.digest("employees")})
    assert not sync.refresh_wanted("employees", changed, store, asked=False)


def test_a_commit_without_a_mapping_digest_makes_the_next_run_a_full_refresh_once(legacy, base_b, caplog):
    """Found from outside: a watermark committed by a version of the platform that recorded no
    mapping digest read as "mapping unchanged": a mapping changed with the upgrade reached only the
    rows changed afterwards, and the new digest recorded then hid it for good."""
    api, store = base_b.api(), MemoryStateStore()
    assert not sync.refresh_wanted("employees", legacy, store, asked=False)  # a first load reads every row
    report = sync.load("employees", legacy, api, store, SETTINGS)
    sync.commit("employees", store, report, {"run_id": "an older version's"})
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        assert sync.refresh_wanted("employees", legacy, store, asked=False)
    assert "recorded no mapping digest" in caplog.text
    again = sync.load("employees", legacy, api, store, SETTINGS, full_refresh=True)
    sync.commit("employees", store, again, {sync.MAPPING_DIGEST: legacy.mapping.digest("employees")})
    assert not sync.refresh_wanted("employees", legacy, store, asked=False)


def test_a_watermark_set_back_without_its_stats_names_the_edit_as_a_cause(legacy, base_b, caplog):
    """Found from outside: README's way to re-sync from a point in time wrote the Variable with
    `"stats": {}`, and the full refresh that followed blamed "an older version of the platform"
    alone: the warning names the hand-written or reset watermark and how to keep the stats."""
    api, store = base_b.api(), MemoryStateStore()
    report = sync.load("employees", legacy, api, store, SETTINGS)
    sync.commit("employees", store, report, sync.read_with("employees", legacy))
    store.saved["employees"]["stats"] = {}  # `airflow variables set ... '{"watermark": ..., "stats": {}}'`
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        assert sync.refresh_wanted("employees", legacy, store, asked=False)
    assert store.name("employees") in caplog.text
    assert "written by hand without the stats" in caplog.text and "keep the stats" in caplog.text


def test_a_trimmed_blank_is_empty_text_on_both_paths_whatever_sql_mode_base_a_runs_by_default(relayed, binlog_port):
    """Under a server's sql_mode=ORACLE MariaDB's TRIM gives NULL for what trims to nothing: `trim:
    true, default: "n/a"` made '' and '   ' 'n/a' on the batch path, '' on the events path (Python's
    strip). The batch's sessions run in one sql_mode, not the server's."""
    fields = {"position": {"column": "name", "trim": True, "default": "n/a"}}
    with global_sql_mode(binlog_port, "'ORACLE'"):
        batch, events = relayed.both_paths(fields, [{"name": "   "}, {"name": ""}])
    relayed.engine.dispose()
    assert events == batch
    assert [record["position"] for record in batch.values()] == ["", ""]


def test_an_empty_set_is_empty_text_on_both_paths_not_null(relayed):
    """Found from outside: the binlog decoder reads a SET holding no member ('', bitmask 0) as None,
    and the relay published it as null: the events path wrote NULL (a concat left it out, a default
    applied) where the batch path wrote '', and `deleted_when: "null"` deleted a live row."""
    fields = {
        "position": {"column": "marken", "default": "none"},
        "department": {"concat": ["name", "marken_nn"], "separator": "|"},
    }
    soft_delete = {"column": "marken", "deleted_when": "null"}
    rows = [{"marken": "", "marken_nn": ""}, {"marken": "php,sql", "marken_nn": "sql"}, {"marken": None}]
    batch, events = relayed.both_paths(fields, rows, soft_delete=soft_delete)
    assert events == batch
    assert [(r["position"], r["department"]) for r in batch.values()] == [("", "n|"), ("sql,php", "n|sql")]


def test_a_concat_of_only_nulls_is_null_so_its_default_applies_on_both_paths(relayed):
    """Found from outside: CONCAT_WS and Python's join give '' for parts that are all NULL, so
    `default` never applied, and a required field made by a concat was refused by Base B as empty.
    One non-NULL part, even '', is text as before; a zero date in a NOT NULL column is no NULL."""
    fields = {
        "first_name": {"concat": ["kurz", "zahl_f"], "default": "Nobody"},
        "position": {"concat": ["kurz", "tag"], "separator": " ", "default": "Unknown"},
        "department": {"concat": ["kurz", "tag_nn"], "default": "none"},
    }
    rows = [
        {},
        {"kurz": "", "zahl_f": 1.5},
        {"kurz": "AB", "tag": "2024-01-02"},
        {"tag_nn": "0000-00-00"},
    ]
    batch, events = relayed.both_paths(fields, rows)
    assert events == batch
    assert [(r["first_name"], r["position"], r["department"]) for r in batch.values()] == [
        ("Nobody", "Unknown", "2024-01-01"),
        (" 1.5", "", " 2024-01-01"),
        ("AB", "AB 2024-01-02", "AB 2024-01-01"),
        ("Nobody", "Unknown", "0000-00-00"),
    ]
