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
  whole keys (`SeenKeys`) are two rows sharing it: dead-lettered, neither applied; a primary key
  change (a delete and a create, read in any order) is one row moving, by Debezium's headers.

Every row of the table counts, in the mapping's filter and scope or not: a row outside the filter,
or soft-deleted, that shares the key is no bystander, as its changes reach Base B as deletes of
that key (`BaseA.left_scope_after`, the delete log). Such a delete of a key another row of Base A
still holds live is sent only when Base B's copy is not that live row's (`copies_of_live_rows`):
Base B holds the key live at a version none of Base A's live rows of the key has now. So the copy of
the row that left is deleted (it was written last: the live row, quarantined, never overwrites it),
and counted by the circuit breaker (`put_back.shared_deletes` in the plan), and a live row's copy
stays (`BaseA._still_live`, `put_back.split`). Judged by version: a copy of
the leaving row stamped in the same instant as a live row is kept, and a live row's copy older than
that row's current version (changed since, quarantined) is deleted: it shows no state Base A holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import Connection, func, select

from base_sync.dirty import Quarantined, key_of
from base_sync.errors import TerminalError
from base_sync.mapping import SourceView
from baseab_contract.bulk_format import SHARED_KEY, VERSION

if TYPE_CHECKING:
    from base_sync.api_client import BaseBApi

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
        key = key_of(row)
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
        key = key_of(row)
        if type(key) is int:
            found.add(key)
    return found


# {key: version} of the live rows Base B holds of the given keys (`held_in_base_b`)
BaseBVersions = Callable[[list[int]], dict[int, datetime]]


# Keys one versions read of Base B spans: near keys share a read, far ones get their own.
VERSIONS_SPAN = 1_000


def held_in_base_b(api: BaseBApi, entity: str) -> BaseBVersions:
    """Base B's live versions of given keys (the keys a row leaving the scope shares with a live row:
    quarantined keys), one versions read per run of keys within VERSIONS_SPAN of its first."""

    def versions(keys: list[int]) -> dict[int, datetime]:
        wanted, held = set(keys), {}
        for low, high in _spans(sorted(wanted)):
            held.update((key, version) for key, version in api.versions_between(entity, low, high) if key in wanted)
        return held

    return versions


def _spans(keys: list[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of the sorted keys no wider than VERSIONS_SPAN."""
    spans: list[tuple[int, int]] = []
    for key in keys:
        if spans and key - spans[-1][0] < VERSIONS_SPAN:
            spans[-1] = (spans[-1][0], key)
        else:
            spans.append((key, key))
    return spans


def copies_of_live_rows(live: dict[int, set[datetime]], held: dict[int, datetime]) -> set[int]:
    """Those of the keys Base A holds live (`live`: {key: its live rows' versions now}) whose copy in
    Base B is a live row's, or of which Base B holds no live row: no delete to send. The others' deletes
    are sent: Base B's live copy is the leaving row's, or a state no live row holds any more."""
    return {key for key, versions in live.items() if key not in held or held[key] in versions}


def live_versions(rows: Iterable, version_of: Callable[[object], datetime | None]) -> dict[int, set[datetime]]:
    """{key: the versions of its rows} of a chunk's rows quarantined as sharing their key."""
    found: dict[int, set[datetime]] = {}
    for row in rows:
        if isinstance(row, Quarantined) and any(r.get("code") == SHARED_KEY for r in row.reasons):
            version = version_of(row)
            found.setdefault(key_of(row), set()).update({version} if version is not None else ())
    return found


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


# The events path


SEEN_KEPT = 100_000  # mapped keys a run remembers the whole keys of (the oldest forgotten past it)

# Debezium's headers on a primary key change, written as a delete of the old key and a create of the
# new one: the delete carries the new key, the create the old one (its MySQL connector's docs).
OLD_KEY_HEADER, NEW_KEY_HEADER = "__debezium.oldkey", "__debezium.newkey"


@dataclass
class _Seen:
    """One mapped key's run: its live row's whole key, those a row moved away from, whether it moved."""

    live: str | None = None
    retired: set[str] = field(default_factory=set)
    moved: bool = False


class SeenKeys:
    """The whole keys (the message key's fields besides the mapped key) of each mapped key in one
    drain run, to tell two rows sharing a mapped key from one row changed twice, or moving.

    A primary key change is a delete of the old whole key and a create of the new; the change topics
    are partitioned by the whole key, so the two (and the row's changes before and after) are read in
    any order. Debezium's headers (`__debezium.oldkey` on the create, `__debezium.newkey` on the
    delete) name the other key: either one is one row moving, never flagged; the old whole key is
    retired, and a later-read change of it (its delete, an update from before the move) is no second
    row. After a move, an update or read of a whole key other than the live one is not flagged either
    (an earlier key of the moving row, read late: a false negative when it is a second row).

    Flagged (both dead-lettered, the mapped key shared for the rest of the run): a change other than
    a delete of a whole key that differs from the live one and is not retired, when the mapped key has
    not moved in the run or the change is a create without the old key's header (an insert). A
    producer that omits the headers: its create of a moved row read before the old key's delete is
    flagged (a false alarm). Bounded: past SEEN_KEPT keys the oldest are forgotten."""

    def __init__(self, kept: int = SEEN_KEPT):
        self.kept = kept
        self._keys: OrderedDict[tuple[str, int], _Seen] = OrderedDict()
        self.shared: dict[tuple[str, int], tuple[str, str]] = {}  # {(entity, key): (two whole keys)}

    def see(
        self,
        entity: str,
        key: int,
        whole: str | None,
        deleted: bool,
        created: bool = False,
        moved_from: str | None = None,
        moved_to: str | None = None,
    ) -> tuple[str, str] | None:
        """The two whole keys when this change shows its mapped key shared, else None. `created`: an
        insert (op c); `moved_from` / `moved_to`: the other whole key a create / delete's header names."""
        at = (entity, key)
        if at in self.shared:
            return self.shared[at]
        if whole is None:
            return None
        seen = self._remember(at)
        if not deleted and moved_from not in (None, whole):
            self._move(seen, moved_from, whole)
            return None
        if deleted and moved_to not in (None, whole):
            self._move(seen, whole, moved_to)
            return None
        if whole in seen.retired:  # a change of a key the row moved away from, read late
            return None
        if deleted:  # another row's delete shows no second live row (a key moved across partitions)
            if seen.live == whole:
                seen.live = None
            return None
        if seen.live is None or seen.live == whole:
            seen.live = whole
            return None
        if seen.moved and not created:  # maybe an earlier key of the moving row, read late
            return None
        self.shared[at] = (seen.live, whole)
        del self._keys[at]
        return self.shared[at]

    @staticmethod
    def _move(seen: _Seen, old: str, new: str) -> None:
        seen.moved = True
        seen.retired.add(old)
        if new not in seen.retired:  # the row's newest key (a chain's later move may be read first)
            seen.live = new

    def _remember(self, at: tuple[str, int]) -> _Seen:
        seen = self._keys.get(at)
        if seen is None:
            seen = self._keys[at] = _Seen()
            if len(self._keys) > self.kept:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(at)
        return seen


def whole_key(message_key: bytes | None, column: str) -> str | None:
    """The fields of a Debezium message key (`{"id": 7, "tenant": 2}`, or within schema/payload)
    besides the mapped key `column`, as canonical JSON; None when it holds no other field (the
    relay's key, `7`, or `{"id": 7}`) or is unreadable (`debezium` checks the key itself)."""
    fields = _key_fields(message_key, column)
    return fields[1] if fields else None


def moved_key(headers: list | None, name: str, column: str, key: int) -> str | None:
    """The whole key Debezium's primary key change header `name` names, when its mapped key is `key`
    (a change of the mapped key itself is a delete of one key and a create of another, no move)."""
    for header, value in headers or ():
        if header == name and isinstance(value, bytes):
            fields = _key_fields(value, column)
            if fields and type(fields[0]) is int and fields[0] == key:
                return fields[1]
    return None


def _key_fields(message_key: bytes | None, column: str) -> tuple[object, str] | None:
    """(the mapped key's value, the other fields as canonical JSON) of a whole key, else None."""
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
    return document[column], orjson.dumps(others, option=orjson.OPT_SORT_KEYS).decode()


def dead_reason(entity: str, table: str, column: str, key: int, wholes: tuple[str, str]) -> str:
    """A dead letter's reason for a change of a mapped key two rows share."""
    return (
        f"{entity}: two rows of {table} share the mapped key {column} = {key} (their message keys differ "
        f"beyond it: {wholes[0]} and {wholes[1]}): not applied, as each would overwrite the other in Base B; "
        f"neither is any later change of that key in this run. {FIX}; then replay these letters"
    )
