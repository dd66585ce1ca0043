"""Logged deletes whose keys Base A holds again: a row deleted and put back between two runs (an
undo from a copy or a backup, a key changed and changed back).

The delete log names the delete, not what came after it. Sent as logged, such a delete wins (at an
equal version the tombstone wins the API's guard) and the row is lost in Base B, and no later window
reads it again when its stamp is old. So before a chunk of logged deletes is sent, one keyed read of
Base A finds the keys it holds again: their deletes are dropped and their current rows sent instead,
read after the delete. A row put back under the deleted version's own stamp restores at a tie with
its tombstone (`restore_ties`); one under a newer stamp needs no tie-break (a tombstone at its
version is a later delete, which must win); one with a stamp older than the deleted one names the
logged version as the one it replaces (`replaces_version`, a compare-and-set): Base B holds the
deleted row, or its tombstone, at exactly that version.

Base A may delete a key again between the read and the send, and the events path apply that
delete first: a row sent after it would revive a key Base A no longer holds (at a tie, under the
same stamp). So after the send, one keyed read of Base A: a key it no longer holds gets its delete
sent again, at the version read, which wins the tie with the row sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from base_sync import shared_keys
from base_sync.api_client import BaseBApi
from base_sync.dirty import Quarantined, key_of
from base_sync.load import push_chunks
from base_sync.reports import DeleteCounts
from base_sync.source import BaseA, Cursor
from baseab_contract.bulk_format import REPLACES_VERSION, SOURCE_ID, VERSION


@dataclass
class LoggedChunk:
    """A chunk of logged deletes, split by what Base A holds now."""

    deletes: list[dict]  # the keys Base A no longer holds: their delete records
    rows: list[dict | Quarantined] = field(default_factory=list)  # the keys put back: their current rows
    # {key put back: the version of its logged delete}; not a shared key whose delete is sent (`split`)
    logged: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Restored:
    """What sending a chunk's put-back rows did."""

    sent: Counter  # the bulk outcomes of the rows sent (push_chunks)
    deleted_again: list[dict]  # delete records of the keys Base A deleted again meanwhile, sent after the rows
    deletes: DeleteCounts  # what those deletes did

    @property
    def restored(self) -> int:
        """Rows Base B holds live as sent: written or found so, less those deleted again after."""
        kept = self.sent["inserted"] + self.sent["updated"] + self.sent["unchanged"]
        return max(0, kept - self.deletes.deleted)


def split(base_a: BaseA, api: BaseBApi, entity: str, records: list[dict]) -> LoggedChunk:
    """One keyed read of Base A: the chunk's keys it holds live again, as rows to send instead.

    A key other rows of Base A hold (the deleted row shared it: `shared_keys`) reads back as those
    rows, quarantined: its delete is still sent when Base B's copy is not theirs but, most likely,
    the deleted row's (`shared_keys.copies_of_live_rows`, one read of Base B per run of near keys)."""
    keys = sorted({r[SOURCE_ID] for r in records})
    rows = [row for chunk in base_a.records_by_keys(entity, keys, len(keys) or 1) for row in chunk]
    back = {key_of(row) for row in rows}
    shared = shared_keys.live_versions(rows, _sent_version_of)
    if shared:
        kept = shared_keys.copies_of_live_rows(shared, shared_keys.held_in_base_b(api, entity)(sorted(shared)))
        back -= shared.keys() - kept
    deletes = [r for r in records if r[SOURCE_ID] not in back]
    if not rows:
        return LoggedChunk(deletes)
    # A key logged twice in the chunk: the latest entry is the state Base B most likely holds.
    logged = {r[SOURCE_ID]: r[VERSION] for r in records}
    replacing = [_replacing(row, logged[key_of(row)]) for row in rows]
    return LoggedChunk(deletes, replacing, {key: logged[key] for key in back})


def shared_deletes(base_a: BaseA, api: BaseBApi, entity: str, records: list[dict]) -> list[dict]:
    """Of logged deletes whose keys Base A holds live, those `split` still sends (a shared key whose
    copy in Base B is the deleted row's): deletes the breaker counts. None, and no read, for a key a
    unique index holds alone (no row of it is quarantined)."""
    if not records or base_a.check().entities[entity].key_unique:
        return []
    return split(base_a, api, entity, records).deletes


def restore(api: BaseBApi, base_a: BaseA, entity: str, chunk: LoggedChunk, concurrency: int) -> Restored:
    """Send the put-back rows (restoring at a tie only those under their logged delete's own stamp),
    then send again the deletes of the keys Base A no longer holds."""
    if not chunk.rows:
        return Restored(Counter(), [], DeleteCounts())
    at_logged = [row for row in chunk.rows if _at_logged_version(row, chunk.logged)]
    others = [row for row in chunk.rows if not _at_logged_version(row, chunk.logged)]
    sent = Counter()
    if at_logged:
        sent += push_chunks(api, entity, [at_logged], concurrency, restore_ties=True)
    if others:
        sent += push_chunks(api, entity, [others], concurrency)
    again = _deleted_again(base_a, entity, chunk.rows)
    if not again:
        return Restored(sent, [], DeleteCounts())
    answer = api.bulk_delete(entity, again)
    return Restored(sent, again, DeleteCounts(answer["deleted"], answer["stale"]))


def _at_logged_version(row: dict | Quarantined, logged: dict[int, str]) -> bool:
    """A row under the very stamp its logged delete carries: only a tie-break restores it. A newer
    one beats that tombstone anyway, and loses, as it must, to a later delete's at its own stamp."""
    return not isinstance(row, Quarantined) and _version(row[VERSION]) == _version(logged[row[SOURCE_ID]])


def _deleted_again(base_a: BaseA, entity: str, rows: list[dict | Quarantined]) -> list[dict]:
    """Delete records, at the version read, of the rows whose keys Base A no longer holds (deleted
    again since `split` read them): one keyed read."""
    keys = sorted({key_of(row) for row in rows})
    held = base_a.live_keys_among(entity, keys, len(keys) or 1)
    return [
        {SOURCE_ID: key_of(row), VERSION: _version(version).isoformat()}
        for row in rows
        if key_of(row) not in held and (version := _sent_version(row)) is not None
    ]


def _sent_version_of(row: dict | Quarantined) -> datetime | None:
    version = _sent_version(row)
    return None if version is None else _version(version)


def _sent_version(row: dict | Quarantined) -> str | datetime | None:
    return row.version if isinstance(row, Quarantined) else row[VERSION]


def _replacing(row: dict | Quarantined, deleted_version: str) -> dict | Quarantined:
    """The row, naming the deleted version it replaces when its own stamp is older (a restore from a
    backup taken before the row's last change): it would lose to that version otherwise."""
    if isinstance(row, Quarantined) or _version(row[VERSION]) >= _version(deleted_version):
        return row
    return {**row, REPLACES_VERSION: deleted_version}


def _version(value: str | datetime) -> datetime:
    return Cursor.of_record({SOURCE_ID: 0, VERSION: value}).updated_at
