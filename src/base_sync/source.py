"""Reading Base A: the incremental extract and the reads that verification and deletes compare.

Every read streams (a server-side cursor on MySQL/MariaDB), so memory stays bounded whatever the
table size. Timestamps are UTC: MySQL sessions are set to UTC, SQLite stores UTC text.
"""

from __future__ import annotations

import contextlib
import functools
import inspect as pyinspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from operator import itemgetter

from sqlalchemy import Connection, Engine, Table, and_, delete, func, inspect, or_, select
from sqlalchemy.exc import DBAPIError

from base_sync import shared_keys
from base_sync.backends import backend_for_url, backend_of
from base_sync.chunking import bounded_chunks, measure_of
from base_sync.delete_log_triggers import ABSENT, IN_PLACE, OUTDATED, UNSEEN, DeleteLogState
from base_sync.delete_log_triggers import state as trigger_state
from base_sync.dirty import FIRST_VERSION, Quarantined
from base_sync.key_ranges import KeyRange
from base_sync.mapping import SourceMapping, SourceView
from base_sync.mapping.check import EntityCheck, SchemaChanging, SchemaCheck, check_source
from base_sync.mapping.render import Rendered, bit_number
from base_sync.mapping.view import aliased_table
from base_sync.records import utc
from base_sync.settings import API_TIMEOUT, CHUNK_BYTES
from base_sync.source_schema import DELETE_LOG, build_tables
from baseab_contract.bulk_format import SOURCE_ID, VERSION
from baseab_contract.entities import ENTITIES
from baseab_contract.version_digest import VersionDigest, bucket_digests, version_window, window_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in Base A's change order: (updated_at, id)."""

    updated_at: datetime
    id: int

    def to_json(self) -> dict:
        return {"updated_at": self.updated_at.isoformat(), "id": self.id}

    def __str__(self) -> str:  # how task logs show a position: the version, then the key
        return f"{self.updated_at.isoformat()} key {self.id}"

    @classmethod
    def from_json(cls, data: dict | None) -> Cursor | None:
        if not data:
            return None
        return cls(utc(datetime.fromisoformat(data["updated_at"])), int(data["id"]))

    @classmethod
    def of_usable_record(cls, record: dict | Quarantined) -> Cursor | None:
        """The record's position, or None when its version is no time (a dirty row, base_sync.dirty)."""
        if isinstance(record, Quarantined):
            if record.version is None or record.source_id is None:  # a NULL key: no position either
                return None
            return cls(utc(datetime.fromisoformat(record.version)), record.source_id)
        try:
            return cls.of_record(record)
        except (TypeError, ValueError):
            return None

    @classmethod
    def highest_of(cls, records: list[dict | Quarantined]) -> Cursor | None:
        """The highest position among a chunk's records, None when none has a usable version.
        Clean records are compared by (version, key) as read (ISO text in one format, or datetimes),
        so one Cursor is made per chunk, not one per row."""
        top = max((r for r in records if type(r) is dict), key=_position, default=None)
        cursors = [cls.of_record(top)] if top is not None else []
        cursors += [c for r in records if isinstance(r, Quarantined) and (c := cls.of_usable_record(r))]
        return max(cursors, default=None)

    @classmethod
    def of_record(cls, record: dict) -> Cursor:
        """The position of a bulk record (its version is a datetime or, read as text, ISO 8601)."""
        version = record["source_updated_at"]
        if not isinstance(version, datetime):
            version = datetime.fromisoformat(version)
        return cls(utc(version), record["source_id"])


_position = itemgetter(VERSION, SOURCE_ID)


class Reach:
    """The highest position a read has reached, whatever order it reads in."""

    def __init__(self) -> None:
        self.cursor: Cursor | None = None

    def add(self, records: list[dict | Quarantined]) -> None:
        top = Cursor.highest_of(records)
        if top is not None and (self.cursor is None or top > self.cursor):
            self.cursor = top


def source_engine(url: str, api_timeout: float = API_TIMEOUT) -> Engine:
    """An engine on Base A whose sessions read and write timestamps in UTC, and whose streaming reads
    may wait on a push to the API of `api_timeout` seconds a request, its retries included."""
    return backend_for_url(url).make_engine(url, api_timeout)


def _reads(method: Callable) -> Callable:
    """A read of the entity (its first argument) whose table or column went missing since the check
    raises `SchemaChanging` (`BaseA.schema_changes`); a generator's too, whenever its rows fail."""
    if pyinspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: BaseA, entity: str, *args, **kwargs):
            with self.schema_changes(entity):
                yield from method(self, entity, *args, **kwargs)

        return stream

    @functools.wraps(method)
    def read(self: BaseA, entity: str, *args, **kwargs):
        with self.schema_changes(entity):
            return method(self, entity, *args, **kwargs)

    return read


class BaseA:
    """The reads the sync makes on Base A, each through the entity's mapping (`base_sync.mapping`).

    A chunk of records holds at most the `chunk_size` its read is given and about `chunk_bytes` of
    text (SYNC_CHUNK_BYTES): wide rows make smaller chunks (`base_sync.chunking`). A check finding
    only mapped tables or columns missing is made again once after `schema_recheck_seconds`
    (SYNC_SCHEMA_RECHECK_SECONDS in the tasks; 0: not) before it fails: a rename may be under way."""

    def __init__(
        self,
        engine: Engine,
        mapping: SourceMapping | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        schema_recheck_seconds: float = 0.0,
    ):
        self.engine = engine
        self.chunk_bytes = chunk_bytes
        self.schema_recheck_seconds = schema_recheck_seconds
        self._rechecked = False
        self.backend = backend_of(engine)
        self.mapping = mapping or SourceMapping.from_settings()
        # The platform's own Base A (`base-a init`): the demo writes it; its delete log serves deletes.
        metadata, self.tables = build_tables(self.backend)
        self.delete_log = metadata.tables[DELETE_LOG]
        self._checked: SchemaCheck | None = None
        self._shared_keys: dict[str, dict[int, int]] = {}  # {entity: shared keys}, where no index serves the key
        self._shared_seen = shared_keys.SharedSeen()  # where one does: the keys the chunks told shared

    def check(self) -> SchemaCheck:
        """The mapping against the live tables (`mapping.check`): one catalogue read, made once per
        reader (a task makes one), before the first read of a mapped table."""
        if self._checked is None:
            self._checked = check_source(self.engine, self.mapping, self.backend)
            for warning in (w for entity in self._checked.entities.values() for w in entity.warnings):
                log.warning("%s", warning)
        return self._checked

    def require_schema(self, entity: str) -> EntityCheck:
        """The entity's check; `SchemaDriftError` when a mapped column is missing or of another type
        (`MappingError` when the mapping has no such entity). Only tables or columns missing are checked
        again once after `schema_recheck_seconds`: an online schema change's cut-over (pt-online-schema-change,
        gh-ost) or a column renamed and back takes seconds, and should not fail the run for good."""
        self.mapping.view(entity, self.backend)
        if self.schema_recheck_seconds and not self._rechecked and self.check().only_missing(entity):
            log.warning(
                "%s: %s: a schema change in progress? checking again in %g s",
                entity,
                "; ".join(str(p) for p in self.check().entities[entity].problems),
                self.schema_recheck_seconds,
            )
            time.sleep(self.schema_recheck_seconds)
            self._checked, self._rechecked = None, True  # once per reader: a drift that stays fails now
        return self.check().require(entity)

    @contextlib.contextmanager
    def schema_changes(self, entity: str) -> Iterator[None]:
        """A read of the entity failing on a table or column Base A no longer holds (the check before
        it found them) raises `SchemaChanging`: one line naming them, retried, and no SQL (the driver's
        error is its cause). A column the server names by an alias of the row filter's subquery
        (`m.aktiv` of `FROM mandanten m`) is named by its table (`mandanten.aktiv`)."""
        try:
            yield
        except DBAPIError as error:
            missing = self.backend.missing_object(error)
            if missing is None:
                raise
            table = missing.table or self.mapping.table_of(entity)
            if missing.column is not None and missing.table is not None:
                table = aliased_table(self.mapping.spec.entities[entity].filter, missing.table) or table
            raise SchemaChanging(entity, table, missing.column) from error.orig

    def rendered(self, view: SourceView) -> Rendered:
        """The view's rendering in SQL (MySQL), knowing the character set of each text column and
        which columns are BITs."""
        checked = self.check().entities[view.entity.name]
        return Rendered(view, checked.charsets, checked.numbers, checked.times)

    def table(self, entity: str) -> Table:
        """The entity's table as `base-a init` creates it (the demo's and the tests' writes)."""
        return self.tables[entity]

    def view(self, entity: str) -> SourceView:
        """The entity's source table through the mapping, checked against the live table first."""
        view = self.mapping.view(entity, self.backend)
        self.require_schema(entity)
        return view

    def now(self) -> datetime:
        """Base A's clock (UTC), with the precision of its updated_at stamps."""
        with self.engine.connect() as conn:
            value = conn.execute(select(self.backend.clock())).scalar_one()
        return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)

    def _stream(self, statement, chunk_size: int, max_bytes: int | None = None) -> Iterator[list]:
        """The statement's rows, streamed, `chunk_size` at a time; with `max_bytes` (reads of whole
        rows, whose texts may be long), also cut at that many bytes of its long columns
        (`chunking.measure_of`, `chunking.bounded_chunks`)."""
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(statement)
            measure = None if max_bytes is None else measure_of(result.cursor.description)
            if measure is None:  # no long column: a chunk of rows is bounded by its row count
                chunks = result.partitions()
            else:
                chunks = bounded_chunks(result.fetchmany, chunk_size, max_bytes, measure)
            try:
                yield from chunks
            except GeneratorExit:
                # The reader stopped early (a failed push): drop the connection instead of
                # reading the rest of a server-side result just to close it.
                conn.invalidate()
                raise
            _end_read(conn)

    def _window(self, view: SourceView, since: Cursor | None, until: Cursor | None, quick: bool = False) -> list:
        """The rows of a usable version in (since, until]. `quick`: rows surely inside the window by
        their raw wall time skip the exact test, which converts the version at each of its four
        comparisons (a nested CASE each: a verification's reads of a converted cursor took twice as long)."""
        exact = _between(view.version_since(since and since.updated_at), view.key, since, until)
        inside = view.surely_within(since and since.updated_at, until and until.updated_at) if quick else None
        return [
            *view.versioned(),
            *view.version_prefilter(since and since.updated_at, until and until.updated_at),
            *([or_(inside, and_(*exact))] if inside is not None and exact else exact),
        ]

    def _records(
        self,
        view: SourceView,
        where: list,
        order: tuple,
        chunk_size: int,
        clock=None,
        since: Cursor | None = None,
        unversioned: bool = False,
    ) -> Iterator[list]:
        """Bulk records (and `Quarantined` rows, in place) of the rows meeting `where` (`since`: a window
        after it), a chunk at a time: rendered by the server where it can (MySQL), else mapped here row by row.
        The rows of a key Base A holds in more than one row are quarantined (`_unshared`)."""
        if self.backend.renders_records:
            rendered = self.rendered(view)
            columns = rendered.columns(clock, since and since.updated_at, unversioned)
            names = [c.name for c in columns]
            statement = select(*columns).select_from(view.table).where(*where).order_by(*order)
            chunks = (
                rendered.split([dict(zip(names, row, strict=True)) for row in rows])
                for rows in self._stream(statement, chunk_size, self.chunk_bytes)
            )
        else:
            columns = [view.c(n) for n in view.source_columns]
            statement = select(*self.backend.read_columns(columns)).where(*where).order_by(*order)
            read_row = self.backend.read_row
            chunks = (
                [view.apply(row, invalid, version=clock) for row, invalid in (read_row(columns, r) for r in rows)]
                for rows in self._stream(statement, chunk_size, self.chunk_bytes)
            )
        yield from self._unshared(view, chunks)

    def _unshared(self, view: SourceView, chunks: Iterator[list]) -> Iterator[list]:
        """The chunks, each row of a key Base A holds in more than one row a `Quarantined` with the
        reason (`shared_keys`): one aggregate per chunk, only for a key no unique index makes unique.
        `KeyNamesNoRow` once the task met more than SHARED_KEYS_HELD shared keys, on either path."""
        checked = self.check().entities[view.entity.name]
        if checked.key_unique:
            yield from chunks
            return
        # A connection of its own: the read's is busy streaming its result.
        with self.engine.connect() as conn:
            try:
                in_table = None if checked.key_indexed else self._shared_in_table(conn, view)
                for chunk in chunks:
                    keys = shared_keys.keys_of(chunk)
                    if in_table is None:
                        shared = shared_keys.shared_among(conn, view, keys)
                        self._shared_seen.add(view, shared)  # past SHARED_KEYS_HELD: no key, as in_table's
                    else:
                        shared = {key: in_table[key] for key in keys & in_table.keys()}
                    if shared:
                        log.warning(
                            "%s: %d keys of this chunk name more than one row of %s (its key %s is not unique): "
                            "quarantined, not synced: %s",
                            view.entity.name,
                            len(shared),
                            view.spec.table,
                            view.spec.key,
                            ", ".join(
                                f"{view.spec.key} = {key} ({rows} rows)" for key, rows in list(shared.items())[:10]
                            ),
                        )
                    yield shared_keys.quarantined(chunk, view, shared) if shared else chunk
            finally:
                chunks.close()

    def _shared_in_table(self, conn: Connection, view: SourceView) -> dict[int, int]:
        """The keys several rows of the view's table hold, read once per task (`shared_keys.shared_in_table`)."""
        if view.entity.name not in self._shared_keys:
            log.info(
                "%s: no index of %s starts with its key %s: one pass over the table tells which keys rows share",
                view.entity.name,
                view.spec.table,
                view.spec.key,
            )
            self._shared_keys[view.entity.name] = shared_keys.shared_in_table(conn, view)
        return self._shared_keys[view.entity.name]

    @_reads
    def extract(
        self, entity: str, since: Cursor | None, chunk_size: int, keys: KeyRange | None = None
    ) -> Iterator[list[dict | Quarantined]]:
        """The bulk records of the live rows changed after `since`, a chunk at a time: in (version,
        key) order, which the cursor index serves, or in key order when every row is read (a first
        load or full refresh: a scan of the primary key, no sort of the whole table before the first
        row; `Reach` finds the window's end in either order).

        With `keys` (a partition of a first load or full refresh), only the rows of that key range:
        the primary key serves the range, and partitions read apart from each other.
        One SELECT reads one consistent snapshot (InnoDB, SQLite), so a row is seen at most once.
        A row the mapping refuses comes as a `Quarantined` in its place (base_sync.dirty).
        """
        view = self.view(entity)
        where = [*view.live, *self._window(view, since, None), *_in_range(view, keys)]
        order = (view.key,) if keys or since is None else (view.version_since(since.updated_at), view.key)
        yield from self._records(view, where, order, chunk_size, since=since)

    @_reads
    def unversioned(self, entity: str, chunk_size: int, unreal: bool = False) -> Iterator[list[dict | Quarantined]]:
        """The live rows whose cursor holds no usable time (the zero timestamp, NULL in every cursor
        column), then the rows the mapping would sync whose key is NULL: each a `Quarantined` with
        its reasons.

        No window holds them, so the extract never reaches them: every load reads them here to
        quarantine them again until Base A fixes them (base_sync.dirty). A NULL key cannot be kept
        as a rejection (Base B keys those by it): `load.push_chunks` logs and counts such rows.
        `unreal`: also the rows whose DATETIME stamp has a zero part or an impossible day (a scan of
        the table, `SourceView.unreal`: for a load from the start)."""
        view = self.view(entity)
        without = or_(view.unversioned(), view.unreal()) if unreal else view.unversioned()
        yield from self._records(view, [*view.live, without], (view.key,), chunk_size, unversioned=True)
        yield from self.unkeyed(entity, chunk_size)

    @_reads
    def unkeyed(self, entity: str, chunk_size: int, clock=None) -> Iterator[list[dict | Quarantined]]:
        """The rows the mapping would sync whose key is NULL, each a `Quarantined` (logged and
        counted by `load.push_chunks`: Base B keys rejections by the key). `clock`: the version of a
        table without a cursor."""
        view = self.view(entity)
        yield from self._records(view, view.unkeyed, (), chunk_size, clock=clock)

    @_reads
    def records_by_keys(self, entity: str, keys: list[int], chunk_size: int) -> Iterator[list[dict | Quarantined]]:
        """The bulk records of the given keys' current live rows (missing keys skipped), made as the
        extract makes them (a table without a cursor: versioned by Base A's clock now): one streamed
        read per `chunk_size` keys, its chunks bounded by bytes as the extract's."""
        view = self.view(entity)
        clock = None if view.has_cursor else self.now()
        for start in range(0, len(keys), chunk_size):
            part = keys[start : start + chunk_size]
            for chunk in self._records(view, [*view.live, view.key.in_(part)], (view.key,), chunk_size, clock):
                if chunk:
                    yield chunk

    @_reads
    def live_keys_among(self, entity: str, keys: list[int], chunk_size: int) -> set[int]:
        """Those of the given keys whose rows Base A holds live (in the mapping's scope)."""
        view = self.view(entity)
        return {key for (key,) in self._live_among(view, keys, chunk_size, view.key)}

    @_reads
    def live_versions_among(self, entity: str, keys: list[int], chunk_size: int) -> dict[int, set[datetime]]:
        """{key: the versions of its live rows (in the mapping's scope)} of those of the given keys
        Base A holds live; a row without a usable version adds none."""
        view = self.view(entity)
        held: dict[int, set[datetime]] = {}
        for key, version in self._live_among(view, keys, chunk_size, view.key, view.version):
            held.setdefault(key, set()).update({utc(version)} if isinstance(version, datetime) else ())
        return held

    def _live_among(self, view: SourceView, keys: list[int], chunk_size: int, *columns) -> Iterator:
        """`columns` of the live rows of the given keys, read `chunk_size` keys at a time."""
        with self.engine.connect() as conn:
            for start in range(0, len(keys), chunk_size):
                part = keys[start : start + chunk_size]
                yield from conn.execute(select(*columns).where(*view.live, view.key.in_(part)))

    @_reads
    def rows_by_keys(self, entity: str, keys: list[int], chunk_size: int) -> Iterator[list[dict]]:
        """The current source rows of the given keys (missing keys are skipped), as read (a BIT or
        ZEROFILL integer as its number, as the mapping reads it), a chunk at a time (at most `chunk_size` rows and about
        `chunk_bytes`: streamed, as the extract)."""
        view = self.view(entity)
        names = view.source_columns
        numbers = self.check().entities[entity].numbers
        columns = [bit_number(view.c(n)).label(n) if n in numbers else view.c(n) for n in names]
        for start in range(0, len(keys), chunk_size):
            part = keys[start : start + chunk_size]
            statement = select(*columns).where(view.key.in_(part)).order_by(view.key)
            for rows in self._stream(statement, chunk_size, self.chunk_bytes):
                yield [dict(zip(names, row, strict=True)) for row in rows]

    @_reads
    def window_digest(
        self, entity: str, since: Cursor | None, until: Cursor, keys: KeyRange | None = None
    ) -> VersionDigest:
        """Count and checksum of the live rows' (key, version) pairs in the window (since, until] (and key range)."""
        view = self.view(entity)
        where = [*view.live, *self._window(view, since, until, quick=True), *_in_range(view, keys)]
        with self.engine.connect() as conn:
            version = view.version_since(since and since.updated_at)
            return window_digest(conn, view.key, version, where, self.backend.pair_hash)

    @_reads
    def window_versions(
        self, entity: str, since: Cursor | None, until: Cursor, keys: KeyRange | None = None
    ) -> Iterator[tuple[int, datetime]]:
        """(key, version) of the live rows in the window (and key range), by key."""
        view = self.view(entity)
        where = [*view.live, *self._window(view, since, until), *_in_range(view, keys)]
        statement = select(view.key, view.version_since(since and since.updated_at)).where(*where).order_by(view.key)
        for rows in self._stream(statement, 50_000):
            for key, version in rows:
                yield key, utc(version)

    @_reads
    def left_scope_after(
        self, entity: str, since: Cursor | None, chunk_size: int, held: shared_keys.BaseBVersions
    ) -> Iterator[list[dict]]:
        """Delete records (key and version) of the rows changed after `since` that the mapping does not
        sync (soft-deleted, outside the filter): how a soft delete reaches Base B at a cost that follows
        the changes. Nothing for a mapping without such rules or without a cursor.

        For a key no unique index makes unique, a key another row still holds live is no delete when
        Base B's copy is that row's (`_still_live`; `held`: Base B's live versions of given keys)."""
        view = self.view(entity)
        if view.version is None or not (view.deleted is not None or view.in_scope):
            return
        where = [view.left_scope, *self._window(view, since, None)]
        version = view.version_since(since and since.updated_at)
        statement = select(view.key, version).where(*where).order_by(version, view.key)
        unique = self.check().entities[entity].key_unique
        for rows in self._stream(statement, chunk_size):
            records = [{"source_id": key, "source_updated_at": utc(version).isoformat()} for key, version in rows]
            if not unique:
                records = self._still_live(view, records, chunk_size, held)
            if records:
                yield records

    def _still_live(
        self, view: SourceView, records: list[dict], chunk_size: int, held: shared_keys.BaseBVersions
    ) -> list[dict]:
        """The delete records of rows that left the scope, less those whose key another row of Base A
        holds live and whose copy in Base B is that row's (`shared_keys.copies_of_live_rows`): deleting
        it would tombstone that row's copy. A copy of the row that left is deleted (version-guarded,
        as any delete). Logged, not counted."""
        live = self.live_versions_among(view.entity.name, sorted({r["source_id"] for r in records}), chunk_size)
        if not live:
            return records
        kept = shared_keys.copies_of_live_rows(live, held(sorted(live)))
        if kept:
            log.warning(
                "%s: %d keys of rows that left the mapping's scope (%s) name a live row of %s too, whose copy "
                "Base B holds: no delete sent for %s (that copy stays; the load quarantines the key)",
                view.entity.name,
                len(kept),
                view.spec.key,
                view.spec.table,
                ", ".join(f"{view.spec.key} = {key}" for key in sorted(kept)[:10])
                + (", ..." if len(kept) > 10 else ""),
            )
        return [r for r in records if r["source_id"] not in kept]

    @_reads
    def key_buckets(self, entity: str, size: int, versions: bool = False) -> dict[int, tuple]:
        """{bucket: (count, sum of keys)} of the live rows, with bucket = key // size: one aggregate over
        the key; with `versions`, (count, sum of keys, digest of the (key, version) pairs) as the API's."""
        view = self.view(entity)
        bucket = (view.key // size).label("bucket")
        statement = select(bucket, func.count(), func.sum(view.key)).where(*view.live).group_by(bucket)
        with self.engine.connect() as conn:
            sums = {int(b): (int(count), int(total)) for b, count, total in conn.execute(statement)}
            if not versions:
                return sums
            digests = bucket_digests(conn, view.key, view.version, view.live, size, self.backend.pair_hash)
        empty = VersionDigest()
        return {b: (*summary, digests.get(b, empty).hexdigest) for b, summary in sums.items()}

    @_reads
    def versions_between(self, entity: str, low: int, high: int) -> Iterator[tuple[int, datetime | None]]:
        """(key, version) of the live rows with low <= key <= high, by key; None: no usable version."""
        view = self.view(entity)
        statement = select(view.key, view.version).where(*view.live, view.key.between(low, high)).order_by(view.key)
        for rows in self._stream(statement, 50_000):
            for key, version in rows:
                yield key, (utc(version) if version is not None else None)

    @_reads
    def key_span(self, entity: str) -> tuple[int, int, int]:
        """(lowest key, highest key, rows) of the live rows; (0, 0, 0) when there are none."""
        view = self.view(entity)
        statement = select(func.min(view.key), func.max(view.key), func.count()).where(*view.live)
        with self.engine.connect() as conn:
            low, high, rows = conn.execute(statement).one()
        return (int(low), int(high), int(rows)) if rows else (0, 0, 0)

    @_reads
    def keys_between(self, entity: str, low: int, high: int) -> set[int]:
        """The live rows' keys in [low, high]."""
        view = self.view(entity)
        statement = select(view.key).where(*view.live, view.key.between(low, high))
        with self.engine.connect() as conn:
            return set(conn.execute(statement).scalars())

    def delete_log_state(self, entity: str) -> DeleteLogState:
        """The entity's delete log as it is now (`delete_log_triggers.state`: its triggers judged by
        their table, event and statement, not their names); UNSEEN when this account cannot see
        triggers (no TRIGGER privilege) but the delete log is there."""
        with self.engine.connect() as conn:
            found = trigger_state(conn, self.backend, self.mapping, entity)
            if found.status != ABSENT or self.backend.sees_triggers_on(conn, found.table):
                return found
        try:
            return replace(found, status=UNSEEN) if inspect(self.engine).has_table(DELETE_LOG) else found
        except DBAPIError as error:
            if not self.backend.lacks_privilege(error):  # the server away, a limit: not a missing grant
                raise
            # A grant on the mapped tables only: the deletes are found by comparing keys instead. The
            # server refuses alike whether the table is there or not, so both remedies are named.
            log.warning(
                "%s: this account may not read %s, or Base A has none (%s): deletes are found by comparing "
                "every key; if it is not there, `base-a install-delete-log` creates it and its triggers; if "
                "it is, GRANT SELECT on it to follow the deletes from the log",
                entity,
                DELETE_LOG,
                error.orig,
            )
            return found

    def logs_deletes(self, entity: str) -> bool | None:
        """Whether Base A's delete log of the entity may be trusted: its triggers in place or outdated
        but working (True), not (False: absent or stale), or hidden from this account while the log is
        there (None)."""
        return {IN_PLACE: True, OUTDATED: True, UNSEEN: None}.get(self.delete_log_state(entity).status, False)

    @_reads
    def deletes_after(
        self, entity: str, since: Cursor | None, chunk_size: int, until: Cursor | None = None
    ) -> Iterator[tuple[list[dict], Cursor]]:
        """The entity's logged deletes after `since` (up to `until`) as bulk delete records (key and
        last version), a chunk at a time, each with the log position it reaches."""
        log = self.delete_log
        statement = (
            select(log.c.id, log.c.updated_at, log.c.deleted_at, log.c.seq)
            .where(log.c.entity == entity, *window(log.c.deleted_at, log.c.seq, since, until))
            .order_by(log.c.deleted_at, log.c.seq)
        )
        for rows in self._stream(statement, chunk_size):
            # A row deleted with the zero timestamp (None) had no version: its delete takes the
            # delete's time, which is after any version Base B can hold of it (base_sync.dirty).
            records = [
                {"source_id": key, "source_updated_at": utc(version or deleted).isoformat()}
                for key, version, deleted, _ in rows
            ]
            yield records, Cursor(utc(rows[-1][2]), rows[-1][3])

    def purge_delete_log(self, entity: str, before: datetime) -> int:
        """Drop the entity's delete log entries older than `before`; how many went."""
        log = self.delete_log
        with self.engine.begin() as conn:
            return conn.execute(delete(log).where(log.c.entity == entity, log.c.deleted_at < _naive(before))).rowcount


def _end_read(conn: Connection) -> None:
    """End the transaction of a read that reached its end. The server may have dropped the idle
    connection while the consumer pushed the last chunks (a wait_timeout shorter than the session's,
    a restart, a proxy): every row was read, so a lost connection fails nothing now."""
    try:
        conn.rollback()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.info("Base A dropped a read's connection after its last row (%s): nothing was lost", error.orig)


def window(version, key, since: Cursor | None, until: Cursor | None) -> list:
    """Conditions for since < (version, key) <= until on a UTC TIMESTAMP column (the delete log).

    A row whose stamp is no time (the zero timestamp) is in no window: it has no version to sync or
    verify by (base_sync.dirty)."""
    return [version >= FIRST_VERSION, *_between(version, key, since, until)]


def _between(version, key, since: Cursor | None, until: Cursor | None) -> list:
    return version_window(
        version,
        key,
        (_naive(since.updated_at), since.id) if since else None,
        (_naive(until.updated_at), until.id) if until else None,
    )


def _in_range(view: SourceView, keys: KeyRange | None) -> list:
    return [view.key.between(keys.low, keys.high)] if keys else []


def _naive(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None)


ENTITY_NAMES = tuple(ENTITIES)
