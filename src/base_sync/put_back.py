"""Logged deletes whose keys Base A holds again: a row deleted and put back between two runs (an
undo from a copy or a backup, a key changed and changed back).

The delete log names the delete, not what came after it. Sent as logged, such a delete wins (at an
equal version the tombstone wins the API's guard) and the row is lost in Base B, and no later window
reads it again when its stamp is old. So before a chunk of logged deletes is sent, one keyed read of
Base A finds the keys it holds again: their deletes are dropped and their current rows sent instead,
read after the delete, so they may restore at a tie (`restore_ties`). A row put back with a stamp
older than the deleted one names the logged version as the one it replaces (`replaces_version`, a
compare-and-set): Base B holds the deleted row, or its tombstone, at exactly that version.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from base_sync.api_client import BaseBApi
from base_sync.dirty import Quarantined
from base_sync.load import push_chunks
from base_sync.source import BaseA, Cursor
from baseab_contract.bulk_format import REPLACES_VERSION, SOURCE_ID, VERSION


@dataclass
class LoggedChunk:
    """A chunk of logged deletes, split by what Base A holds now."""

    deletes: list[dict]  # the keys Base A no longer holds: their delete records
    rows: list[dict | Quarantined] = field(default_factory=list)  # the keys put back: their current rows


def split(base_a: BaseA, entity: str, records: list[dict]) -> LoggedChunk:
    """One keyed read of Base A: the chunk's keys it holds live again, as rows to send instead."""
    keys = sorted({r[SOURCE_ID] for r in records})
    rows = [row for chunk in base_a.records_by_keys(entity, keys, len(keys) or 1) for row in chunk]
    back = {_key(row) for row in rows}
    deletes = [r for r in records if r[SOURCE_ID] not in back]
    if not rows:
        return LoggedChunk(deletes)
    # A key logged twice in the chunk: the latest entry is the state Base B most likely holds.
    logged = {r[SOURCE_ID]: r[VERSION] for r in records}
    return LoggedChunk(deletes, [_replacing(row, logged[_key(row)]) for row in rows])


def restore(api: BaseBApi, entity: str, rows: list[dict | Quarantined], concurrency: int) -> Counter:
    """Send the put-back rows: read after their deletes, so a tie with a tombstone restores."""
    if not rows:
        return Counter()
    return push_chunks(api, entity, [rows], concurrency, restore_ties=True)


def _key(row: dict | Quarantined) -> int:
    return row.source_id if isinstance(row, Quarantined) else row[SOURCE_ID]


def _replacing(row: dict | Quarantined, deleted_version: str) -> dict | Quarantined:
    """The row, naming the deleted version it replaces when its own stamp is older (a restore from a
    backup taken before the row's last change): it would lose to that version otherwise."""
    if isinstance(row, Quarantined) or _version(row[VERSION]) >= _version(deleted_version):
        return row
    return {**row, REPLACES_VERSION: deleted_version}


def _version(value: str | datetime) -> datetime:
    return Cursor.of_record({SOURCE_ID: 0, VERSION: value}).updated_at
