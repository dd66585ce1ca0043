"""A mapping names a table as its owners write it (`Personal`); how the server stores and compares
table names depends on its lower_case_table_names. The check and the batch sync match names as the
server does, and where the case is wrong on a server that tells it apart, say how it is spelled."""

from __future__ import annotations

import time
import uuid

import pytest

from base_sync import sync
from base_sync.debezium import Topics
from base_sync.mapping import SourceMapping
from base_sync.mapping.check import SchemaDriftError
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, source_engine
from base_sync.state import MemoryStateStore
from testbed.relay import RelayProcess
from tests.sync.conftest import binlog_database, read_topic, server_database, synced_rows

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=500, bucket_size=1000)
OWNERS_TABLE = (
    "CREATE TABLE Personal (PersNr INT PRIMARY KEY, Vorname VARCHAR(50) NOT NULL, Nachname VARCHAR(50) NOT NULL, "
    "Mail VARCHAR(100) NOT NULL, Geaendert_Am DATETIME NOT NULL, KEY ix_geaendert (Geaendert_Am, PersNr))"
)
ROWS = "INSERT INTO Personal VALUES (1, 'Ann', 'Lee', 'ann@example.com', '2026-01-01 00:00:00')"


def mapping_naming(table: str, tmp_path) -> SourceMapping:
    path = tmp_path / "mapping.yaml"
    path.write_text(
        f"""
source: {{time_zone: UTC}}
entities:
  employees:
    table: {table}
    key: PersNr
    cursor: Geaendert_Am
    fields:
      first_name: {{column: Vorname}}
      last_name: {{column: Nachname}}
      email: {{column: Mail}}
"""
    )
    return SourceMapping.from_file(path)


def owners_database(url: str):
    engine = source_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(OWNERS_TABLE)
        conn.exec_driver_sql(ROWS)
    return engine


def test_a_table_named_as_its_owners_write_it_syncs_where_the_server_folds_names(
    folding_mariadb_port, base_b, tmp_path
):
    """On lower_case_table_names=1 the server stores `Personal` as `personal` and reads it under
    either name; the catalogue, matched exactly, found 'no such table, or none this account may
    read' and failed the check and every batch task."""
    engine = owners_database(server_database(folding_mariadb_port, f"base_a_{uuid.uuid4().hex[:8]}"))
    try:
        base_a, api = BaseA(engine, mapping_naming("Personal", tmp_path)), base_b.api()
        checked = base_a.require_schema("employees")
        assert checked.warnings == []  # the primary key found too: the key names one row
        report = sync.load("employees", base_a, api, MemoryStateStore(), SETTINGS, False)
        assert sync.verify("employees", base_a, api, report, SETTINGS).rows == 1
    finally:
        engine.dispose()
    assert [row[1:4] for row in synced_rows(base_b.database_url, "employees").values()] == [
        ("Ann", "Lee", "ann@example.com")
    ]


def test_a_table_named_in_another_case_where_the_server_tells_case_apart_says_how_it_is_spelled(
    make_mariadb_database, tmp_path
):
    engine = owners_database(make_mariadb_database())  # the machine's server: lower_case_table_names=0
    try:
        with engine.connect() as conn:
            if conn.exec_driver_sql("SELECT @@lower_case_table_names").scalar_one():
                pytest.skip("this server folds table names")
        with pytest.raises(SchemaDriftError, match="no such table \\(the database spells it 'Personal'"):
            BaseA(engine, mapping_naming("personal", tmp_path)).require_schema("employees")
    finally:
        engine.dispose()


def test_the_relay_publishes_a_table_named_as_its_owners_write_it_where_the_server_folds_names(
    folding_mariadb_port, kafka_bootstrap, tmp_path
):
    """On lower_case_table_names=1 the binlog names the mapping's `Personal` in database `Stamm_...`
    as `personal` in `stamm_...`: the relay matched the names exactly and published nothing of the
    table, without a word, while the batch sync read it."""
    database = f"Stamm_{uuid.uuid4().hex[:8]}"
    url = binlog_database(folding_mariadb_port, database)
    engine = owners_database(url)
    mapping = mapping_naming("Personal", tmp_path)
    relay = RelayProcess(url, kafka_bootstrap, tmp_path)
    relay.env["BASE_A_MAPPING_FILE"] = str(tmp_path / "mapping.yaml")
    relay.start()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO Personal VALUES (2, 'Bo', 'Yi', 'bo@example.com', '2026-01-02')")
            conn.exec_driver_sql("UPDATE personal SET Vorname = 'Ann-Marie' WHERE PersNr = 1")
        topics = Topics(relay.prefix, database, mapping)
        deadline, found = time.monotonic() + 30, []
        while len(found) < 2 and time.monotonic() < deadline:
            found = read_topic(kafka_bootstrap, topics.topic("employees"))
    finally:
        relay.stop()
        engine.dispose()
    changes = [topics.decode(m.topic(), m.value(), m.key()) for m in found]
    assert sorted((c.id, c.record["first_name"]) for c in changes) == [(1, "Ann-Marie"), (2, "Bo")]
