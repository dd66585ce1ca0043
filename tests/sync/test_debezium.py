"""The change-event format, without servers: Debezium's envelopes in, changes out; our writer round-trips."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from base_sync.debezium import BadEvent, EnvelopeWriter, SourceColumn, decode, read_row

DEBEZIUM_UPDATE = (Path(__file__).parent / "data" / "debezium_employee_update.json").read_bytes()
ROW = {
    "id": 7,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "department": None,
    "position": "Engineer",
    "salary": Decimal("-1234.50"),
    "hired_at": date(2019, 2, 28),
    "created_at": datetime(2025, 1, 1, 8, 0, 0, 1),
    "updated_at": datetime(2026, 11, 23, 9, 41, 7, 654321),
}
SOURCE = {"ts_ms": 1795426867000, "server_id": 1, "gtid": None, "file": "binlog.000001", "pos": 4, "row": 0}


def test_reads_debezium_mysql_connector_output_with_schema():
    change = decode("base_a.base_a.employees", DEBEZIUM_UPDATE)
    assert (change.entity, change.id, change.op) == ("employees", 1004, "u")
    assert change.version == datetime(2026, 11, 23, 9, 41, 7, 654321, tzinfo=UTC)
    assert change.row["salary"] == Decimal("300063.28")  # precise mode: base64 with the schema's scale
    assert change.row["hired_at"] == date(2020, 1, 1)  # days since the epoch
    assert change.row["first_name"] == "Anne Marie"
    assert change.source_ms == 1795426867000


def test_reads_the_same_event_without_the_schema_wrapper_its_decimals_as_text():
    payload = json.loads(DEBEZIUM_UPDATE)["payload"]
    for image in ("before", "after"):  # decimal.handling.mode=string, as a schemaless consumer needs
        payload[image]["salary"] = "300063.28"
    bare = orjson.dumps(payload)
    assert decode("base_a.base_a.employees", bare) == decode("base_a.base_a.employees", DEBEZIUM_UPDATE)


def test_a_precise_decimal_without_the_schema_wrapper_is_refused_never_read_at_a_guessed_scale():
    """Its base64 holds the unscaled digits; the scale is in the schema alone. It was read at the
    Base B field's scale: DECIMAL(10,4) 12.5 (125000) became 1250.00, DECIMAL(20,0) 1234 12.34."""
    bare = orjson.dumps(json.loads(DEBEZIUM_UPDATE)["payload"])
    with pytest.raises(BadEvent, match=r"`salary`: cannot read .*precise-mode base64 without the schema wrapper"):
        decode("base_a.base_a.employees", bare)


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        (SourceColumn("n", "decimal", scale=4, precision=10), Decimal("12.5"), "12.5000"),
        (SourceColumn("n", "decimal", scale=0, precision=20), Decimal("1234"), "1234"),
        (SourceColumn("n", "decimal", scale=30, precision=65), Decimal("1E-30"), "0." + "0" * 29 + "1"),
        (SourceColumn("n", "decimal", scale=2, precision=65), Decimal("-" + "9" * 63 + ".99"), "-" + "9" * 63 + ".99"),
        (SourceColumn("n", "decimal", scale=2, precision=5), Decimal("-0.00"), "0.00"),
    ],
)
def test_without_the_schema_wrapper_the_writer_sends_a_decimal_as_its_exact_text_and_it_reads_back(column, value, text):
    """As Debezium's decimal.handling.mode=string: the text MariaDB shows, read at any field's scale."""
    writer = EnvelopeWriter("employees", [SourceColumn("id", "int64", False), column], with_schema=False)
    image = orjson.loads(writer.envelope("c", None, {"id": 1, "n": value}, SOURCE, 1))["after"]
    assert image["n"] == text
    row, _ = read_row(image, {}, {"n": ("decimal",)})
    assert row["n"] == value and format(row["n"], "f") == text
    wrapped = EnvelopeWriter("employees", [SourceColumn("id", "int64", False), column])
    payload = orjson.loads(wrapped.envelope("c", None, {"id": 1, "n": value}, SOURCE, 1))["payload"]
    assert payload["after"]["n"] != text  # with the schema: precise base64, the scale in the schema


@pytest.mark.parametrize("with_schema", [True, False])
@pytest.mark.parametrize("salary", ["0", "-0.01", "127.99", "-128.00", "1234.50", "9999999999.99"])
def test_writer_round_trips_through_the_reader(with_schema, salary):
    writer = EnvelopeWriter.identity("employees", database="base_a", with_schema=with_schema)
    row = {**ROW, "salary": Decimal(salary)}
    change = decode("base_a.base_a.employees", writer.envelope("u", ROW, row, SOURCE, 1))
    assert change.row == {
        **row,
        "created_at": ROW["created_at"].replace(tzinfo=UTC),
        "updated_at": ROW["updated_at"].replace(tzinfo=UTC),
    }


def test_delete_carries_the_deleted_rows_version():
    writer = EnvelopeWriter.identity("employees")
    change = decode("base_a.base_a.employees", writer.envelope("d", ROW, None, SOURCE, 1))
    assert change.is_delete and change.record is None and change.id == 7
    assert change.row["first_name"] == "Ada"  # the before image
    assert change.version == ROW["updated_at"].replace(tzinfo=UTC)


def test_delete_without_updated_at_falls_back_to_the_commit_time():
    event = {"op": "d", "before": {"id": 3}, "source": {"ts_ms": 1795426867000}}
    change = decode("base_a.base_a.articles", orjson.dumps(event))
    assert change.version == datetime.fromtimestamp(1795426867, tz=UTC)


@pytest.mark.parametrize("value", [None, b"null"])
def test_tombstones_are_skipped(value):
    assert decode("base_a.base_a.articles", value) is None


def test_other_encodings_debezium_can_be_set_to():
    event = {
        "op": "c",
        "after": {
            "id": 1,
            "first_name": "x",
            "last_name": "y",
            "email": "x@example.com",
            "department": None,
            "position": None,
            "salary": "1234.50",  # decimal.handling.mode=string
            "hired_at": "2020-01-01",
            "created_at": "2023-11-14T22:13:20Z",  # a TIMESTAMP (ZonedTimestamp), no schema
            "updated_at": "2023-11-14T23:13:20.000123+01:00",
        },
    }
    change = decode("base_a.base_a.employees", orjson.dumps(event))
    assert change.row["salary"] == Decimal("1234.50")
    assert change.row["created_at"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert change.version == datetime(2023, 11, 14, 22, 13, 20, 123, tzinfo=UTC)
    double = decode("base_a.base_a.employees", orjson.dumps({**event, "after": {**event["after"], "salary": 12.5}}))
    assert double.row["salary"] == Decimal("12.5")  # decimal.handling.mode=double


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        ("base_a.base_a.employees", b"{not json", "not JSON"),
        ("base_a.base_a.employees", b"[1, 2]", "not a JSON object"),
        (  # a connector writing through a Schema Registry (Avro here): magic byte 0, schema id 42
            "base_a.base_a.employees",
            b"\x00\x00\x00\x00\x2a\x02\x0e",
            "Schema Registry record does: magic byte 0, schema id 42",
        ),
        ("base_a.base_a.employees", '{"op": "c"}'.encode("utf-16"), "it is UTF-16 text"),
        ("base_a.base_a.employees", b'{"op": "t"}', "op 't'"),
        ("base_a.base_a.employees", b'{"op": "c"}', "needs an object in `after`"),
        ("base_a.base_a.employees", b'{"op": "d", "after": {"id": 1}}', "needs an object in `before`"),
        ("base_a.base_a.employees", b'{"op": "c", "after": {"id": "1"}}', "must be an integer"),
        ("base_a.base_a.employees", b'{"op": "c", "after": {"id": 1, "created_at": "2020-01-01"}}', "updated_at"),
        ("base_a.base_a.employees", b'{"op": "d", "before": {"id": 1}}', "needs `before.updated_at` or `source.ts_ms`"),
        ("base_a.base_a.employees", b'{"op": "c", "after": {"id": 1, "salary": "%%"}}', "`salary`"),
        ("base_a.base_a.employees", b'{"op": "c", "after": {"id": 1, "hired_at": "yesterday"}}', "`hired_at`"),
        ("base_a.base_a.employees", b'{"op": "c", "after": {"id": 1, "updated_at": true}}', "`updated_at`"),
        ("base_a.base_a.unknown", b'{"op": "c"}', "not a change topic base_a.base_a.<table>"),
        ("base_a.employees", b'{"op": "c"}', "not a change topic"),
        ("other.base_a.employees", b'{"op": "c"}', "not a change topic"),
    ],
)
def test_malformed_events_say_why(topic, value, reason):
    with pytest.raises(BadEvent, match=re.escape(reason)):
        decode(topic, value)


@pytest.mark.parametrize(
    ("column", "value", "read"),
    [
        (SourceColumn("d", "datetime"), datetime(2026, 3, 29, 2, 30, 0, 123000), None),  # ms, wall time
        (SourceColumn("d", "datetime", fsp=6), datetime(1999, 12, 31, 23, 59, 59, 999999), None),  # µs
        (
            SourceColumn("t", "timestamp"),
            datetime(2026, 1, 2, 3, 4, 5, 6),
            datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        ),
        (SourceColumn("t", "time"), timedelta(hours=25, microseconds=7), None),
        (SourceColumn("n", "decimal", scale=3, precision=9), Decimal("-12.345"), None),
        (SourceColumn("e", "enum", allowed=("a", "b")), "b", None),
        (SourceColumn("s", "set", allowed=("x", "y", "z")), {"z", "x"}, "x,z"),
        (SourceColumn("b", "bytes"), b"\x00\xff", None),
        (SourceColumn("u", "int64"), 2**32 + 5, None),
    ],
)
def test_source_columns_round_trip_in_debeziums_encodings(column, value, read):
    writer = EnvelopeWriter("legacy", [SourceColumn("k", "int64", optional=False), column])
    schema = orjson.loads(writer.envelope("c", None, {"k": 1, column.name: value}, SOURCE, 1))["schema"]
    image = orjson.loads(writer.envelope("c", None, {"k": 1, column.name: value}, SOURCE, 1))["payload"]["after"]
    types = {c["field"]: c for c in schema["fields"][1]["fields"]}
    row, invalid = read_row(image, types, {})
    assert invalid == [] and row[column.name] == (value if read is None else read)


def test_unreadable_dates_are_written_as_their_zero_text_and_read_back_as_invalid():
    columns = [SourceColumn("k", "int64", optional=False), SourceColumn("d", "date"), SourceColumn("w", "datetime")]
    writer = EnvelopeWriter("legacy", columns, with_schema=False)
    image = orjson.loads(writer.envelope("c", None, {"k": 1}, SOURCE, 1, invalid=((), ("d", "w"))))["after"]
    assert image == {"k": 1, "d": "0000-00-00", "w": "0000-00-00 00:00:00"}
    row, invalid = read_row(image, {}, {"d": ("date",), "w": ("datetime",)})
    assert invalid == ["d", "w"] and row == image


@pytest.mark.parametrize("with_schema", [True, False])
def test_an_incomplete_change_from_the_relay_is_refused_with_its_reason_and_holds_only_what_it_got(with_schema):
    writer = EnvelopeWriter.identity("employees", database="base_a", with_schema=with_schema)
    why = "the binlog's row image of base_a.employees is partial: set binlog_row_image=FULL"
    value = writer.envelope("u", {"id": 7}, {"first_name": "Ada"}, SOURCE, 1, incomplete=why)
    payload = orjson.loads(value)["payload"] if with_schema else orjson.loads(value)
    assert (payload["before"], payload["after"], payload["incomplete"]) == ({"id": 7}, {"first_name": "Ada"}, why)
    with pytest.raises(BadEvent, match=r"^incomplete change from the relay: .*binlog_row_image=FULL$"):
        decode("base_a.base_a.employees", value, message_key=b"7")


def test_a_date_the_binlog_gave_as_its_text_is_written_as_that_text():
    columns = [SourceColumn("k", "int64", optional=False), SourceColumn("d", "date"), SourceColumn("w", "datetime")]
    writer = EnvelopeWriter("legacy", columns, with_schema=False)
    after = {"k": 1, "d": "2024-00-10", "w": "2024-02-30 12:00:00"}
    image = orjson.loads(writer.envelope("c", None, after, SOURCE, 1, invalid=((), ("d", "w"))))["after"]
    assert image == after
    row, invalid = read_row(image, {}, {"d": ("date",), "w": ("datetime",)})
    assert invalid == ["d", "w"] and row == image
