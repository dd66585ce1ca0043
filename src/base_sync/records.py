"""Bulk records: the platform's own Base A row as a record, and a chunk serialised once.

Mapped sources go through `base_sync.mapping` (`SourceView.apply`, and `mapping.render` on MySQL);
`to_record` is the identity mapping's record of a row of the Base A `base-a init` creates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import orjson

from baseab_contract.bulk_format import SOURCE_ID, VERSION
from baseab_contract.entities import ENTITIES


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


def encode(records: list[dict]) -> bytes:
    """A JSON array body; decimals go as exact strings, dates and times as ISO 8601."""
    return orjson.dumps(records, default=_exact)


def bodies(items: list, max_bytes: int, record_of: Callable | None = None) -> Iterator[tuple[list, bytes]]:
    """The items as bulk bodies of at most `max_bytes` each, in order: a list whose body is larger is
    cut into as many parts as its size asks for, each encoded again (one encoding in the usual case).
    An item too large alone comes alone, its body over the limit: the caller sets it aside, since
    the API would refuse the request (413) every time.

    Memory holds the list's body or one part's, never both: the whole body is dropped before its
    parts are encoded (it was kept alive during the recursion: three bodies of a chunk at once)."""
    body = encode(items if record_of is None else [record_of(item) for item in items])
    if len(body) <= max_bytes or len(items) == 1:
        yield items, body
        return
    parts = min(len(items), -(-len(body) // max_bytes))
    del body
    for part in _cut(items, parts):
        yield from bodies(part, max_bytes, record_of)


def _cut(items: list, parts: int) -> Iterator[list]:
    """`items` in `parts` consecutive lists of nearly equal length."""
    for index in range(parts):
        yield items[index * len(items) // parts : (index + 1) * len(items) // parts]


def _exact(value):
    return str(value)  # Decimal: never through a float
