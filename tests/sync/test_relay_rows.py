"""How the relay reads a binlog row, without servers: whole rows, partial images, unnamed columns."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from base_sync.debezium import BadEvent, EnvelopeWriter, SourceColumn, decode, read_row
from base_sync.relay.rows import InvalidDate, binlog_column, binlog_type, integer_column, row_changes

NAMES = ("id", "first_name", "hired_at")
ALL = b"\x07"  # every one of the three columns present


def event(kind, bitmap: bytes = ALL, bitmap2: bytes = ALL, names=NAMES):
    made = object.__new__(kind)  # a row event as mysql-replication leaves it once read
    made.__dict__.update(
        schema="base_a",
        table="employees",
        columns=[SimpleNamespace(name=name) for name in names],
        columns_present_bitmap=bitmap,
        columns_present_bitmap2=bitmap2,
    )
    return made


def test_whole_rows_and_a_key_change():
    row = {"values": {"id": 1, "first_name": "A", "hired_at": InvalidDate("2024-00-10")}, "none_sources": {}}
    (create,) = row_changes(event(WriteRowsEvent), row, "id")
    assert (create.op, create.key, create.problem, create.invalid) == ("c", 1, None, ((), ("hired_at",)))
    before, after = {"id": 1, "first_name": "A", "hired_at": None}, {"id": 2, "first_name": "A", "hired_at": None}
    changes = row_changes(event(UpdateRowsEvent), {"before_values": before, "after_values": after}, "id")
    assert [(c.op, c.key) for c in changes] == [("d", 1), ("c", 2)]


def test_a_partial_update_is_incomplete_keyed_by_the_before_image_never_a_key_change():
    before = {"id": 150, "first_name": None, "hired_at": None}  # MINIMAL: the key alone
    after = {"id": None, "first_name": "B", "hired_at": InvalidDate("2024-00-10")}  # the changed columns alone
    row = {"before_values": before, "after_values": after}
    (change,) = row_changes(event(UpdateRowsEvent, b"\x01", b"\x06"), row, "id")
    assert (change.op, change.key, change.cause) == ("u", 150, "binlog_row_image")
    assert change.before == {"id": 150} and change.after == {"first_name": "B", "hired_at": "2024-00-10"}
    assert "`after` lacks id" in change.problem and "binlog_row_image=FULL" in change.problem
    columns = [
        SourceColumn("id", "int64", False),
        SourceColumn("first_name", "string"),
        SourceColumn("hired_at", "date"),
    ]
    writer = EnvelopeWriter("employees", columns, database="base_a")
    value = writer.envelope(change.op, change.before, change.after, {"ts_ms": 1}, 1, change.invalid, change.problem)
    assert orjson.loads(value)["payload"]["after"] == {"first_name": "B", "hired_at": "2024-00-10"}
    with pytest.raises(BadEvent, match="binlog_row_image=FULL"):
        decode("base_a.base_a.employees", value)


def test_a_partial_delete_is_a_delete_when_it_names_the_key_else_incomplete():
    row = {"values": {"id": 7, "first_name": None, "hired_at": None}, "none_sources": {}}
    (delete,) = row_changes(event(DeleteRowsEvent, b"\x01"), row, "id")
    assert (delete.op, delete.key, delete.before, delete.problem) == ("d", 7, {"id": 7}, None)
    (keyless,) = row_changes(event(DeleteRowsEvent, b"\x02"), row, "id")
    assert keyless.problem is not None and keyless.key is None and keyless.cause == "binlog_row_image"


def test_columns_without_names_are_incomplete_and_unkeyed():
    values = {"UNKNOWN_COL0": 3, "UNKNOWN_COL1": "C", "UNKNOWN_COL2": InvalidDate("0000-00-00")}
    (change,) = row_changes(event(WriteRowsEvent, names=(None, None, None)), {"values": values}, "id")
    assert (change.op, change.key, change.cause) == ("c", None, "binlog_row_metadata")
    assert change.after == values and change.invalid == ((), ("UNKNOWN_COL2",))
    assert "binlog_row_metadata=FULL" in change.problem


def test_a_bit_column_is_typed_as_debezium_types_it_and_read_back_as_its_number():
    """mysql-replication gives a BIT as the text of its bits ('01000001'): sent as a string, the
    events path made text '01000001' of what the batch path reads as 65."""
    one = binlog_column(SimpleNamespace(type=FIELD_TYPE.BIT, bits=1, is_primary=False, name="b"))
    wide = binlog_column(SimpleNamespace(type=FIELD_TYPE.BIT, bits=16, is_primary=False, name="b16"))
    assert (one.type, one.length, wide.type, wide.length) == ("bits", 1, "bits", 16)
    assert one.schema()["type"] == "boolean"
    assert wide.schema()["name"] == "io.debezium.data.Bits" and wide.schema()["parameters"] == {"length": "16"}
    assert [one.encode("1"), one.encode("0")] == [True, False]
    assert wide.encode("0000000100000010") == "AgE="  # 258, little-endian as Debezium writes it
    image = {"b": one.encode("1"), "b16": wide.encode("0000000100000010")}
    row, _ = read_row(image, {"b": one.schema(), "b16": wide.schema()}, {})
    assert row == {"b": True, "b16": 258}  # a boolean is read as 1 where a field reads it (`SourceView.as_text`)


@pytest.mark.parametrize(
    ("column", "integer", "named"),
    [
        (dict(type=FIELD_TYPE.TINY), True, "INTEGER"),
        (dict(type=FIELD_TYPE.SHORT), True, "INTEGER"),
        (dict(type=FIELD_TYPE.INT24), True, "INTEGER"),
        (dict(type=FIELD_TYPE.LONG, unsigned=True), True, "INTEGER"),
        (dict(type=FIELD_TYPE.LONGLONG, unsigned=True), True, "INTEGER"),
        (dict(type=FIELD_TYPE.VARCHAR, collation_name="utf8mb4_general_ci"), False, "VARCHAR"),
        (dict(type=FIELD_TYPE.VARCHAR, collation_name="binary"), False, "VARBINARY"),
        (dict(type=FIELD_TYPE.STRING, collation_name="latin1_swedish_ci"), False, "CHAR"),
        (dict(type=FIELD_TYPE.STRING, collation_name="binary"), False, "BINARY"),
        (dict(type=FIELD_TYPE.STRING, collation_name="binary", mariadb_type="UUID"), False, "UUID"),
        (dict(type=FIELD_TYPE.BLOB, collation_name="utf8mb4_bin"), False, "TEXT"),
        (dict(type=FIELD_TYPE.NEWDECIMAL, precision=12, decimals=0), False, "DECIMAL(12,0)"),
        (dict(type=FIELD_TYPE.BIT, bits=8), False, "BIT(8)"),
        (dict(type=FIELD_TYPE.YEAR), False, "YEAR"),
        (dict(type=FIELD_TYPE.DOUBLE), False, "DOUBLE"),
    ],
)
def test_a_key_column_is_an_integer_by_its_table_maps_type_alone(column, integer, named):
    """The relay publishes a mapped table's row event only when the key's type in the event's own
    table map is an integer (`Relay._key_refused`), and names another type in the batch path's words."""
    column = SimpleNamespace(**{"unsigned": False, "collation_name": None, **column})
    assert (integer_column(column), binlog_type(column)) == (integer, named)
