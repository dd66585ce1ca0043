"""Rows sharing the mapping's key: never synced as one, on either path.

Base B holds one row per source key. A table whose PRIMARY KEY is composite ((id, tenant), or a
partitioned MySQL table's (id, created_date)) may be mapped with `key: id`: `base-a check` only warns
(`mapping.check.NOT_UNIQUE_KEY`), as id is often unique in practice. Where it is not, the rows
sharing an id would overwrite each other in Base B, one tenant's row in place of another's. Instead:

- the batch path (`source.BaseA`) asks Base A, only for an entity whose key no PRIMARY KEY or
  UNIQUE index on that column alone makes unique (the task's schema check knows it:
  `EntityCheck.key_unique`), which keys more than one row holds: once per chunk it read when an
  index starts with the key (`shared_among`: an aggregate over the chunk's keys, which the index
  serves), else once per task over the whole table (`shared_in_table`: a view's computed key, a
  column no index starts with, where a per-chunk question would read the table for every chunk);
  each row of such a key is quarantined with the reason (`quarantined`), counted `shared_key`; on
  either path a task meeting more than SHARED_KEYS_HELD shared keys fails (`KeyNamesNoRow`);
- the events path (`events.prepare`) cannot read Base A; a Debezium message key carries the
  table's whole primary key, so two changes of one run with the same mapped key but different
  whole keys (`SeenKeys`) are two rows sharing it: dead-lettered, neither applied.

Every row of the table counts, in the mapping's filter and scope or not: a row outside the filter,
or soft-deleted, that shares the key is no bystander, as its changes reach Base B as deletes of
that key (`BaseA.left_scope_after`, the delete log), which would delete the other row's copy: both
send no delete of a key Base A still holds live (`BaseA._still_live`, `put_back.split`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from datetime import datetime

import orjson
from sqlalchemy import Connection, func, select

from base_sync.dirty import Quarantined
from base_sync.errors import TerminalError
from base_sync.mapping import SourceView
from baseab_contract.bulk_format import SHARED_KEY, SOURCE_ID, VERSION

FIX = "map a column that names one row as `key`, or a view giving each row a single key (docs/mapping.md, `key`)"


def shared_among(conn: Connection, view: SourceView, keys: set[int]) -> dict[int, int]:
    """{key: rows} of those of `keys` that more than one row of the view's table holds."""
    if not keys:
        return {}
    statement = (
        select(view.key, func.count())
        .select_from(view.table)
        .where(view.key.in_(sorted(keys)))
        .group_by(view.key)
        .having(func.count() > 1)
    )
    return {int(key): int(rows) for key, rows in conn.execute(statement)}


# Shared keys a task may meet (one aggregate over a whole table, or the chunks' together): past it
# the key names no row, and quarantining the table row by row would only fill Base B with rejections.
SHARED_KEYS_HELD = 100_000


class KeyNamesNoRow(TerminalError):
    """So many keys of the table name several rows that the mapping's key is no key at all."""


def too_many(view: SourceView) -> KeyNamesNoRow:
    """The failure of a task that met more than SHARED_KEYS_HELD shared keys of the view's table."""
    return KeyNamesNoRow(
        f"{view.entity.name}: more than {SHARED_KEYS_HELD:,} values of {view.spec.key} name several rows of "
        f"{view.spec.table} each: it is no key of that table, and the task stopped before syncing more; {FIX}"
    )


class SharedSeen:
    """The distinct shared keys a task met chunk by chunk (`shared_among`), for the same limit as a
    whole table's aggregate: a table keyed (id, tenant) whose tenants each number from 1 would
    otherwise quarantine nearly every row, each a rejection holding the full record, on every run."""

    def __init__(self):
        self._keys: dict[str, set[int]] = {}

    def add(self, view: SourceView, shared: dict[int, int]) -> None:
        """Count the chunk's shared keys; `KeyNamesNoRow` once the task met more than SHARED_KEYS_HELD."""
        seen = self._keys.setdefault(view.entity.name, set())
        seen.update(shared)
        if len(seen) > SHARED_KEYS_HELD:
            raise too_many(view)


def shared_in_table(conn: Connection, view: SourceView) -> dict[int, int]:
    """{key: rows} of every key more than one row of the view's table holds: one pass over the table,
    for a key no index starts with (a view's computed key), where asking per chunk would read the
    whole table for each chunk. `KeyNamesNoRow` past SHARED_KEYS_HELD keys."""
    statement = select(view.key, func.count()).select_from(view.table).group_by(view.key).having(func.count() > 1)
    shared = {}
    for key, rows in conn.execute(statement.limit(SHARED_KEYS_HELD + 1)):
        shared[int(key)] = int(rows)
    if len(shared) > SHARED_KEYS_HELD:
        raise too_many(view)
    return shared


def reason(view: SourceView, key: int, rows: int) -> dict:
    """Why a row whose key `rows` rows of Base A hold is not synced."""
    column, table = view.spec.key, view.spec.table
    return {
        "field": column,
        "message": (
            f"{column} = {key} names {rows} rows of {table} ({view.entity.name}'s mapped key is not unique): not "
            f"synced, as each would overwrite the other in Base B; {FIX}"
        ),
        "code": SHARED_KEY,
    }


def quarantined(chunk: list, view: SourceView, shared: dict[int, int]) -> list:
    """The chunk with each row of a shared key a `Quarantined` carrying the reason (in place)."""
    out = []
    for row in chunk:
        key = row.source_id if isinstance(row, Quarantined) else row[SOURCE_ID]
        if key not in shared:
            out.append(row)
        elif isinstance(row, Quarantined):
            out.append(replace(row, reasons=[*row.reasons, reason(view, key, shared[key])]))
        else:
            out.append(Quarantined(key, _iso(row.get(VERSION)), row, [reason(view, key, shared[key])]))
    return out


def keys_of(chunk: list) -> set[int]:
    """The integer keys of a chunk's rows (a NULL key names no row to compare)."""
    found = set()
    for row in chunk:
        key = row.source_id if isinstance(row, Quarantined) else row[SOURCE_ID]
        if type(key) is int:
            found.add(key)
    return found


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


# The events path


SEEN_KEPT = 100_000  # mapped keys a run remembers the whole key of (the oldest forgotten past it)


class SeenKeys:
    """The whole key (the message key's fields besides the mapped key) of each mapped key's live row
    in one drain run, to tell two rows sharing a mapped key from one row changed twice.

    A change whose whole key differs from the live one's of its mapped key is a second row: both
    are dead-lettered, and the mapped key stays shared for the rest of the run. A delete ends a
    whole key's row: a row whose primary key changed (Debezium: a delete of the old key, a create
    of the new) is one row moving. Bounded: past SEEN_KEPT keys the oldest are forgotten."""

    def __init__(self, kept: int = SEEN_KEPT):
        self.kept = kept
        self._live: OrderedDict[tuple[str, int], str] = OrderedDict()
        self.shared: dict[tuple[str, int], tuple[str, str]] = {}  # {(entity, key): (two whole keys)}

    def see(self, entity: str, key: int, whole: str | None, deleted: bool) -> tuple[str, str] | None:
        """The two whole keys when this change shows its mapped key shared, else None."""
        at = (entity, key)
        if at in self.shared:
            return self.shared[at]
        if whole is None:
            return None
        live = self._live.get(at)
        if live is not None and live != whole:
            if deleted:  # another row gone: no second live row shown (a key moved across partitions)
                return None
            self.shared[at] = (live, whole)
            del self._live[at]
            return self.shared[at]
        if deleted:
            self._live.pop(at, None)
            return None
        self._live[at] = whole
        self._live.move_to_end(at)
        if len(self._live) > self.kept:
            self._live.popitem(last=False)
        return None


def whole_key(message_key: bytes | None, column: str) -> str | None:
    """The fields of a Debezium message key (`{"id": 7, "tenant": 2}`, or within schema/payload)
    besides the mapped key `column`, as canonical JSON; None when it holds no other field (the
    relay's key, `7`, or `{"id": 7}`) or is unreadable (`debezium` checks the key itself)."""
    if not message_key or not message_key.startswith(b"{"):  # the relay's key: the mapped key alone
        return None
    try:
        document = orjson.loads(message_key)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict) and isinstance(document.get("payload"), dict):
        document = document["payload"]
    if not isinstance(document, dict):
        return None
    others = {name: value for name, value in document.items() if name != column}
    if not others or column not in document:
        return None
    return orjson.dumps(others, option=orjson.OPT_SORT_KEYS).decode()


def dead_reason(entity: str, table: str, column: str, key: int, wholes: tuple[str, str]) -> str:
    """A dead letter's reason for a change of a mapped key two rows share."""
    return (
        f"{entity}: two rows of {table} share the mapped key {column} = {key} (their message keys differ "
        f"beyond it: {wholes[0]} and {wholes[1]}): not applied, as each would overwrite the other in Base B; "
        f"neither is any later change of that key in this run. {FIX}; then replay these letters"
    )
