"""Transform: Base A rows into the bulk records the API takes, serialised once per chunk.

Two ways to the same record: `to_record` converts a row Python read, and `record_columns` has
MySQL render each value as its JSON text while it reads (the batch extract's way: it spares a
Python conversion per timestamp, date and decimal). A test in `test_sync_steps.py` holds them
side by side.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import Date, Numeric, String, Table, cast, func, literal, literal_column, null

from base_sync.dirty import INVALID
from baseab_contract.bulk_format import SOURCE_ID, VERSION
from baseab_contract.entities import ENTITIES, Kind


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_record(entity: str, row: dict) -> dict:
    """One bulk record (baseab_contract.bulk_format): Base A's key and version, timestamps, data fields."""
    record = {
        SOURCE_ID: row["id"],
        VERSION: utc(row["updated_at"]),
        "created_at": utc(row["created_at"]),
        "updated_at": utc(row["updated_at"]),
    }
    for name in ENTITIES[entity].field_names:
        record[name] = row[name]
    return record


def record_columns(table: Table, entity: str) -> list:
    """The bulk record's fields as MySQL expressions: timestamps as ISO 8601 UTC text (the session
    time zone is UTC), dates and decimals as their exact text, everything else as it is."""

    def stamp(column):
        return func.date_format(column, "%Y-%m-%dT%H:%i:%s.%fZ")

    def as_text(column):
        return cast(column, String) if isinstance(column.type, Numeric | Date) else column

    return [
        table.c.id.label(SOURCE_ID),
        stamp(table.c.updated_at).label(VERSION),
        stamp(table.c.created_at).label("created_at"),
        stamp(table.c.updated_at).label("updated_at"),
        *(as_text(table.c[name]).label(name) for name in ENTITIES[entity].field_names),
        invalid_columns(table, entity).label(INVALID),
    ]


ZERO_DAYS = literal_column("0")


def invalid_columns(table: Table, entity: str):
    """MySQL: the names of the row's date and timestamp columns holding no real date (the zero date,
    a zero part, an impossible day), comma-separated, '' when none (see base_sync.dirty).

    Date arithmetic is NULL exactly on such values, whatever the session's sql_mode."""
    names = [*(f.name for f in ENTITIES[entity].fields if f.kind == Kind.DATE), "created_at", "updated_at"]
    flags = [
        func.IF(table.c[name].isnot(None) & func.adddate(table.c[name], ZERO_DAYS).is_(None), literal(name), null())
        for name in names
    ]
    return func.concat_ws(",", *flags)


def encode(records: list[dict]) -> bytes:
    """A JSON array body; decimals go as exact strings, dates and times as ISO 8601."""
    return orjson.dumps(records, default=_exact)


def _exact(value):
    return str(value)  # Decimal: never through a float
