"""The events path through a source mapping: a legacy-shaped table on the real MariaDB with its binlog on,
the relay publishing its rows in their own shape to Debezium's topic, the drain applying the mapping
through the real API; the batch path then reads the same rows and finds nothing to change.

The table (tests/sync/fixtures/events_mapping.yaml): other table and column names, an INT UNSIGNED key,
local Europe/Berlin DATETIME stamps (the modification stamp NULL until the first change), a soft-delete
flag, a value map rejecting unknown codes, trimmed and lower-cased text.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base_sync import events, sync
from base_sync.debezium import BadEvent, Topics
from base_sync.mapping import SourceMapping, parse_mapping
from base_sync.settings import EventSettings
from base_sync.source import BaseA, Cursor, source_engine
from base_sync.state import MemoryStateStore
from base_sync.topics import ensure_topics
from testbed.relay import RelayProcess
from tests.sync.conftest import read_topic, synced_rows
from tests.sync.test_sync_steps import SETTINGS

MAPPING_FILE = Path(__file__).parent / "fixtures" / "events_mapping.yaml"
MAPPING = SourceMapping.from_file(MAPPING_FILE)
TABLE = """
CREATE TABLE mitarbeiter (
    pers_nr INT UNSIGNED NOT NULL PRIMARY KEY,
    vorname VARCHAR(100) NOT NULL,
    nachname VARCHAR(100) NOT NULL,
    mail VARCHAR(255) NOT NULL,
    abt_code CHAR(1) NULL,
    funktion VARCHAR(100) NULL,
    gehalt DECIMAL(12, 2) NULL,
    eintritt DATE NULL,
    angelegt_am DATETIME NOT NULL,
    geaendert_am DATETIME NULL,
    aktiv TINYINT(1) NOT NULL DEFAULT 1,
    bemerkung TEXT NULL
)
"""
BIG_KEY = 4_000_000_000  # above a signed INT: the UNSIGNED key travels as an int64
UNMAPPED = "department: the value 'X' is not in the mapping's value map"
ZERO_HIRED = "eintritt is the zero date 0000-00-00"
ZERO_CHANGED = "geaendert_am is the zero timestamp 0000-00-00 00:00:00: the row has no usable version"
REFUSED = {4: [UNMAPPED], 5: [ZERO_HIRED], 10: [ZERO_CHANGED]}  # the batch path's reasons, word for word


def insert(engine, key: int, created: str, changed: str | None = None, **values) -> None:
    row = {
        "pers_nr": key,
        "vorname": f"  Vor{key} ",
        "nachname": "Name ",
        "mail": f" Person{key}@Example.COM ",
        "abt_code": "V",
        "funktion": "Analyst",
        "gehalt": Decimal("50000.25"),
        "eintritt": "2020-01-01",
        "angelegt_am": created,
        "geaendert_am": changed,
        "aktiv": 1,
        "bemerkung": "not mapped",
        **values,
    }
    names = ", ".join(row)
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))  # a legacy writer's lax mode: zero dates get in
        conn.execute(text(f"INSERT INTO mitarbeiter ({names}) VALUES ({', '.join(':' + n for n in row)})"), row)


def execute(engine, statement: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


@pytest.fixture
def legacy(base_a_url, kafka_bootstrap, tmp_path):
    """The legacy table in Base A, the relay reading it through the mapping, and the drain's settings."""
    engine = source_engine(base_a_url)
    execute(engine, TABLE)
    relay = RelayProcess(base_a_url, kafka_bootstrap, tmp_path)
    relay.env["BASE_A_MAPPING_FILE"] = str(MAPPING_FILE)
    relay.start()
    database = make_url(base_a_url).database
    settings = EventSettings(
        topic_prefix=relay.prefix,
        source_database=database,
        dlq_topic=f"{relay.prefix}.dlq",
        group_id=f"{relay.prefix}.apply",
        idle_seconds=0.5,
    )
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, [settings.dlq_topic], partitions=1)
    yield engine, relay, settings, Topics.from_settings(settings, MAPPING)
    relay.stop()
    engine.dispose()


def wait_for(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = read_topic(bootstrap, topic)
        if len(found) >= count:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{topic}: {len(found)} of {count} events after {timeout} s")


def drain(bootstrap: str, settings: EventSettings, topics: Topics, base_b) -> events.DrainReport:
    config = {"bootstrap.servers": bootstrap}
    consumer, producer = events.consumer_for(config, settings), events.producer_for(config)
    api = base_b.api()
    try:
        return events.drain(consumer, producer, api, settings, topics, kafka_config=config)
    finally:
        consumer.close()
        api.close()


def open_reasons(api) -> dict[int, list[str]]:
    return {r["source_id"]: [x["message"] for x in r["reasons"]] for r in api.open_rejections("employees")}


def batch_versions(engine) -> dict[int, datetime]:
    """(key, version) of the live rows as the batch path computes them (the SQL time zone rule)."""
    until = Cursor(datetime(2100, 1, 1, tzinfo=UTC), 2**40)
    return dict(BaseA(engine, MAPPING).window_versions("employees", None, until))


def wall_ms(wall: str) -> int:
    """Debezium's io.debezium.time.Timestamp of a DATETIME: epoch ms of the wall time read as UTC."""
    return int(datetime.fromisoformat(wall).replace(tzinfo=UTC).timestamp() * 1000)


def test_a_legacy_table_reaches_base_b_through_the_mapping_as_the_batch_would_write_it(legacy, kafka_bootstrap, base_b):
    engine, relay, settings, topics = legacy
    topic = topics.topic("employees")
    assert topic == f"{relay.prefix}.{settings.source_database}.mitarbeiter"
    assert topics.names == [topic], "only the mapped tables have topics"

    insert(engine, 1, "2026-03-29 02:30:00")  # no such Berlin wall time: clocks jumped 02:00 -> 03:00
    insert(engine, 2, "2026-01-10 08:00:00", "2026-10-25 02:30:00", abt_code="E")  # twice that night
    insert(engine, BIG_KEY, "2026-06-01 12:00:00")
    insert(engine, 4, "2026-06-02 12:00:00", abt_code="X")  # not in the value map: refused
    insert(engine, 5, "2026-06-03 12:00:00", eintritt="0000-00-00")  # a zero date: refused
    insert(engine, 6, "2026-06-04 12:00:00")
    insert(engine, 10, "2026-06-05 12:00:00", "0000-00-00 00:00:00")  # a zero cursor stamp: no version
    execute(engine, "INSERT INTO employees (first_name, last_name, email) VALUES ('Not', 'Mapped', 'n@example.com')")
    messages = wait_for(kafka_bootstrap, topic, 7)

    assert_published_in_the_source_shape(messages, relay, settings, kafka_bootstrap)

    report = drain(kafka_bootstrap, settings, topics, base_b)
    assert report.counts["inserted"] == 4 and report.counts["quarantined"] == 3, report.to_json()
    assert report.counts["dead_lettered"] == 3
    rows = synced_rows(base_b.database_url, "employees")
    assert rows[1][:5] == (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "Vor1", "Name", "person1@example.com", "Sales")
    assert rows[2][0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the earlier of the two 02:30s (CEST)
    assert rows[2][4] == "Engineering" and rows[BIG_KEY][6] == "50000.25"
    assert open_reasons(base_b.api()) == REFUSED
    # The dead letters say the same, each naming its field once ("department: department: ..." before).
    letters = [
        dict(m.headers())["__connect.errors.exception.message"].decode()
        for m in read_topic(kafka_bootstrap, settings.dlq_topic)
    ]
    assert sorted(letters) == sorted(reason for reasons in REFUSED.values() for reason in reasons)

    # Changes: an update, a soft delete (the flag, with a new stamp), a delete; and row 1's first change.
    execute(engine, "UPDATE mitarbeiter SET funktion = 'Lead', geaendert_am = '2026-11-30 10:00:00' WHERE pers_nr = 2")
    execute(
        engine, "UPDATE mitarbeiter SET aktiv = 0, geaendert_am = '2026-11-30 11:00:00' WHERE pers_nr = :k", k=BIG_KEY
    )
    execute(engine, "DELETE FROM mitarbeiter WHERE pers_nr = 6")
    execute(engine, "UPDATE mitarbeiter SET gehalt = 61000.5, geaendert_am = '2026-12-01 09:15:00' WHERE pers_nr = 1")
    wait_for(kafka_bootstrap, topic, 11)
    report = drain(kafka_bootstrap, settings, topics, base_b)
    assert report.counts["updated"] == 2 and report.counts["deleted"] == 2, report.to_json()
    rows = synced_rows(base_b.database_url, "employees")
    assert sorted(rows) == [1, 2]
    assert rows[1][0] == datetime(2026, 12, 1, 8, 15, tzinfo=UTC) and rows[1][6] == "61000.50"
    assert rows[2][0] == datetime(2026, 11, 30, 9, 0, tzinfo=UTC) and rows[2][5] == "Lead"

    # The versions are the batch path's, and the batch finds every row as the events left it.
    versions = batch_versions(engine)
    assert set(versions) - set(rows) == {4, 5}, "the quarantined rows are live in Base A, not in Base B"
    assert {key: row[0] for key, row in rows.items()} == {key: versions[key] for key in rows}
    events_reasons = open_reasons(base_b.api())
    loaded = sync.load("employees", BaseA(engine, MAPPING), base_b.api(), MemoryStateStore(), SETTINGS, True)
    assert loaded.counts["unchanged"] == 2, loaded.to_json()
    assert loaded.counts["inserted"] == loaded.counts["updated"] == 0
    assert loaded.counts["quarantined"] == 3
    assert open_reasons(base_b.api()) == events_reasons == REFUSED


def assert_published_in_the_source_shape(messages: list, relay, settings: EventSettings, bootstrap: str) -> None:
    """The rows in their own shape, typed from the binlog's column metadata as Debezium's connector
    types them; the key the source key; no topic for a table the mapping does not name."""
    first = orjson.loads(next(m.value() for m in messages if m.key() == b"1"))
    columns = {c["field"]: c for c in first["schema"]["fields"][1]["fields"]}
    assert list(columns) == [
        "pers_nr",
        "vorname",
        "nachname",
        "mail",
        "abt_code",
        "funktion",
        "gehalt",
        "eintritt",
        "angelegt_am",
        "geaendert_am",
        "aktiv",
        "bemerkung",
    ]
    assert (columns["pers_nr"]["type"], columns["pers_nr"]["optional"]) == ("int64", False)
    assert columns["angelegt_am"]["name"] == "io.debezium.time.Timestamp"
    assert columns["gehalt"]["parameters"]["scale"] == "2" and columns["eintritt"]["name"] == "io.debezium.time.Date"
    assert (
        columns["aktiv"]["type"] == "int16" and columns["bemerkung"]["type"] == columns["abt_code"]["type"] == "string"
    )
    after = first["payload"]["after"]
    assert after["angelegt_am"] == wall_ms("2026-03-29 02:30:00") and after["geaendert_am"] is None
    assert after["vorname"] == "  Vor1 " and after["eintritt"] == (date(2020, 1, 1) - date(1970, 1, 1)).days
    assert base64.b64decode(after["gehalt"]) == (5000025).to_bytes(3, "big", signed=True)
    assert first["payload"]["source"]["table"] == "mitarbeiter"
    big = orjson.loads(next(m.value() for m in messages if m.key() == str(BIG_KEY).encode()))
    assert big["payload"]["after"]["pers_nr"] == BIG_KEY
    assert f"{relay.prefix}.{settings.source_database}.employees" not in {
        t for t in relay_topics(bootstrap) if t.startswith(relay.prefix)
    }


def relay_topics(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics)


def debezium_event(settings: EventSettings, op: str, before: dict | None, after: dict | None, with_schema=True):
    """An event as Debezium 2.x's MySQL connector writes it for the mitarbeiter table (JSON converter)."""
    columns = [
        {"type": "int64", "optional": False, "field": "pers_nr"},
        {"type": "string", "optional": False, "field": "vorname"},
        {"type": "string", "optional": False, "field": "nachname"},
        {"type": "string", "optional": False, "field": "mail"},
        {"type": "string", "optional": True, "field": "abt_code"},
        {"type": "string", "optional": True, "field": "funktion"},
        {
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "12"},
            "field": "gehalt",
        },
        {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1, "field": "eintritt"},
        {
            "type": "int64",
            "optional": False,
            "name": "io.debezium.time.Timestamp",
            "version": 1,
            "field": "angelegt_am",
        },
        {
            "type": "int64",
            "optional": True,
            "name": "io.debezium.time.Timestamp",
            "version": 1,
            "field": "geaendert_am",
        },
        {"type": "int16", "optional": False, "default": 1, "field": "aktiv"},
        {"type": "string", "optional": True, "field": "bemerkung"},
    ]
    db, server = settings.source_database, settings.topic_prefix
    value = f"{server}.{db}.mitarbeiter.Value"
    payload = {
        "before": before,
        "after": after,
        "source": {
            "version": "2.7.3.Final",
            "connector": "mysql",
            "name": server,
            "ts_ms": 1796300000000,
            "snapshot": "false",
            "db": db,
            "sequence": None,
            "table": "mitarbeiter",
            "server_id": 1,
            "gtid": None,
            "file": "mysql-bin.000003",
            "pos": 5321,
            "row": 0,
            "thread": 12,
            "query": None,
        },
        "op": op,
        "ts_ms": 1796300000123,
        "transaction": None,
    }
    if not with_schema:
        return orjson.dumps(payload)
    schema = {
        "type": "struct",
        "fields": [
            {"type": "struct", "fields": columns, "optional": True, "name": value, "field": "before"},
            {"type": "struct", "fields": columns, "optional": True, "name": value, "field": "after"},
            {
                "type": "struct",
                "fields": [],
                "optional": False,
                "name": "io.debezium.connector.mysql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{server}.{db}.mitarbeiter.Envelope",
        "version": 1,
    }
    return orjson.dumps({"schema": schema, "payload": payload})


def debezium_row(key: int, created: str, changed: str | None, **values) -> dict:
    return {
        "pers_nr": key,
        "vorname": f" Hand{key}",
        "nachname": "Written",
        "mail": f"HAND{key}@example.com ",
        "abt_code": "E",
        "funktion": None,
        "gehalt": base64.b64encode((123456).to_bytes(3, "big", signed=True)).decode(),  # 1234.56
        "eintritt": (date(2021, 7, 1) - date(1970, 1, 1)).days,
        "angelegt_am": wall_ms(created),
        "geaendert_am": wall_ms(changed) if changed else None,
        "aktiv": 1,
        "bemerkung": None,
        **values,
    }


def test_hand_written_debezium_events_are_applied_as_the_relays(legacy, kafka_bootstrap, base_b):
    """What a real Debezium connector would publish, with and without the schema wrapper; the same rows
    are in Base A, written without the binlog (so the relay publishes nothing of them)."""
    engine, _, settings, topics = legacy
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_log_bin = 0"))
        for key in (7, 8, 9):
            conn.execute(
                text(
                    "INSERT INTO mitarbeiter (pers_nr, vorname, nachname, mail, abt_code, gehalt, eintritt, "
                    "angelegt_am, geaendert_am, aktiv) VALUES (:k, :v, 'Written', :m, 'E', 1234.56, '2021-07-01', "
                    "'2026-07-01 09:00:00', :changed, :aktiv)"
                ),
                {
                    "k": key,
                    "v": f" Hand{key}",
                    "m": f"HAND{key}@example.com ",
                    "changed": "2026-08-01 10:30:00" if key != 7 else None,
                    "aktiv": 0 if key == 9 else 1,
                },
            )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    topic = topics.topic("employees")
    seven = debezium_row(7, "2026-07-01 09:00:00", None)
    eight = debezium_row(8, "2026-07-01 09:00:00", "2026-08-01 10:30:00")
    producer.produce(topic, key=b"7", value=debezium_event(settings, "c", None, seven))
    # Schemas off, a connector must write decimals as text (decimal.handling.mode=string): precise
    # mode's base64 has its scale in the schema alone.
    as_text = {**eight, "gehalt": "1234.56"}
    producer.produce(topic, key=b"8", value=debezium_event(settings, "r", None, as_text, with_schema=False))
    producer.flush(10)
    report = drain(kafka_bootstrap, settings, topics, base_b)
    assert report.counts["inserted"] == 2 and report.counts["dead_lettered"] == 0, report.to_json()
    rows = synced_rows(base_b.database_url, "employees")
    assert rows[7][:7] == (
        datetime(2026, 7, 1, 7, 0, tzinfo=UTC),
        "Hand7",
        "Written",
        "hand7@example.com",
        "Engineering",
        None,
        "1234.56",
    )
    assert rows[8][0] == datetime(2026, 8, 1, 8, 30, tzinfo=UTC) and rows[8][7] == date(2021, 7, 1)

    # A soft delete (the flag) and a delete, as Debezium writes them.
    nine = debezium_row(9, "2026-07-01 09:00:00", "2026-08-01 10:30:00", aktiv=0)
    producer.produce(topic, key=b"9", value=debezium_event(settings, "c", None, {**nine, "aktiv": 1}))
    producer.produce(topic, key=b"9", value=debezium_event(settings, "u", None, nine))
    producer.produce(topic, key=b"7", value=debezium_event(settings, "d", seven, None))
    producer.produce(topic, key=b"7", value=None)  # Debezium's tombstone after a delete
    producer.flush(10)
    report = drain(kafka_bootstrap, settings, topics, base_b)
    assert report.counts["tombstones"] == 1 and report.counts["superseded"] == 1, report.to_json()
    assert sorted(synced_rows(base_b.database_url, "employees")) == [8]
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_log_bin = 0"))
        conn.execute(text("DELETE FROM mitarbeiter WHERE pers_nr = 7"))
    loaded = sync.load("employees", BaseA(engine, MAPPING), base_b.api(), MemoryStateStore(), SETTINGS, True)
    assert loaded.counts["unchanged"] == 1 and loaded.counts["inserted"] == loaded.counts["updated"] == 0

    # Malformed: an unknown table's topic is not read; a missing key or an unreadable value is a dead letter.
    bad_key = {**eight}
    del bad_key["pers_nr"]
    producer.produce(topic, key=b"x", value=debezium_event(settings, "u", None, bad_key))
    producer.produce(topic, key=b"8", value=debezium_event(settings, "u", None, {**eight, "eintritt": "soon"}))
    producer.flush(10)
    report = drain(kafka_bootstrap, settings, topics, base_b)
    assert report.counts["dead_lettered"] == 2
    reasons = [
        dict(m.headers())["__connect.errors.exception.message"] for m in read_topic(kafka_bootstrap, settings.dlq_topic)
    ]
    # Keyed differently, the two may sit in different partitions: their dead letters come in any order.
    assert sum(b"`after.pers_nr` must be an integer key" in r for r in reasons) == 1
    assert sum(b"`eintritt`" in r for r in reasons) == 1


# Without servers: the mapping's rules on decoded changes.


def _topics(**changes) -> Topics:
    document = {
        "source": {"time_zone": "Europe/Berlin"},
        "entities": {"employees": {**parse_mapping_dict(), **changes}},
    }
    return Topics("p", "legacy", SourceMapping(parse_mapping(document)))


def parse_mapping_dict() -> dict:
    return yaml.safe_load(MAPPING_FILE.read_text())["entities"]["employees"]


def bare(op: str, before: dict | None, after: dict | None, ts_ms: int | None = 1796300000000) -> bytes:
    return orjson.dumps({"op": op, "before": before, "after": after, "source": {"ts_ms": ts_ms}})


ROW = {
    "pers_nr": 3,
    "vorname": "A",
    "nachname": "B",
    "mail": "a@b.de",
    "abt_code": "V",
    "funktion": None,
    "gehalt": "12.50",
    "eintritt": "2020-02-02",
    "angelegt_am": "2026-01-01T10:00:00",
    "geaendert_am": None,
    "aktiv": 1,
}


def test_a_delete_takes_the_before_images_version_else_the_commit_time():
    topics = _topics()
    change = topics.decode("p.legacy.mitarbeiter", bare("d", ROW, None))
    assert change.is_delete and change.version == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    unusable = {**ROW, "angelegt_am": "0000-00-00 00:00:00"}
    change = topics.decode("p.legacy.mitarbeiter", bare("d", unusable, None))
    assert change.version == datetime.fromtimestamp(1796300000, UTC)
    with pytest.raises(BadEvent, match="needs `before.geaendert_am` or `source.ts_ms`"):
        topics.decode("p.legacy.mitarbeiter", bare("d", {"pers_nr": 3}, None, ts_ms=None))


@pytest.mark.parametrize(("flag", "deleted"), [(0, True), (False, True), ("0", True), (1, False), (None, False)])
def test_the_soft_delete_flag_is_compared_as_text_and_null_is_live(flag, deleted):
    change = _topics().decode("p.legacy.mitarbeiter", bare("u", None, {**ROW, "aktiv": flag}))
    assert change.is_delete is deleted
    assert change.action == ("delete" if deleted else "upsert")


def test_a_zero_cursor_and_a_missing_column_and_a_filtered_entity():
    topics = _topics()
    change = topics.decode("p.legacy.mitarbeiter", bare("c", None, {**ROW, "angelegt_am": "0000-00-00 00:00:00"}))
    assert change.action == "quarantine" and change.version is None
    assert change.quarantined.reasons == [
        {
            "field": "angelegt_am",
            "message": "angelegt_am is the zero timestamp 0000-00-00 00:00:00: the row has no usable version",
        }
    ]
    without = {k: v for k, v in ROW.items() if k != "funktion"}
    missing = r"lacks columns the mapping reads: funktion \(renamed or dropped in mitarbeiter\? `base-a check`"
    with pytest.raises(BadEvent, match=missing):
        topics.decode("p.legacy.mitarbeiter", bare("c", None, without))
    filtered = _topics(filter="aktiv = 1")
    assert filtered.names == [] and filtered.entity_of("p.legacy.mitarbeiter") is None


def test_a_table_without_a_cursor_is_versioned_by_the_commit_time():
    topics = _topics(cursor="none")
    change = topics.decode("p.legacy.mitarbeiter", bare("u", None, ROW, ts_ms=1796300000250))
    assert change.version == datetime.fromtimestamp(1796300000, UTC) + timedelta(milliseconds=250)
    assert change.record["source_updated_at"] == change.version
    assert change.record["created_at"] == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
