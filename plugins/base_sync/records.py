"""Transform: Base A rows into the bulk records the API takes, serialised once per chunk."""

from __future__ import annotations

import orjson

from api_service.entities import ENTITIES
from base_sync.source import Cursor, utc


def to_record(entity: str, row: dict) -> dict:
    """One bulk record: Base A's key and version, its timestamps and the entity's data fields."""
    record = {
        "source_id": row["id"],
        "source_updated_at": utc(row["updated_at"]),
        "created_at": utc(row["created_at"]),
        "updated_at": utc(row["updated_at"]),
    }
    for name in ENTITIES[entity].field_names:
        record[name] = row[name]
    return record


def encode(records: list[dict]) -> bytes:
    """A JSON array body; decimals go as exact strings, dates and times as ISO 8601."""
    return orjson.dumps(records, default=_exact)


def _exact(value):
    return str(value)  # Decimal: never through a float


def cursor_of(row: dict) -> Cursor:
    return Cursor(utc(row["updated_at"]), row["id"])
