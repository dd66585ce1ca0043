"""Events as Debezium's MySQL connector (1.x-3.x) writes them under its other settings: each is read
right or refused with a specific reason (a dead letter), never an exception that stalls the drain."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from base_sync.debezium import BadEvent, Topics, decode, topic_for
from base_sync.mapping import SourceMapping

IDENTITY = Topics()
# The events carry SOURCE's database (source.db), which must be the topics' (debezium._check_source).
LEGACY = Topics("dbz", "base_a", SourceMapping.from_file(Path(__file__).parent / "fixtures" / "events_mapping.yaml"))
EMPLOYEES, MITARBEITER = "base_a.base_a.employees", "dbz.base_a.mitarbeiter"
DECIMAL = "org.apache.kafka.connect.data.Decimal"


def precise(unscaled: int) -> str:
    """decimal.handling.mode=precise: base64 of the unscaled two's-complement integer."""
    return base64.b64encode(unscaled.to_bytes(max(1, (unscaled.bit_length() + 8) // 8), "big", signed=True)).decode()


def wall_ms(text: str) -> int:
    return int((datetime.fromisoformat(text) - datetime(1970, 1, 1)).total_seconds() * 1000)


EMPLOYEE = {
    "id": 7,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "department": None,
    "position": "Engineer",
    "salary": "1234.50",  # decimal.handling.mode=string: without a schema, precise base64 has no scale
    "hired_at": 17955,
    "created_at": "2025-01-01T08:00:00Z",
    "updated_at": "2026-11-23T09:41:07.654321Z",
}
MITARBEITER_ROW = {
    "pers_nr": 5,
    "vorname": " Ada ",
    "nachname": "L",
    "mail": " A@B.COM ",
    "abt_code": "V",
    "funktion": "x",
    "gehalt": "50000.25",
    "eintritt": 18262,
    "angelegt_am": wall_ms("2020-01-01 10:00:00"),
    "geaendert_am": wall_ms("2026-07-01 12:00:00"),
    "aktiv": 1,
    "bemerkung": "n",
}
SOURCE = {"version": "2.7.3.Final", "connector": "mysql", "name": "base_a", "ts_ms": 1795426867000, "db": "base_a"}


def envelope(op: str, before=None, after=None, source=SOURCE, **extra) -> dict:
    return {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1795426867123, **extra}


def column(field: str, kind: str, name: str | None = None, optional: bool = True, parameters=None) -> dict:
    schema = {"type": kind, "optional": optional, "field": field}
    if name:
        schema |= {"name": name, "version": 1}
    if parameters is not None:
        schema["parameters"] = parameters
    return schema


def with_schema(payload: dict, columns: list[dict]) -> dict:
    """schemas.enable=true: the JSON converter's schema/payload wrapper."""
    row = {"type": "struct", "fields": columns, "optional": True, "name": "x.Value"}
    fields = [{**row, "field": "before"}, {**row, "field": "after"}, {"type": "string", "field": "op"}]
    return {"schema": {"type": "struct", "name": "x.Envelope", "fields": fields}, "payload": payload}


def mitarbeiter_columns(stamp: str, day: str = "io.debezium.time.Date") -> list[dict]:
    return [
        column("pers_nr", "int64", optional=False),
        column("vorname", "string", optional=False),
        column("nachname", "string", optional=False),
        column("mail", "string", optional=False),
        column("abt_code", "string"),
        column("funktion", "string"),
        column("gehalt", "string"),
        column("eintritt", "int32", day),
        column("angelegt_am", "int64", stamp, optional=False),
        column("geaendert_am", "int64", stamp),
        column("aktiv", "int16", optional=False),
        column("bemerkung", "string"),
    ]


def read(topic: str, event):
    value = event if event is None or isinstance(event, bytes) else orjson.dumps(event)
    return decode(topic, value, LEGACY if topic == MITARBEITER else IDENTITY)


def test_time_precision_mode_connect_is_read_as_kafka_connects_logical_types():
    connect = mitarbeiter_columns("org.apache.kafka.connect.data.Timestamp", "org.apache.kafka.connect.data.Date")
    change = read(MITARBEITER, with_schema(envelope("u", after=MITARBEITER_ROW), connect))
    assert change.action == "upsert" and change.version == datetime(2026, 7, 1, 10, tzinfo=UTC)  # Berlin, summer
    assert change.record["hired_at"] == date(2020, 1, 1)


@pytest.mark.parametrize(
    ("stamp", "coarse"),
    [
        ("org.apache.kafka.connect.data.Timestamp", True),  # time.precision.mode=connect
        ("io.debezium.time.Timestamp", True),
        ("io.debezium.time.MicroTimestamp", False),
        (None, True),  # no schema: an epoch below 10^14 is read in milliseconds
    ],
)
def test_a_delete_says_when_its_version_is_a_stamp_cut_to_milliseconds(stamp, coarse):
    row = MITARBEITER_ROW
    if stamp == "io.debezium.time.MicroTimestamp":
        row = {**row, "angelegt_am": row["angelegt_am"] * 1000, "geaendert_am": row["geaendert_am"] * 1000}
    event = envelope("d", before=row)
    change = read(MITARBEITER, with_schema(event, mitarbeiter_columns(stamp)) if stamp else event)
    assert change.version == datetime(2026, 7, 1, 10, tzinfo=UTC) and change.coarse_version is coarse


def test_a_delete_versioned_by_its_commit_time_is_not_cut():
    change = read(MITARBEITER, envelope("d", before={**MITARBEITER_ROW, "geaendert_am": None, "angelegt_am": None}))
    assert change.version == datetime.fromtimestamp(SOURCE["ts_ms"] / 1000, UTC) and not change.coarse_version


@pytest.mark.parametrize(("kind", "sent"), [("string", "1234.50"), ("double", 1234.5)])
def test_string_and_double_decimals_with_a_schema_are_numbers(kind, sent):
    event = with_schema(envelope("c", after={**EMPLOYEE, "salary": sent}), [column("salary", kind)])
    assert read(EMPLOYEES, event).record["salary"] == Decimal("1234.50")


@pytest.mark.parametrize("key", [0, -5, 2**63, 2**64 - 1])
def test_a_key_outside_base_bs_range_is_refused_with_the_reason(key):
    # A zero stamp would make it a quarantine, whose store refuses the whole request for one such key.
    event = envelope("c", after={**EMPLOYEE, "id": key, "updated_at": "1970-01-01T00:00:00Z"})
    with pytest.raises(BadEvent, match="outside Base B's key range"):
        read(EMPLOYEES, event)


def test_a_negative_key_names_debeziums_unsigned_handling():
    with pytest.raises(BadEvent, match=r"bigint\.unsigned\.handling\.mode"):
        read(EMPLOYEES, envelope("d", before={**EMPLOYEE, "id": -5}))


PRECISE_KEY = column("id", "bytes", DECIMAL, False, parameters={"scale": "0"})


def test_a_bigint_unsigned_key_in_precise_mode_is_a_whole_decimal():
    event = with_schema(envelope("c", after={**EMPLOYEE, "id": precise(7)}), [PRECISE_KEY])
    assert read(EMPLOYEES, event).id == 7


@pytest.mark.parametrize("op", ["c", "r"])
def test_a_precise_mode_key_reaches_the_mapping_as_the_integer_and_the_row_is_applied(op):
    change = read(EMPLOYEES, with_schema(envelope(op, after={**EMPLOYEE, "id": precise(7)}), [PRECISE_KEY]))
    assert change.action == "upsert" and change.record["source_id"] == 7 and type(change.record["source_id"]) is int
    assert change.row["id"] == 7 and type(change.row["id"]) is int


@pytest.mark.parametrize("op", ["c", "d"])
def test_a_text_key_without_the_schema_wrapper_is_refused_never_read_as_base64(op):
    """Without a schema a precise-mode BIGINT UNSIGNED's base64 cannot be told from a text key: read
    as base64, the VARCHAR keys 'SKU1' and 'AAAB' were rows 4760885 and 1, and 'AAAAAAAB' row 1 too
    (two Base A rows one Base B row). Every text key is refused, the reason says how to send it."""
    for key in (precise(2**63 - 1), "SKU1", "AAAB", "AAAAAAAB"):
        image = {**EMPLOYEE, "id": key}
        event = envelope(op, before=image if op == "d" else None, after=None if op == "d" else image)
        with pytest.raises(BadEvent, match=r"must be an integer key, got .*bigint\.unsigned\.handling\.mode=long"):
            decode(EMPLOYEES, orjson.dumps(event), IDENTITY, orjson.dumps({"id": key}))


STRING_KEY = column("id", "string", optional=False)


@pytest.mark.parametrize("key", ["SKU1", "AAAB", "AAAAAAAB", "abcd", "Kunde001", "abc", "10", "SKU1 "])
@pytest.mark.parametrize("op", ["c", "u", "r", "d"])
def test_a_key_the_schema_types_as_text_is_refused_as_the_batch_path_refuses_it(op, key):
    """A VARCHAR key: the batch path refuses the table ("expected an integer type (the key), found
    VARCHAR(40)"); the drain read a base64-shaped text as a number and applied it (a made-up
    source_id, two keys one row, a delete of another key's row). Refused by its schema type, with
    the batch path's words, whatever the text looks like: a dead letter, nothing applied."""
    image = {**EMPLOYEE, "id": key}
    event = envelope(op, before=image if op in "ud" else None, after=None if op == "d" else image)
    where = "before" if op == "d" else "after"
    says = rf"`{where}\.id`: expected an integer type \(the key\), found string by the event's schema: mapping keys"
    with pytest.raises(BadEvent, match=says):
        decode(EMPLOYEES, orjson.dumps(with_schema(event, [STRING_KEY])), IDENTITY, orjson.dumps(key))


def test_a_case_only_change_of_a_text_key_is_refused_not_applied_as_a_delete_and_a_create():
    """'abcd' to 'ABCD' (one key to a _ci collation): read as base64 the relay's delete of 'abcd' and
    create of 'ABCD' were two rows, 6928157 deleted and 4227 live. Both events are refused."""
    for op, before, after in (("d", "abcd", None), ("c", None, "ABCD")):
        event = envelope(
            op,
            before={**EMPLOYEE, "id": before} if before else None,
            after={**EMPLOYEE, "id": after} if after else None,
        )
        with pytest.raises(BadEvent, match="expected an integer type"):
            read(EMPLOYEES, with_schema(event, [STRING_KEY]))


@pytest.mark.parametrize(
    ("schema", "value", "found"),
    [
        # DECIMAL(12,0): the batch path refuses it; precise mode wrote 7 as base64 and it was key 7.
        (
            column("id", "bytes", DECIMAL, False, {"scale": "0", "connect.decimal.precision": "12"}),
            precise(7),
            r"org\.apache\.kafka\.connect\.data\.Decimal \(bytes\) of precision 12, scale 0",
        ),
        (
            column("id", "bytes", DECIMAL, False, {"scale": "2", "connect.decimal.precision": "12"}),
            precise(700),
            "org.*, scale 2",
        ),
        (column("id", "string", optional=False), "7", "string"),  # decimal.handling.mode=string
        (column("id", "float64", optional=False), 7.0, "float64"),  # decimal.handling.mode=double
        (column("id", "bytes", optional=False), base64.b64encode(b"7").decode(), "bytes by"),  # BINARY
        (column("id", "int32", "io.debezium.time.Year", False), 2024, r"io\.debezium\.time\.Year \(int32\)"),
        (column("id", "bytes", "io.debezium.data.Bits", False, {"length": "8"}), "Bw==", r"io\.debezium\.data\.Bits"),
        (column("id", "boolean", optional=False), True, "boolean"),
    ],
    ids=["decimal-12-0", "decimal-12-2", "decimal-string", "decimal-double", "binary", "year", "bit", "bit-1"],
)
def test_a_key_of_no_integer_type_is_refused_by_its_schema_type(schema, value, found):
    with pytest.raises(BadEvent, match=rf"`after\.id`: expected an integer type \(the key\), found {found}"):
        read(EMPLOYEES, with_schema(envelope("c", after={**EMPLOYEE, "id": value}), [schema]))


@pytest.mark.parametrize("kind", ["int8", "int16", "int32", "int64"])
def test_a_key_of_an_integer_schema_type_is_its_integer(kind):
    change = read(
        EMPLOYEES, with_schema(envelope("c", after={**EMPLOYEE, "id": 7}), [column("id", kind, optional=False)])
    )
    assert change.id == 7 and change.record["source_id"] == 7


def test_a_table_name_kafka_does_not_allow_is_on_the_topic_debezium_names():
    assert topic_for("emp$data", "base_a", "shop-1") == "base_a.shop-1.emp_data"
    assert topic_for("Straße", "base_a", "db") == "base_a.db.Stra_e"


def test_a_precise_mode_key_deletes_the_integer_key():
    change = read(EMPLOYEES, with_schema(envelope("d", before={**EMPLOYEE, "id": precise(7)}), [PRECISE_KEY]))
    assert change.action == "delete" and change.id == 7 and type(change.row["id"]) is int


@pytest.mark.parametrize("key", [1.0, "5", "1234", True, 1.5])
def test_a_key_that_is_no_integer_is_refused(key):
    with pytest.raises(BadEvent, match="integer key"):
        read(EMPLOYEES, envelope("c", after={**EMPLOYEE, "id": key}))


def test_without_the_schema_a_datetimes_epoch_integer_is_read_in_ms_below_10_14_and_in_us_above():
    micros = wall_ms("2026-07-01 12:00:00") * 1000 + 123  # DATETIME(6) as MicroTimestamp writes it
    change = read(MITARBEITER, envelope("u", after={**MITARBEITER_ROW, "geaendert_am": micros}))
    assert change.version == datetime(2026, 7, 1, 10, 0, 0, 123, tzinfo=UTC)  # Berlin, summer
    change = read(MITARBEITER, envelope("u", after=MITARBEITER_ROW))
    assert change.version == datetime(2026, 7, 1, 10, tzinfo=UTC)


# A stamp column whose type in Base A is not the mapping's (the owners changed it between DATETIME
# and TIMESTAMP): read as declared, its instant was off by the zone's offset, so a later update was
# dropped as stale and another written hours early (or, the other way, hours in the future).
DATETIME_FOUND = "expected TIMESTAMP (declared `type: timestamp`, UTC), found DATETIME"
TIMESTAMP_FOUND = "expected DATETIME (declared `type: datetime`, Europe/Berlin), found TIMESTAMP"
ZONED = "io.debezium.time.ZonedTimestamp"


@pytest.mark.parametrize(
    ("topic", "changed", "columns", "says"),
    [
        (  # mapping: datetime; the event's schema: a TIMESTAMP
            MITARBEITER,
            {"geaendert_am": "2026-06-03T08:00:00Z"},
            mitarbeiter_columns("io.debezium.time.Timestamp")[:9] + [column("geaendert_am", "string", ZONED)],
            f"mitarbeiter.geaendert_am (cursor of employees): {TIMESTAMP_FOUND} ({ZONED} by the event's schema)",
        ),
        (  # the same without the schema wrapper: ISO text with its zone is how a TIMESTAMP is written
            MITARBEITER,
            {"geaendert_am": "2026-06-03T08:00:00.000000Z"},
            None,
            f"mitarbeiter.geaendert_am (cursor of employees): {TIMESTAMP_FOUND} ('2026-06-03T08:00:00.000000Z', "
            "as a TIMESTAMP is written without the schema wrapper)",
        ),
        (  # a column in two roles is named in both
            MITARBEITER,
            {"angelegt_am": "2020-01-01T09:00:00+00:00"},
            None,
            f"mitarbeiter.angelegt_am (cursor and created of employees): {TIMESTAMP_FOUND}",
        ),
        (  # mapping: timestamp; the event's schema: a DATETIME in each of Debezium's precision modes
            EMPLOYEES,
            {"updated_at": 1_780_000_000_000},
            [column("updated_at", "int64", "io.debezium.time.Timestamp")],
            f"employees.updated_at (cursor of employees): {DATETIME_FOUND} (io.debezium.time.Timestamp by",
        ),
        (
            EMPLOYEES,
            {"updated_at": 1_780_000_000_000_000},
            [column("updated_at", "int64", "io.debezium.time.MicroTimestamp")],
            f"{DATETIME_FOUND} (io.debezium.time.MicroTimestamp by the event's schema)",
        ),
        (
            EMPLOYEES,
            {"created_at": 1_780_000_000_000},
            [column("created_at", "int64", "org.apache.kafka.connect.data.Timestamp")],
            f"employees.created_at (created of employees): {DATETIME_FOUND} (org.apache.kafka.connect.data.Timestamp",
        ),
        (  # without the wrapper: an epoch integer is how a DATETIME is written
            EMPLOYEES,
            {"updated_at": 1_780_000_000_000},
            None,
            f"{DATETIME_FOUND} (an epoch integer, as a DATETIME is written without the schema wrapper)",
        ),
    ],
    ids=["zoned-schema", "zoned-text", "created-too", "timestamp-ms", "timestamp-us", "connect", "epoch-integer"],
)
@pytest.mark.parametrize("op", ["u", "d"])
def test_a_stamp_of_another_type_than_the_mapping_declares_is_refused_with_what_to_do(
    topic, changed, columns, says, op
):
    row = {**(MITARBEITER_ROW if topic == MITARBEITER else EMPLOYEE), **changed}
    event = envelope(op, before=row if op == "d" else None, after=None if op == "d" else row)
    image = "before" if op == "d" else "after"
    with pytest.raises(BadEvent) as refused:
        read(topic, event if columns is None else with_schema(event, columns))
    reason = str(refused.value)
    assert reason.startswith(f"`{image}.{next(iter(changed))}`: ") and says in reason, reason
    assert "Write `type: " in reason and "`base-a check` shows the live type" in reason


@pytest.mark.parametrize(
    ("topic", "changed", "columns"),
    [
        (MITARBEITER, {"geaendert_am": "2026-06-03 09:00:00"}, None),  # text without a zone: not told
        (MITARBEITER, {"geaendert_am": wall_ms("2026-06-03 09:00:00")}, [column("geaendert_am", "int64")]),
        (MITARBEITER, {"geaendert_am": None}, None),
        (EMPLOYEES, {"updated_at": "2026-06-03 07:00:00"}, None),
        (EMPLOYEES, {"updated_at": "2026-06-03T07:00:00Z"}, [column("updated_at", "string", ZONED)]),
    ],
    ids=["naive-text", "schema-without-logical-type", "null", "naive-text-timestamp", "zoned-as-declared"],
)
def test_a_stamp_whose_type_the_event_does_not_contradict_is_read_as_the_mapping_declares(topic, changed, columns):
    row = {**(MITARBEITER_ROW if topic == MITARBEITER else EMPLOYEE), **changed}
    event = envelope("u", after=row)
    change = read(topic, event if columns is None else with_schema(event, columns))
    assert change.action == "upsert"


def test_a_zero_datetime_of_a_not_null_column_is_a_dirty_value_as_on_the_batch_path():
    # Debezium writes it as the epoch; the batch path reads '0000-00-00 00:00:00' and quarantines the row.
    columns = mitarbeiter_columns("io.debezium.time.Timestamp")
    change = read(MITARBEITER, with_schema(envelope("c", after={**MITARBEITER_ROW, "angelegt_am": 0}), columns))
    assert change.action == "quarantine"
    assert "angelegt_am" in {reason["field"] for reason in change.quarantined.reasons}


def test_a_version_stamp_at_the_epoch_is_no_version_without_a_schema_too():
    change = read(MITARBEITER, envelope("c", after={**MITARBEITER_ROW, "geaendert_am": None, "angelegt_am": 0}))
    assert change.action == "quarantine"


def test_a_zero_date_of_a_not_null_date_column_is_a_dirty_value():
    columns = [column("eintritt", "int32", "io.debezium.time.Date", optional=False)]
    change = read(MITARBEITER, with_schema(envelope("c", after={**MITARBEITER_ROW, "eintritt": 0}), columns))
    assert change.action == "quarantine"  # the fixture's mapping rejects zero dates (zero_date: reject)


@pytest.mark.parametrize("optional", [False, True])
def test_a_zero_date_value_is_the_epoch_from_our_relay_and_from_debezium_where_the_column_is_nullable(optional):
    """Our relay writes a zero date as its text ('0000-00-00'): its 0 is a real 1970-01-01. Debezium
    writes a nullable column's zero date as null, so there too 0 is the epoch; only in a NOT NULL
    column is Debezium's 0 the zero date (a real 1970-01-01 is refused there: it cannot be told)."""
    columns = [column("eintritt", "int32", "io.debezium.time.Date", optional=optional)]
    at_epoch = {**MITARBEITER_ROW, "eintritt": 0}
    relays = read(
        MITARBEITER,
        with_schema(envelope("c", after=at_epoch, source={**SOURCE, "version": "base-sync-relay"}), columns),
    )
    assert relays.action == "upsert" and relays.record["hired_at"] == date(1970, 1, 1)
    debeziums = read(MITARBEITER, with_schema(envelope("c", after=at_epoch), columns))
    assert debeziums.action == ("upsert" if optional else "quarantine")


def test_a_datetime_stamp_at_the_epoch_is_a_version_from_our_relay_and_in_a_nullable_debezium_column():
    relays = {**SOURCE, "version": "base-sync-relay"}
    change = read(MITARBEITER, envelope("c", after={**MITARBEITER_ROW, "geaendert_am": 0}, source=relays))
    assert change.action == "upsert"
    assert change.version == datetime(1969, 12, 31, 23, tzinfo=UTC)  # 1970-01-01 00:00 in Berlin (UTC+1)
    # Debezium's schema says the column is nullable, where it writes a zero date as null: 0 is the epoch.
    columns = mitarbeiter_columns("io.debezium.time.Timestamp")
    change = read(MITARBEITER, with_schema(envelope("c", after={**MITARBEITER_ROW, "geaendert_am": 0}), columns))
    assert change.action == "upsert" and change.version == datetime(1969, 12, 31, 23, tzinfo=UTC)


def test_a_minimal_row_image_is_refused_before_it_wipes_columns():
    partial = {name: None for name in MITARBEITER_ROW} | {"pers_nr": 5, "funktion": "Boss", "geaendert_am": 1}
    columns = mitarbeiter_columns("io.debezium.time.Timestamp")
    with pytest.raises(BadEvent, match="binlog_row_image=FULL"):
        read(MITARBEITER, with_schema(envelope("u", before={"pers_nr": 5}, after=partial), columns))


def test_a_truncate_says_where_its_deletes_are_found():
    with pytest.raises(BadEvent, match="TRUNCATE.*compare_keys"):
        read(EMPLOYEES, envelope("t"))


def test_a_record_flattened_by_extract_new_record_state_is_refused_by_name():
    flattened = {**EMPLOYEE, "__op": "u", "__deleted": "false", "__source_ts_ms": 1795426867000}
    with pytest.raises(BadEvent, match="ExtractNewRecordState"):
        read(EMPLOYEES, flattened)


def test_a_logical_type_the_mapped_column_cannot_be_read_as_is_refused():
    event = with_schema(envelope("c", after={**EMPLOYEE, "hired_at": "x"}), [column("hired_at", "string", "my.Type")])
    with pytest.raises(BadEvent, match="hired_at.*my.Type"):
        read(EMPLOYEES, event)


@pytest.mark.parametrize(
    "event",
    [
        envelope("c", after=EMPLOYEE) | {"op": ["c"]},
        {"schema": {"fields": None}, "payload": envelope("c", after=EMPLOYEE)},
        with_schema(envelope("c", after=EMPLOYEE), [column("salary", "bytes", DECIMAL, parameters="x")]),
        envelope("c", after=EMPLOYEE, source={**SOURCE, "ts_ms": 10**18}),
    ],
    ids=["op-list", "null-fields", "parameters-text", "ts_ms-overflow"],
)
def test_a_malformed_envelope_is_a_bad_event_not_a_crash(event):
    with pytest.raises(BadEvent):
        read(EMPLOYEES, event)


@pytest.mark.parametrize(
    ("topic", "message_key", "row_key"),
    [
        (EMPLOYEES, b"7", 7),  # as the relay keys it
        (EMPLOYEES, b'{"id": 7}', 7),  # Debezium, schemas off
        (EMPLOYEES, b'{"schema": {"type": "struct"}, "payload": {"id": 7}}', 7),  # Debezium, schemas on
        (MITARBEITER, b'{"pers_nr": 5}', 5),  # the source's own key column
        (EMPLOYEES, b"not json", 7),  # names no row: not checked
    ],
)
def test_a_message_key_naming_the_events_row_is_accepted(topic, message_key, row_key):
    row = EMPLOYEE if topic == EMPLOYEES else MITARBEITER_ROW
    value = orjson.dumps(envelope("c", after=row))
    assert decode(topic, value, LEGACY if topic == MITARBEITER else IDENTITY, message_key).id == row_key


def precise_message_key(key: int, with_key_schema: bool = True) -> bytes:
    """The message key as Debezium writes it under bigint.unsigned.handling.mode=precise."""
    if not with_key_schema:
        return orjson.dumps({"id": precise(key)})
    schema = {"type": "struct", "optional": False, "name": "x.Key", "fields": [PRECISE_KEY]}
    return orjson.dumps({"schema": schema, "payload": {"id": precise(key)}})


@pytest.mark.parametrize("with_key_schema", [True, False], ids=["key-schema", "schemaless-key"])
@pytest.mark.parametrize("op", ["c", "u", "r", "d"])
def test_a_precise_mode_message_key_names_its_row(op, with_key_schema):
    image = {**EMPLOYEE, "id": precise(7)}
    event = envelope(op, before=image if op in "ud" else None, after=None if op == "d" else image)
    value = orjson.dumps(with_schema(event, [PRECISE_KEY]))
    change = decode(EMPLOYEES, value, IDENTITY, precise_message_key(7, with_key_schema))
    assert change.id == 7 and change.action == ("delete" if op == "d" else "upsert")


@pytest.mark.parametrize(
    "message_key",
    [
        b"8",
        b'{"id": 8}',
        b'{"schema": {}, "payload": {"id": "8"}}',
        precise_message_key(8),
        precise_message_key(8, with_key_schema=False),
        b'{"id": "not a key"}',
    ],
)
def test_a_message_key_naming_another_row_is_refused(message_key):
    """Kafka orders a row's events by their key: keyed for row 8, row 7's change may overtake an
    older one of row 7 on another partition."""
    value = orjson.dumps(envelope("u", before=EMPLOYEE, after=EMPLOYEE))
    with pytest.raises(BadEvent, match=r"the message key names row .* but `after.id` is 7"):
        decode(EMPLOYEES, value, IDENTITY, message_key)


@pytest.mark.parametrize(
    ("columns", "changed", "says"),
    [
        (
            [column("salary", "bytes", DECIMAL, parameters={"scale": "2"})],
            {"salary": ""},
            "an empty value is no number",
        ),
        ([column("salary", "bytes", DECIMAL)], {"salary": precise(500)}, "has no `parameters.scale`"),
        ([column("salary", "bytes", DECIMAL, parameters={})], {"salary": precise(500)}, "has no `parameters.scale`"),
        (
            [column("updated_at", "string", "io.debezium.time.ZonedTimestamp")],
            {"updated_at": 1795435200},
            "ZonedTimestamp is ISO 8601 text",
        ),
    ],
    ids=[
        "empty-precise-decimal",
        "decimal-without-scale",
        "decimal-with-empty-parameters",
        "zoned-as-integer",
    ],
)
def test_a_value_its_schema_does_not_describe_is_refused_not_guessed(columns, changed, says):
    """Each was read as something else: "" as 0.00, a decimal without its scale 100 times too
    large, epoch seconds as milliseconds (1970-01-21)."""
    with pytest.raises(BadEvent, match=re.escape(says)):
        read(EMPLOYEES, with_schema(envelope("c", after={**EMPLOYEE, **changed}), columns))


def test_binary_that_is_no_utf8_text_refuses_the_row_with_the_batch_paths_reason():
    """Not Python's bytes text: a field's column is refused by the mapping (a rejection in Base B, as
    the batch path quarantines the row); another column the mapping reads makes a dead letter."""
    bad = base64.b64encode(b"\xff\xfe").decode()
    change = read(
        EMPLOYEES, with_schema(envelope("c", after={**EMPLOYEE, "position": bad}), [column("position", "bytes")])
    )
    assert change.action == "quarantine"
    assert change.quarantined.reasons == [{"field": "position", "message": "position is not UTF-8 text: X'FFFE'"}]
    flag = with_schema(envelope("c", after={**MITARBEITER_ROW, "aktiv": bad}), [column("aktiv", "bytes")])
    with pytest.raises(BadEvent, match=re.escape("`aktiv`: its binary value is not UTF-8 text")):
        read(MITARBEITER, flag)


def test_a_binary_column_the_mapping_reads_as_text_is_its_utf8_text():
    event = with_schema(
        envelope("c", after={**EMPLOYEE, "position": base64.b64encode("Müller-Analyst".encode()).decode()}),
        [column("position", "bytes")],
    )
    assert read(EMPLOYEES, event).record["position"] == "Müller-Analyst"


@pytest.mark.parametrize("ts_ms", [1795435200000.0, "1795435200000", True, -1, 2**63])
def test_a_commit_time_that_is_no_epoch_millisecond_count_is_refused_by_name(ts_ms):
    with pytest.raises(BadEvent, match=r"`source\.ts_ms` must be the commit time in epoch milliseconds"):
        read(EMPLOYEES, envelope("c", after=EMPLOYEE, source={**SOURCE, "ts_ms": ts_ms}))


def test_the_json_converters_null_with_schemas_on_is_a_tombstone():
    assert read(EMPLOYEES, {"schema": None, "payload": None}) is None


def test_a_wrapper_without_its_schema_is_read_as_a_wrapper():
    assert read(EMPLOYEES, {"payload": envelope("c", after=EMPLOYEE)}).id == 7


def test_a_reason_quotes_a_huge_value_only_in_part():
    """The reason travels in a dead letter's header: quoting a 490 KB value made the letter too
    large for the broker, and the drain stopped on it for good."""
    with pytest.raises(BadEvent) as refused:
        read(EMPLOYEES, envelope("c", after={**EMPLOYEE, "hired_at": "x" * 490_000}))
    assert len(str(refused.value)) < 300 and "490002 characters" in str(refused.value)


def test_a_snapshot_read_of_a_table_without_a_cursor_is_skipped_and_a_change_is_versioned_by_its_commit(tmp_path):
    """Versioned by the commit time, a snapshot read (op r) has none: Debezium stamps it when it read
    the row, after changes committed during the snapshot, which it would beat (the probe saw a change
    made during the snapshot lost). The batch sync's checksums carry such tables' rows."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "entities:\n  employees:\n    table: employees\n    key: id\n    cursor: none\n"
        "    fields: {first_name: {column: first_name}, last_name: {column: last_name}, email: {column: email}}\n"
    )
    topics = Topics(mapping=SourceMapping.from_file(mapping))
    snapshot = decode(
        EMPLOYEES, orjson.dumps(envelope("r", after=EMPLOYEE, source={**SOURCE, "snapshot": "true"})), topics
    )
    assert snapshot.action == "skip" and snapshot.version is None
    change = decode(EMPLOYEES, orjson.dumps(envelope("u", before=EMPLOYEE, after=EMPLOYEE)), topics)
    assert change.action == "upsert" and change.version == datetime.fromtimestamp(SOURCE["ts_ms"] / 1000, UTC)
