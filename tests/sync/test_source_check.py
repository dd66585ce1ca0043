"""The mapping against the live Base A (`base_sync.mapping.check`), and no writes on a Base A the
platform did not create: a legacy-shaped table (other names, INT UNSIGNED key, local DATETIME
cursor, soft-delete flag, a column nobody maps) on the real MariaDB, read through a SELECT-only
account, synced to Base B behind the real API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from base_sync import column_changes
from base_sync.backends import LiveColumn, backend_named
from base_sync.errors import TransientError
from base_sync.mapping import SourceMapping
from base_sync.mapping.check import EXPECTED, SchemaChanging, SchemaDriftError, check_source
from base_sync.mapping.view import aliased_table
from base_sync.metrics import schema_samples
from base_sync.source import BaseA, source_engine
from base_sync.source_schema import create_schema, existing_triggers
from base_sync.state import MemoryStateStore
from tests.sync.conftest import synced_rows
from tests.sync.test_sync_steps import run_once

BERLIN = ZoneInfo("Europe/Berlin")
LEGACY_TABLE = """
CREATE TABLE mitarbeiter (
    pers_nr INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    vorname VARCHAR(60) NOT NULL,
    nachname VARCHAR(60) NOT NULL,
    mail VARCHAR(200) NOT NULL,
    abt_code CHAR(1) NULL,
    stelle VARCHAR(80) NULL,
    gehalt DECIMAL(12,2) NULL,
    eintritt DATE NULL,
    aktiv TINYINT(1) NOT NULL DEFAULT 1,
    angelegt_am DATETIME NOT NULL,
    geaendert_am DATETIME NULL,
    notiz TEXT NULL,
    KEY ix_geaendert (geaendert_am)
)
"""
MAPPING = """
source: {time_zone: Europe/Berlin}
entities:
  employees:
    table: mitarbeiter
    key: pers_nr
    cursor: [{column: geaendert_am, type: datetime}, {column: angelegt_am, type: datetime}]
    created: {column: angelegt_am, type: datetime}
    soft_delete: {column: aktiv, deleted_when: 0}
    fields:
      first_name: {column: vorname, trim: true}
      last_name: {column: nachname, trim: true}
      email: {column: mail, trim: true, case: lower}
      department: {column: abt_code, map: {V: Sales, E: Engineering}, unmapped: "null"}
      position: {column: stelle}
      salary: {column: gehalt}
      hired_at: {column: eintritt}
"""
ROWS = [  # pers_nr, vorname, nachname, mail, abt_code, stelle, gehalt, eintritt, aktiv, geaendert_am (Berlin)
    (7, " Ada ", "Lovelace", "ADA@Example.com ", "E", "Engineer", "5000.00", "2020-02-29", 1, "2026-03-29 01:30:00"),
    (8, "Alan", "Turing", "alan@example.com", "V", None, None, None, 1, "2026-03-29 03:30:00"),
    (9, "Grace", "Hopper", "grace@example.com", "X", "Admiral", "7000.50", "1999-12-31", 1, "2026-10-25 02:30:00"),
    (10, "Gone", "Already", "gone@example.com", "V", None, None, None, 0, "2026-11-01 12:00:00"),
]
LOG_TRIGGERS = {"mitarbeiter_log_delete", "mitarbeiter_log_key_change"}
MISSING = "no such column, or none this account may read (it needs SELECT on it)"


def _utc(wall: str) -> datetime:
    return datetime.fromisoformat(wall).replace(tzinfo=BERLIN).astimezone(UTC)


def expected_rows(rows) -> dict[int, tuple]:
    """What Base B must hold of the legacy rows, worked out here by hand from the mapping's rules."""
    departments = {"V": "Sales", "E": "Engineering"}
    return {
        key: (
            _utc(changed),
            first.strip(),
            last.strip(),
            mail.strip().lower(),
            departments.get(code),
            position,
            salary,  # as synced_rows shows decimals: their exact text
            date.fromisoformat(hired) if hired else None,
        )
        for key, first, last, mail, code, position, salary, hired, active, changed in rows
        if active
    }


def _insert(conn, rows) -> None:
    for row in rows:
        conn.execute(
            text(
                "INSERT INTO mitarbeiter (pers_nr, vorname, nachname, mail, abt_code, stelle, gehalt, eintritt, "
                "aktiv, angelegt_am, geaendert_am) VALUES (:k, :f, :l, :m, :c, :p, :s, :h, :a, :w, :w)"
            ),
            dict(zip("kflmcpsha", row[:9], strict=True), w=row[9]),
        )


@pytest.fixture
def legacy_url(make_mariadb_database) -> str:
    """A Base A the platform did not create: the legacy table and its rows, made by root."""
    url = make_mariadb_database()
    engine = source_engine(url)
    with engine.begin() as conn:
        conn.execute(text(LEGACY_TABLE))
        _insert(conn, ROWS)
    engine.dispose()
    return url


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    return path


@pytest.fixture
def mapping(mapping_file) -> SourceMapping:
    return SourceMapping.from_file(mapping_file)


@pytest.fixture
def root(legacy_url) -> Iterator:
    engine = source_engine(legacy_url)
    yield engine
    engine.dispose()


@pytest.fixture
def select_only_url(legacy_url) -> Iterator[str]:
    """A MariaDB account with SELECT on the legacy database and nothing else; dropped afterwards."""
    url = make_url(legacy_url)
    user, password = f"ro_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = source_engine(legacy_url)
    with admin.begin() as conn:
        for host in ("localhost", "127.0.0.1"):
            conn.execute(text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT SELECT ON `{url.database}`.* TO '{user}'@'{host}'"))
    yield url.set(username=user, password=password).render_as_string(hide_password=False)
    with admin.begin() as conn:
        for host in ("localhost", "127.0.0.1"):
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
    admin.dispose()


def test_a_column_the_account_may_not_read_is_named_as_maybe_unreadable(root, legacy_url, mapping):
    """A column-level grant hides the other columns from the catalogue, as a missing table grant hides
    the table: the check says it may be either."""
    url = make_url(legacy_url)
    user = f"col_{uuid.uuid4().hex[:8]}"
    hosts = ("localhost", "127.0.0.1")
    with root.begin() as conn:
        for host in hosts:
            conn.execute(text(f"CREATE USER '{user}'@'{host}'"))
            readable = (
                "pers_nr, vorname, nachname, abt_code, stelle, gehalt, eintritt, aktiv, geaendert_am, angelegt_am"
            )
            conn.execute(text(f"GRANT SELECT ({readable}) ON `{url.database}`.mitarbeiter TO '{user}'@'{host}'"))
    reader = source_engine(url.set(username=user).render_as_string(hide_password=False))
    try:
        problems = [str(p) for p in check_source(reader, mapping, backend_named("mysql")).problems]
    finally:
        reader.dispose()
        with root.begin() as conn:
            for host in hosts:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
    assert problems == [
        f"employees: mitarbeiter.mail: expected {EXPECTED['text']}, found {MISSING}",
    ]


def alter(engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


# The check itself


def test_a_legacy_table_passes_and_the_unmapped_column_is_reported(root, mapping):
    checked = check_source(root, mapping, backend_named("mysql"))
    assert checked.problems == []
    employees = checked.entities["employees"]
    assert employees.unmapped == ["notiz"]
    by_target = {use.target: use for use in employees.uses}
    assert by_target["source_id"].types == ("INT(10) UNSIGNED",)
    assert by_target["source_updated_at"].transforms == "Europe/Berlin -> UTC"
    assert by_target["department"].transforms == "map 2 values, unmapped null"
    assert schema_samples("employees", employees.unmapped) == [
        ("gauge", "base_sync.source_unmapped_columns.employees", 1)
    ]


@pytest.mark.parametrize(
    ("statement", "column", "expected", "found"),
    [
        ("ALTER TABLE mitarbeiter DROP COLUMN stelle", "stelle", "a text type", MISSING),
        ("ALTER TABLE mitarbeiter MODIFY gehalt VARCHAR(20)", "gehalt", "a numeric type", "VARCHAR(20)"),
        ("ALTER TABLE mitarbeiter MODIFY geaendert_am TIMESTAMP NULL", "geaendert_am", "DATETIME", "TIMESTAMP"),
        ("ALTER TABLE mitarbeiter MODIFY eintritt VARCHAR(10)", "eintritt", "a date type", "VARCHAR(10)"),
        ("ALTER TABLE mitarbeiter MODIFY nachname BLOB", "nachname", "a text type", "BLOB"),
        ("ALTER TABLE mitarbeiter MODIFY pers_nr VARCHAR(12) NOT NULL", "pers_nr", "an integer type", "VARCHAR(12)"),
        ("ALTER TABLE mitarbeiter CHANGE angelegt_am angelegt DATETIME", "angelegt_am", "DATETIME", MISSING),
        # MariaDB's names ignore case, the mapping's do not: it says how the table spells the column.
        (
            "ALTER TABLE mitarbeiter CHANGE stelle Stelle VARCHAR(100)",
            "stelle",
            "a text type",
            "no such column (the table spells it 'Stelle': write that)",
        ),
    ],
)
def test_a_missing_or_retyped_column_is_named_with_expected_and_found(
    root, mapping, statement, column, expected, found
):
    alter(root, statement)
    with pytest.raises(SchemaDriftError) as raised:
        BaseA(root, mapping).require_schema("employees")
    message = str(raised.value)
    assert f"mitarbeiter.{column}: expected {expected}" in message
    assert message.endswith(f"found {found}") or f"found {found};" in message


def test_a_missing_table_is_named(root, mapping):
    alter(root, "RENAME TABLE mitarbeiter TO mitarbeiter_alt")
    with pytest.raises(SchemaDriftError, match=r"table mitarbeiter: expected a table the mapping reads, found no such"):
        next(BaseA(root, mapping).extract("employees", None, 100))


# A schema change in progress (pt-online-schema-change, gh-ost, a column renamed and back)

CHANGING = (
    "employees: Base A's {} disappeared during the read (a schema change in progress, e.g. a "
    "pt-online-schema-change or gh-ost cut-over): the task's retries read it again"
)


@pytest.mark.parametrize(
    ("statement", "gone", "read"),
    [
        ("RENAME TABLE mitarbeiter TO mitarbeiter_weg", "mitarbeiter", lambda a: next(a.extract("employees", None, 9))),
        (
            "ALTER TABLE mitarbeiter CHANGE eintritt eintritt_weg DATE",
            "mitarbeiter.eintritt",
            lambda a: next(a.extract("employees", None, 9)),
        ),
        ("RENAME TABLE mitarbeiter TO mitarbeiter_weg", "mitarbeiter", lambda a: a.key_span("employees")),
    ],
    ids=["table-extract", "column-extract", "table-key-span"],
)
def test_a_table_or_column_gone_after_the_check_is_a_retried_schema_change_in_one_line(
    root, mapping, statement, gone, read
):
    """Found from outside: a RENAME TABLE during a full refresh failed the load with the driver's
    error and several KB of SQL; it is a schema change in progress, retried, named in one line."""
    base_a = BaseA(root, mapping)
    base_a.require_schema("employees")  # the task's check passes, then the table changes
    alter(root, statement)
    with pytest.raises(SchemaChanging) as raised:
        read(base_a)
    assert isinstance(raised.value, TransientError)
    assert str(raised.value) == CHANGING.format(gone)
    logged = "".join(traceback.format_exception(raised.value))
    assert "[SQL:" not in logged and "FROM" not in logged, logged  # the driver's error is its cause: no SQL


@pytest.mark.parametrize("alias", ["a", "AS a", "AS `a`"])
def test_a_column_gone_under_a_row_filters_alias_is_named_by_its_table(root, mapping_file, alias):
    """A row filter's subquery (`FROM abteilungen a`) whose column is renamed during the read: MariaDB
    names it as written, `a.offen`, and the one-line message named the alias `a` as Base A's table.
    The table the filter gives that alias is named instead."""
    with_filter(mapping_file, f"abt_code IN (SELECT a.code FROM abteilungen {alias} WHERE a.offen = 1)")
    alter(root, "CREATE TABLE abteilungen (code CHAR(1) PRIMARY KEY, offen TINYINT NOT NULL)")
    alter(root, "INSERT INTO abteilungen VALUES ('E', 1), ('V', 1)")
    base_a = BaseA(root, SourceMapping.from_file(mapping_file))
    base_a.require_schema("employees")
    alter(root, "ALTER TABLE abteilungen RENAME COLUMN offen TO offen_weg")
    with pytest.raises(SchemaChanging) as raised:
        next(base_a.extract("employees", None, 9))
    assert "Unknown column 'a.offen'" in str(raised.value.__cause__)  # the server's own words
    assert str(raised.value) == CHANGING.format("abteilungen.offen")


def test_a_row_filters_alias_is_read_from_its_from_or_join():
    assert aliased_table("x IN (SELECT a.c FROM db.`t 1` AS a)", "a") == "t 1"
    assert aliased_table("EXISTS (SELECT 1 FROM p JOIN q b ON b.k = p.k)", "b") == "q"
    assert aliased_table("EXISTS (SELECT 1 FROM p, q b WHERE b.k = 1)", "b") == "q"
    assert aliased_table("x IN (SELECT abteilungen.c FROM abteilungen)", "abteilungen") is None
    assert aliased_table(None, "a") is None
    # Review: a comma of the select list is no table list's: `code a` is a column's alias.
    assert aliased_table("k IN (SELECT k, code a FROM abteilungen a WHERE a.offen = 1)", "a") == "abteilungen"
    assert aliased_table("k IN (SELECT k, code a FROM abteilungen b)", "a") is None
    assert aliased_table("k IN (SELECT k FROM p WHERE f(1, 2) AND k IN (SELECT k, c a FROM q a))", "a") == "q"
    assert aliased_table("EXISTS (SELECT 1 FROM p JOIN q ON q.k = p.k, r AS `c` WHERE c.x, 'FROM s c')", "c") is None
    assert aliased_table("EXISTS (SELECT 1 FROM p LEFT JOIN q USING (k), `db`.r c)", "c") == "r"
    assert aliased_table("EXISTS (SELECT 1 FROM (SELECT 1 FROM s) d, p WHERE p.k IN (x, y z))", "z") is None


def _rename_back_after(engine, seconds: float, statement: str) -> threading.Thread:
    def rename_back() -> None:
        time.sleep(seconds)
        alter(engine, statement)

    thread = threading.Thread(target=rename_back)
    thread.start()
    return thread


def test_a_column_renamed_away_and_back_within_the_recheck_lets_the_task_proceed(root, mapping, caplog):
    """Found from outside: a 5-second RENAME COLUMN failed check_deletes, and the whole run, for good."""
    alter(root, "ALTER TABLE mitarbeiter RENAME COLUMN stelle TO stelle_tmp")
    back = _rename_back_after(root, 1.0, "ALTER TABLE mitarbeiter RENAME COLUMN stelle_tmp TO stelle")
    try:
        base_a = BaseA(root, mapping, schema_recheck_seconds=4)
        checked = base_a.require_schema("employees")
    finally:
        back.join()
    assert checked.problems == []
    assert "mitarbeiter.stelle" in caplog.text and "checking again in 4 s" in caplog.text
    assert sum(len(chunk) for chunk in base_a.extract("employees", None, 100)) == 3


def test_a_column_gone_for_good_is_drift_after_the_recheck(root, mapping, caplog):
    alter(root, "ALTER TABLE mitarbeiter DROP COLUMN stelle")
    started = time.monotonic()
    with pytest.raises(SchemaDriftError) as raised:
        BaseA(root, mapping, schema_recheck_seconds=1).require_schema("employees")
    assert time.monotonic() - started >= 1
    assert "checking again in 1 s" in caplog.text
    assert str(raised.value) == f"employees: mitarbeiter.stelle: expected {EXPECTED['text']}, found {MISSING}"


def test_a_retyped_column_is_drift_at_once_without_a_recheck(root, mapping):
    """A type is no rename under way: no wait."""
    alter(root, "ALTER TABLE mitarbeiter MODIFY gehalt VARCHAR(20)")
    started = time.monotonic()
    with pytest.raises(SchemaDriftError, match=r"mitarbeiter\.gehalt: expected a numeric type"):
        BaseA(root, mapping, schema_recheck_seconds=30).require_schema("employees")
    assert time.monotonic() - started < 10


def with_filter(mapping_file, row_filter: str) -> None:
    """The test's mapping with a row filter on employees."""
    mapping_file.write_text(MAPPING.replace("    key: pers_nr\n", f"    key: pers_nr\n    filter: {row_filter!r}\n", 1))


@pytest.mark.parametrize(
    ("row_filter", "refused"),
    [
        ("aktiv = 1 AND mandnt = 1", "Unknown column 'mandnt'"),
        ("aktiv = 1 AND", "You have an error in your SQL syntax"),
        ("no_such_function(aktiv)", "no_such_function"),  # the read-only account: "execute command denied"
    ],
)
def test_a_row_filter_base_a_refuses_is_drift_named_with_its_reason(
    root, select_only_url, mapping_file, row_filter, refused
):
    with_filter(mapping_file, row_filter)
    reader = source_engine(select_only_url)  # the read-only account parses it as well
    try:
        with pytest.raises(SchemaDriftError) as raised:
            BaseA(reader, SourceMapping.from_file(mapping_file)).require_schema("employees")
    finally:
        reader.dispose()
    message = str(raised.value)
    assert f"table mitarbeiter: expected a row filter Base A accepts ({row_filter}), found " in message
    assert refused in message


def test_a_row_filter_base_a_accepts_passes_and_reads_no_row(root, mapping_file):
    with_filter(mapping_file, "gehalt > 0")
    checked = check_source(root, SourceMapping.from_file(mapping_file), backend_named("mysql"))
    assert checked.problems == []
    assert checked.entities["employees"].unmapped == ["notiz"]  # gehalt is read anyway; the filter names it too


def test_a_row_filter_with_colons_and_percent_signs_in_its_strings_is_checked_and_read_as_written(root, mapping_file):
    """`:intern` inside a SQL string is no bind parameter, `%` no driver placeholder: the check let
    SQLAlchemy's text() read `:intern` as one (StatementError), which failed every batch task."""
    with_filter(mapping_file, "stelle NOT LIKE '%:intern%' AND vorname <> ':x'")
    alter(root, "UPDATE mitarbeiter SET stelle = 'a:intern b' WHERE pers_nr = 7")
    mapping = SourceMapping.from_file(mapping_file)
    assert check_source(root, mapping, backend_named("mysql")).problems == []
    read = [r["source_id"] for chunk in BaseA(root, mapping).extract("employees", None, 100) for r in chunk]
    assert read == [9]  # 7: ':intern' in its position; 8: a NULL position is outside; 10: soft-deleted


def test_a_type_change_the_mapping_reads_the_same_way_is_no_drift(root, mapping):
    alter(root, "ALTER TABLE mitarbeiter MODIFY pers_nr BIGINT UNSIGNED NOT NULL AUTO_INCREMENT")
    alter(root, "ALTER TABLE mitarbeiter MODIFY stelle VARCHAR(100) NULL")
    assert check_source(root, mapping, backend_named("mysql")).problems == []


def test_enum_and_set_members_are_shown_as_the_server_writes_them(root, mapping):
    """Found from outside: `SET('sql','php')` was shown as `SET('SQL','PHP')`, members that are not
    the column's values. The type's own words are upper case, the members as they are."""
    alter(root, "UPDATE mitarbeiter SET stelle = NULL, abt_code = 'V'")
    alter(root, "ALTER TABLE mitarbeiter MODIFY stelle SET('sql','php','It''s') NULL")
    alter(root, "ALTER TABLE mitarbeiter MODIFY abt_code ENUM('V','e') NULL")
    checked = check_source(root, mapping, backend_named("mysql"))
    assert checked.problems == []
    by_target = {use.target: use for use in checked.entities["employees"].uses}
    assert by_target["position"].types == ("SET('sql','php','It''s')",)
    assert by_target["department"].types == ("ENUM('V','e')",)
    assert by_target["source_id"].types == ("INT(10) UNSIGNED",)


def test_the_platforms_own_base_a_on_sqlite_passes(tmp_path):
    url = f"sqlite:///{tmp_path}/base_a.sqlite"
    engine = source_engine(url)
    create_schema(engine)
    checked = BaseA(engine, SourceMapping()).check()
    assert checked.problems == [] and all(not c.unmapped for c in checked.entities.values())
    assert all(not c.warnings for c in checked.entities.values())  # an INTEGER PRIMARY KEY names one row
    assert all(c.key_unique and c.key_indexed for c in checked.entities.values())
    engine.dispose()


@pytest.mark.parametrize(
    ("table", "indexed"),
    [
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", True),  # the rowid's alias: no index, the fastest lookup
        ("CREATE TABLE t (id INTEGER, tenant INTEGER, PRIMARY KEY (id, tenant))", True),
        ("CREATE TABLE t (tenant INTEGER, id INTEGER, PRIMARY KEY (tenant, id))", False),  # id second: no lookup
        ("CREATE TABLE t (id BIGINT, v TEXT)", False),
    ],
)
def test_sqlite_tells_which_columns_an_index_starts_with(tmp_path, table, indexed):
    engine = create_engine(f"sqlite:///{tmp_path}/leading.sqlite")
    with engine.begin() as conn:
        conn.execute(text(table))
        leading = backend_named("sqlite").leading_columns(conn, ["t"])
    assert ("id" in leading.get("t", ())) is indexed, leading
    engine.dispose()


@pytest.mark.parametrize(
    ("statement", "warned"),
    [
        ("ALTER TABLE mitarbeiter DROP PRIMARY KEY, MODIFY pers_nr INT UNSIGNED NOT NULL", True),
        (
            "ALTER TABLE mitarbeiter DROP PRIMARY KEY, MODIFY pers_nr INT UNSIGNED NOT NULL, "
            "ADD PRIMARY KEY (pers_nr, mail)",
            True,
        ),
        ("ALTER TABLE mitarbeiter DROP PRIMARY KEY, MODIFY pers_nr INT UNSIGNED NOT NULL, ADD UNIQUE (pers_nr)", False),
        ("SELECT 1", False),  # the PRIMARY KEY
    ],
)
def test_a_key_column_no_unique_index_holds_alone_is_warned_about(root, mapping, statement, warned):
    """An outside probe: a key on part of a composite primary key, or on a table without one, passed
    the check; the first run wrote an arbitrary winner, then verification failed naming the key."""
    with root.begin() as conn:
        conn.execute(text(statement))
    checked = check_source(root, mapping, backend_named("mysql"))
    warnings = [str(w) for w in checked.entities["employees"].warnings]
    assert checked.problems == []
    assert [w for w in warnings if "PRIMARY KEY or UNIQUE index" in w] == (
        [
            "employees: mitarbeiter.pers_nr: expected a key naming one row (the PRIMARY KEY, or a UNIQUE index on it "
            "alone), found no PRIMARY KEY or UNIQUE index on this column alone (a view has none): the batch asks Base "
            "A whether rows share a key (per chunk read where an index starts with the column, else one pass over "
            "the table per task) and quarantines rows that do (the events path dead-letters what it can tell: "
            "docs/mapping.md, `key`); a view whose key names one row by construction (`id * 100 + tenant AS id`): "
            "set `key_unique: true` to skip that question (docs/mapping.md, `key_unique`)"
        ]
        if warned
        else []
    )
    assert checked.entities["employees"].key_unique is not warned  # the batch asks only when warned
    # How it asks: per chunk where an index starts with the key, else one pass over the table.
    assert checked.entities["employees"].key_indexed is ("ADD" in statement or statement == "SELECT 1")


def test_a_mapped_view_is_warned_about_as_a_table_the_relay_never_publishes(root, mapping):
    """An outside probe: a view as the mapped table was warned of for its key alone; the relay
    published none of its changes (the binlog names the tables under it), and nothing said so."""
    with root.begin() as conn:
        conn.execute(text("RENAME TABLE mitarbeiter TO mitarbeiter_basis"))
        conn.execute(text("CREATE VIEW mitarbeiter AS SELECT * FROM mitarbeiter_basis"))
    checked = check_source(root, mapping, backend_named("mysql"))
    warnings = [str(w) for w in checked.entities["employees"].warnings]
    assert checked.problems == []
    assert (
        "employees: table mitarbeiter: expected a base table, whose changes the relay publishes (the events path), "
        "found a view: the binlog names the tables under it, never the view, so the relay publishes none of its "
        "changes; the batch sync alone carries them"
    ) in warnings
    assert not any(
        "a view" in w for c in checked.entities.values() if c.table != "mitarbeiter" for w in map(str, c.warnings)
    )


@pytest.mark.parametrize(("zone", "warned"), [("Europe/Berlin", True), ("Asia/Kathmandu", True), ("UTC", False)])
def test_a_stamp_the_servers_clock_writes_in_another_zone_than_the_mappings_is_warned_about(
    root, tmp_path, zone, warned
):
    """An outside probe: a cursor column ON UPDATE CURRENT_TIMESTAMP on a server whose zone is UTC,
    mapped as Europe/Berlin, put every version an hour or two early, and the check said ok. The
    test server runs UTC (its global time_zone SYSTEM, the system UTC): the mapping's zone differs
    from it instead of the server's from the mapping's. A stamp the application writes itself
    (a plain DATETIME) is no concern of the check."""
    (tmp_path / "mapping.yaml").write_text(MAPPING.replace("Europe/Berlin", zone))
    mapping = SourceMapping.from_file(tmp_path / "mapping.yaml")
    assert check_source(root, mapping, backend_named("mysql")).entities["employees"].warnings == []
    with root.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE mitarbeiter MODIFY geaendert_am DATETIME NULL ON UPDATE CURRENT_TIMESTAMP, "
                "MODIFY angelegt_am DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP"
            )
        )
    checked = check_source(root, mapping, backend_named("mysql"))
    warnings = [str(w) for w in checked.entities["employees"].warnings]
    assert checked.problems == []
    if not warned:
        assert warnings == []
        return
    changed, created = warnings
    assert changed.startswith(
        f"employees: mitarbeiter.geaendert_am: expected the server's clock (ON UPDATE CURRENT_TIMESTAMP) in "
        f"the mapping's zone {zone}, found the server's time zone SYSTEM (UTC): a session keeping it stamps every "
        f"version off by -"
    )
    assert created.startswith("employees: mitarbeiter.angelegt_am: expected the server's clock (DEFAULT ")
    assert "-5.75 h" in changed if zone == "Asia/Kathmandu" else "-1 h, -2 h" in changed


# Drift between two runs, through the sync steps


def test_a_column_retyped_between_runs_fails_the_next_run_before_anything_is_written(root, mapping, base_b):
    api, store = base_b.api(), MemoryStateStore()
    run_once("employees", BaseA(root, mapping), api, store)
    assert synced_rows(base_b.database_url, "employees") == expected_rows(ROWS)
    watermark, before = store.get("employees"), synced_rows(base_b.database_url, "employees")

    with root.begin() as conn:  # a change the next run would send, then the drift
        conn.execute(text("UPDATE mitarbeiter SET vorname = 'Augusta', geaendert_am = '2026-12-01 10:00:00'"))
    alter(root, "ALTER TABLE mitarbeiter MODIFY gehalt VARCHAR(20)")

    with pytest.raises(SchemaDriftError, match=r"mitarbeiter\.gehalt: expected a numeric type .*found VARCHAR\(20\)"):
        run_once("employees", BaseA(root, mapping), api, store)  # a new run: a new reader, checked anew
    assert synced_rows(base_b.database_url, "employees") == before
    assert store.get("employees") == watermark


def test_a_new_unmapped_column_is_reported_and_ignored(root, mapping, base_b):
    api, store = base_b.api(), MemoryStateStore()
    run_once("employees", BaseA(root, mapping), api, store)
    alter(root, "ALTER TABLE mitarbeiter ADD COLUMN kostenstelle INT NULL")
    with root.begin() as conn:
        conn.execute(text("UPDATE mitarbeiter SET kostenstelle = 42, nachname = 'Byron', geaendert_am = NOW()"))
    base_a = BaseA(root, mapping)
    assert base_a.require_schema("employees").unmapped == ["notiz", "kostenstelle"]
    run_once("employees", base_a, api, store)
    assert {row[2] for row in synced_rows(base_b.database_url, "employees").values()} == {"Byron"}


# A SELECT-only account: the batch works, nothing needs more than SELECT


def test_the_batch_steps_run_through_a_select_only_account(root, select_only_url, mapping, base_b):
    reader = source_engine(select_only_url)
    with reader.connect() as conn:
        grants = [g for (g,) in conn.execute(text("SHOW GRANTS"))]
        assert len(grants) == 2 and grants[0].startswith("GRANT USAGE ON *.*")
        assert grants[1].startswith("GRANT SELECT ON `")
        with pytest.raises(OperationalError, match="DELETE command denied"):
            conn.execute(text("DELETE FROM mitarbeiter"))
    api, store = base_b.api(), MemoryStateStore()

    first = run_once("employees", BaseA(reader, mapping), api, store)
    assert first["load"]["inserted"] == 3
    assert synced_rows(base_b.database_url, "employees") == expected_rows(ROWS)

    # Changes by the owner: an update, a soft delete, a hard delete, an insert.
    later = [
        (7, "Ada", "King", "ada@example.com", "E", "Countess", "5100.00", "2020-02-29", 1, "2026-12-01 09:00:00"),
        (8, *ROWS[1][1:8], 0, "2026-12-01 09:01:00"),
        (11, "Edsger", "Dijkstra", "ewd@example.com", "E", None, None, None, 1, "2026-12-01 09:02:00"),
    ]
    with root.begin() as conn:
        conn.execute(text("DELETE FROM mitarbeiter WHERE pers_nr IN (7, 8, 9)"))
        _insert(conn, later)
    second = run_once("employees", BaseA(reader, mapping), api, store)
    assert "suspect_buckets" in second["deletes"]  # no delete log: deletes by key comparison
    assert second["deletes"]["deleted"] == 2  # Alan (soft), Grace (hard)
    assert synced_rows(base_b.database_url, "employees") == expected_rows([later[0], later[2]])
    assert existing_triggers(root) == []  # nothing was installed on the owner's database
    reader.dispose()


def test_read_commands_write_nothing(legacy_url, select_only_url, mapping_file, make_mariadb_database):
    counted = _base_a("count", "employees", "--mapping", str(mapping_file), url=select_only_url)
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == "3"  # the live rows: the soft-deleted one is not counted

    # On an empty database the identity mapping finds no table: it says so and creates none.
    empty = make_mariadb_database()
    refused = _base_a("count", "employees", url=empty)
    assert refused.returncode != 0
    engine = source_engine(empty)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW TABLES")).all() == []
    engine.dispose()


def test_base_a_check_prints_each_mapped_column_and_fails_on_drift(root, legacy_url, select_only_url, mapping_file):
    checked = _base_a("check", "--mapping", str(mapping_file), url=select_only_url)
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert "employees <- mitarbeiter" in lines
    row = next(line.split() for line in lines if line.strip().startswith("source_updated_at"))
    assert row[:3] == ["source_updated_at", "geaendert_am", "DATETIME"]
    assert "Europe/Berlin" in checked.stdout and "not mapped (ignored): notiz" in checked.stdout
    assert lines[-1].startswith("ok")
    print(checked.stdout)  # the README's example

    alter(root, "ALTER TABLE mitarbeiter DROP COLUMN mail")
    failed = _base_a("check", "--mapping", str(mapping_file), url=select_only_url)
    assert failed.returncode == 1
    assert "employees: mitarbeiter.mail: expected a text type" in failed.stderr
    assert "found no such column" in failed.stderr
    # At the line of the field's column in the file, in the form editors and CI annotate.
    assert f"{mapping_file}:13:23: base-a check: employees: mitarbeiter.mail: expected" in failed.stderr


def test_the_delete_log_is_installed_only_when_asked(root, legacy_url, mapping, mapping_file, base_b):
    assert existing_triggers(root) == []
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    assert set(existing_triggers(root)) == LOG_TRIGGERS  # named after the table
    api, store = base_b.api(), MemoryStateStore()
    run_once("employees", BaseA(root, mapping), api, store)
    with root.begin() as conn:
        conn.execute(text("DELETE FROM mitarbeiter WHERE pers_nr = 9"))
        changed = "geaendert_am = '2026-12-01 10:00:00'"
        conn.execute(text(f"UPDATE mitarbeiter SET pers_nr = 80, {changed} WHERE pers_nr = 8"))
        conn.execute(text(f"UPDATE mitarbeiter SET vorname = 'Augusta', {changed} WHERE pers_nr = 7"))
        logged = conn.execute(text("SELECT entity, id FROM delete_log ORDER BY seq")).all()
    assert logged == [("employees", 9), ("employees", 8)]  # a changed key is logged, a changed name not
    second = run_once("employees", BaseA(root, mapping), api, store)
    assert second["deletes"]["from_log"] == 2 and second["deletes"]["deleted"] == 2
    assert second["deletes"]["resent_unique"] == 1  # 80 needed the email 8 held
    assert "suspect_buckets" not in second["deletes"]  # the log served: no key comparison
    assert sorted(synced_rows(base_b.database_url, "employees")) == [7, 80]
    again = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert again.returncode == 0, again.stderr  # idempotent: what is there stays


def test_the_delete_log_installs_on_the_tables_of_the_mapping_in_the_environment(root, legacy_url, mapping_file):
    """Found from outside: with BASE_A_MAPPING_FILE set (as on a real Base A: scripts/airflow-env.sh sets
    it) and no --mapping, install-delete-log refused "maps tables other than the demo's: cannot write them"."""
    assert existing_triggers(root) == []
    installed = _base_a("install-delete-log", url=legacy_url, mapping_file=mapping_file)
    assert installed.returncode == 0, installed.stderr
    assert set(existing_triggers(root)) == LOG_TRIGGERS
    assert "delete log triggers in place: mitarbeiter_log_delete, mitarbeiter_log_key_change" in installed.stderr
    # The demo's writers still refuse a mapping of tables they do not know.
    refused = _base_a("seed", "employees", "10", url=legacy_url, mapping_file=mapping_file)
    assert refused.returncode == 1 and "base-a cannot write them" in refused.stderr


def test_a_select_only_account_reads_the_delete_log_it_cannot_see_the_trigger_of(
    root, legacy_url, select_only_url, mapping, mapping_file, base_b, caplog
):
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    reader = source_engine(select_only_url)
    # MySQL lists a trigger only to an account with the TRIGGER privilege on its table.
    assert existing_triggers(reader) == [] and set(existing_triggers(root)) == LOG_TRIGGERS
    assert BaseA(root, mapping).logs_deletes("employees") is True
    assert BaseA(reader, mapping).logs_deletes("employees") is None  # cannot tell; the log is there
    api, store = base_b.api(), MemoryStateStore()
    run_once("employees", BaseA(reader, mapping), api, store)
    with root.begin() as conn:
        conn.execute(text("DELETE FROM mitarbeiter WHERE pers_nr = 9"))
    second = run_once("employees", BaseA(reader, mapping), api, store)
    assert second["deletes"]["from_log"] == 1 and second["deletes"]["deleted"] == 1
    assert "suspect_buckets" not in second["deletes"]  # the log served: no key comparison every run
    assert "cannot see triggers" in caplog.text
    assert 9 not in synced_rows(base_b.database_url, "employees")
    reader.dispose()


def _base_a(*args: str, url: str, mapping_file: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "BASE_A_URL": url}
    env.pop("BASE_A_MAPPING_FILE", None)
    if mapping_file is not None:
        env["BASE_A_MAPPING_FILE"] = str(mapping_file)
    return subprocess.run(
        [sys.executable, "-m", "base_sync.demo.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


LIVE_ERRORS = """\
entities:
  employees:
    table: employees
    cursor: {column: updated_at, type: timestamp}
    fields:
      first_name: {column: first_name}
      last_name: {column: nachname}
      email:
        column: email
      salary: {column: first_name}
  articles:
    table: beitraege
    fields:
      title: {column: title}
"""


def test_base_a_check_names_the_file_and_line_of_each_problem(tmp_path):
    """Problems with the live tables name the mapping file and the line of the entity's table or
    the field's column: `file:LINE:COLUMN: base-a check: ...`."""
    url = f"sqlite:///{tmp_path}/base_a.sqlite"
    assert _base_a("init", url=url).returncode == 0
    path = tmp_path / "mapping.yaml"
    path.write_text(LIVE_ERRORS)
    checked = _base_a("check", "--mapping", str(path), url=url)
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == [
        f"{path}:12:12: base-a check: articles: table beitraege: expected a table the mapping reads, found no such "
        "table, or none this account may read (it needs SELECT on it)",
        f"{path}:7:27: base-a check: employees: employees.nachname: expected {EXPECTED['text']}, found {MISSING}",
        f"{path}:10:24: base-a check: employees: employees.first_name: expected {EXPECTED['numeric']}, "
        "found VARCHAR(100)",
    ]

    path.write_text(LIVE_ERRORS.replace("        column: email\n", "        colum: email\n"))
    invalid = _base_a("check", "--mapping", str(path), url=url)
    assert invalid.returncode == 1
    assert invalid.stderr.splitlines() == [
        f"{path}:9:9: base-a check: entities.employees.fields.email.colum: unknown key: did you mean 'column'? "
        "(the keys here: column, concat, separator, python, inputs, cast, trim, case, map, unmapped, default, "
        "zero_date, too_long)"
    ]


def test_base_a_check_refuses_an_entity_the_mapping_does_not_map(tmp_path):
    """Outside probe: `base-a check employees` on a file mapping only articles checked nothing and
    said ok (exit 0); a name Base B does not have was refused with `[]` among argparse's choices."""
    url = f"sqlite:///{tmp_path}/base_a.sqlite"
    assert _base_a("init", url=url).returncode == 0
    path = tmp_path / "mapping.yaml"
    # The cursor `init`'s delete-log triggers log as the version (another would make them stale).
    cursor = "    cursor: [{column: updated_at, type: timestamp}]\n"
    fields = "    fields:\n      title: {column: title}\n"
    path.write_text(f"entities:\n  articles:\n    table: articles\n{cursor}{fields}")
    unmapped = _base_a("check", "--mapping", str(path), "employees", url=url)
    assert unmapped.returncode == 1
    assert "ok" not in unmapped.stdout.splitlines()[-1:]
    assert unmapped.stderr.splitlines() == [
        f"{path}:1:1: base-a check: entity 'employees' is not mapped, so nothing would be done for it "
        "(mapped: articles)"
    ]
    unknown = _base_a("check", "--mapping", str(path), "customers", url=url)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[-1] == (
        "base-a check: error: argument ENTITY: invalid choice: 'customers' (choose from 'articles', 'employees')"
    )
    mapped = _base_a("check", "--mapping", str(path), "articles", url=url)
    assert mapped.returncode == 0, mapped.stderr


def test_sqlite_read_commands_open_the_file_read_only(tmp_path):
    url = f"sqlite:///{tmp_path}/missing.sqlite"
    refused = _base_a("count", "employees", url=url)
    assert refused.returncode != 0
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.parametrize(
    ("deleted_when", "refused"),
    [
        ("J", True),
        ("NaN", True),
        ("1_000", True),
        ("\uff11", True),
        ("0", False),
        ("0.00", False),
        (True, False),
        ("yes", True),  # YAML 1.1's true, text in YAML 1.2: the message says to write true
    ],
)
def test_a_soft_delete_value_a_number_column_cannot_hold_is_refused(root, tmp_path, deleted_when, refused):
    """MariaDB reads 'J' as the number 0 (every active row would be deleted), the events path as no
    number (none): the paths would disagree on every row (probe)."""
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING.replace("deleted_when: 0", f"deleted_when: {orjson.dumps(deleted_when).decode()}"))
    checked = check_source(root, SourceMapping.from_file(path), backend_named("mysql"))
    problems = [str(p) for p in checked.entities["employees"].problems]
    expected = (
        "employees: mitarbeiter.aktiv: expected a deleted_when that is a number (the column is a number type), "
        f"found deleted_when {deleted_when!r} on TINYINT(1), which holds numbers"
    )
    if deleted_when == "yes":
        expected += " (a mapping file is YAML 1.2, where only true and false are booleans: write true or false)"
    assert problems == ([expected] if refused else [])


def test_a_cursor_of_nullable_columns_only_is_warned_about(root, tmp_path):
    """An outside probe: `cursor: geaendert_am` on a column NULL until a row's first update passed the
    check; every row never updated has no version and is refused, not synced."""
    only_update_stamp = "cursor: [{column: geaendert_am, type: datetime}]"
    (tmp_path / "mapping.yaml").write_text(re.sub(r"cursor: \[.*\]", only_update_stamp, MAPPING, count=1))
    mapping = SourceMapping.from_file(tmp_path / "mapping.yaml")
    checked = check_source(root, mapping, backend_named("mysql"))
    assert checked.problems == []
    assert [str(w) for w in checked.entities["employees"].warnings] == [
        "employees: mitarbeiter.geaendert_am: expected a cursor whose last column holds no NULL (the creation stamp "
        "after the update stamp), found every cursor column may be NULL: a row with all of them NULL has no version "
        "and is refused, not synced; end the cursor with a NOT NULL column (e.g. cursor: [geaendert_am, angelegt_am])"
    ]
    assert mapping.where(*checked.entities["employees"].warnings[0].where).endswith(":7:23")  # the column of the cursor
    # Filled by the server on insert, the column is never NULL in practice: no warning (review).
    with root.begin() as conn:
        conn.execute(text("ALTER TABLE mitarbeiter MODIFY geaendert_am DATETIME NULL DEFAULT CURRENT_TIMESTAMP"))
    warnings = check_source(root, mapping, backend_named("mysql")).entities["employees"].warnings
    assert not [w for w in warnings if "holds no NULL" in str(w)], warnings  # (the clock's zone is warned of)


def test_a_left_out_cursor_is_warned_about_as_the_whole_table_compared_every_run(root, tmp_path):
    """An outside probe: a mapping without `cursor` (the docs call it required) passed the check and
    was read as `cursor: none`, whole-table checksums every run. Written `cursor: none`, no warning."""
    for cursor, warned in (("", True), ("cursor: none", False)):
        text_of = re.sub(r"cursor: \[.*\]", cursor, MAPPING, count=1)
        (tmp_path / "mapping.yaml").write_text(text_of)
        mapping = SourceMapping.from_file(tmp_path / "mapping.yaml")
        warnings = check_source(root, mapping, backend_named("mysql")).entities["employees"].warnings
        said = [str(w) for w in warnings if "no cursor" in str(w)]
        assert said == (
            [
                "employees: table mitarbeiter: expected a `cursor` naming the change stamp, or `cursor: none` for a "
                "table without one, found no cursor: read as `cursor: none`, so the whole table is compared by "
                'checksums every run (docs/mapping.md, "Tables without a cursor"); write the stamp column, or '
                "`cursor: none` to say so"
            ]
            if warned
            else []
        ), cursor


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("int(11)", "utf8"), ("int", "utf8mb3")),  # MySQL 8.0.19 / MariaDB 10.6 write these so
        (("bigint(20) unsigned", None), ("bigint unsigned", None)),
        (("INT(10) UNSIGNED", None), ("int unsigned", None)),
        (("tinyint(4)", None), ("tinyint", None)),
        (("year(4)", None), ("year", None)),
        (("varchar(50)", "utf8"), ("varchar(50)", "utf8mb3")),
    ],
)
def test_a_server_upgrades_way_of_writing_a_definition_is_no_change(before, after):
    """A Base A server upgrade rewrites the catalogue's text of unchanged columns: that must not make
    every entity's next run a full refresh at once (the review)."""
    old, new = (LiveColumn("c", text, True, charset) for text, charset in (before, after))
    assert column_changes.changes("t", {"c": old.definition}, {"c": new.definition}) == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("decimal(10,2)", "decimal(10,0)"),
        ("int(5) unsigned zerofill", "int(8) unsigned zerofill"),  # the padding of the value's text
        ("tinyint(1)", "tinyint(4)"),  # MySQL 8 keeps TINYINT(1): a boolean-like column
        ("varchar(50)", "varchar(20)"),
        ("enum('a','b')", "enum('a')"),
    ],
)
def test_a_definition_that_can_change_values_is_a_change(before, after):
    old, new = LiveColumn("c", before, True).definition, LiveColumn("c", after, True).definition
    assert column_changes.changes("t", {"c": old}, {"c": new}) == [f"t.c: {old}, now {new}"]


def test_a_table_gone_after_the_check_is_a_schema_change_on_sqlite_too(tmp_path):
    """SQLite says `no such table` in its message alone: its backend reads it there."""
    engine = source_engine(f"sqlite:///{tmp_path / 'base_a.db'}")
    try:
        create_schema(engine)
        base_a = BaseA(engine)
        base_a.require_schema("articles")
        alter(engine, "ALTER TABLE articles RENAME TO articles_weg")
        with pytest.raises(SchemaChanging) as raised:
            next(base_a.extract("articles", None, 9))
    finally:
        engine.dispose()
    assert str(raised.value).startswith("articles: Base A's articles disappeared during the read")
