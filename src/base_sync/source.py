"""Reading Base A: the incremental extract and the reads that verification and deletes compare.

Every read streams (a server-side cursor on MySQL/MariaDB), so memory stays bounded whatever the
table size. Timestamps are UTC: MySQL sessions are set to UTC, SQLite stores UTC text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, Table, delete, func, select

from base_sync.backends import backend_for_url, backend_of
from base_sync.dirty import FIRST_VERSION
from base_sync.key_ranges import KeyRange
from base_sync.records import record_columns, to_record, utc
from base_sync.source_schema import DELETE_LOG, build_tables, delete_trigger_name, existing_triggers
from baseab_contract.entities import ENTITIES
from baseab_contract.version_digest import VersionDigest, version_window, window_digest


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in Base A's change order: (updated_at, id)."""

    updated_at: datetime
    id: int

    def to_json(self) -> dict:
        return {"updated_at": self.updated_at.isoformat(), "id": self.id}

    @classmethod
    def from_json(cls, data: dict | None) -> Cursor | None:
        if not data:
            return None
        return cls(utc(datetime.fromisoformat(data["updated_at"])), int(data["id"]))

    @classmethod
    def of_usable_record(cls, record: dict) -> Cursor | None:
        """The record's position, or None when its version is no time (a dirty row, base_sync.dirty)."""
        try:
            return cls.of_record(record)
        except (TypeError, ValueError):
            return None

    @classmethod
    def of_record(cls, record: dict) -> Cursor:
        """The position of a bulk record (its version is a datetime or, read as text, ISO 8601)."""
        version = record["source_updated_at"]
        if not isinstance(version, datetime):
            version = datetime.fromisoformat(version)
        return cls(utc(version), record["source_id"])


def source_engine(url: str) -> Engine:
    """An engine on Base A whose sessions read and write timestamps in UTC."""
    return backend_for_url(url).make_engine(url)


class BaseA:
    """The reads the sync makes on Base A."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.backend = backend_of(engine)
        metadata, self.tables = build_tables(self.backend)
        self.delete_log = metadata.tables[DELETE_LOG]

    def table(self, entity: str) -> Table:
        return self.tables[entity]

    def now(self) -> datetime:
        """Base A's clock (UTC), with the precision of its updated_at stamps."""
        with self.engine.connect() as conn:
            value = conn.execute(select(self.backend.clock())).scalar_one()
        return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)

    def _stream(self, statement, chunk_size: int) -> Iterator[list]:
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(statement)
            try:
                yield from result.partitions()
            except GeneratorExit:
                # The reader stopped early (a failed push): drop the connection instead of
                # reading the rest of a server-side result just to close it.
                conn.invalidate()
                raise

    def _window(self, table: Table, since: Cursor | None, until: Cursor | None) -> list:
        return window(table.c.updated_at, table.c.id, since, until)

    def extract(
        self, entity: str, since: Cursor | None, chunk_size: int, keys: KeyRange | None = None
    ) -> Iterator[list[dict]]:
        """The bulk records of the rows changed after `since`, in (updated_at, id) order, a chunk at a time.

        With `keys` (a partition of a first load or full refresh), only the rows of that key range,
        in id order: the primary key serves the range, and partitions read apart from each other.
        One SELECT reads one consistent snapshot (InnoDB, SQLite), so a row is seen at most once.
        """
        table = self.table(entity)
        where = self._window(table, since, None) + _in_range(table, keys)
        order = (table.c.id,) if keys else (table.c.updated_at, table.c.id)
        if self.backend.renders_records:  # the server writes the JSON text of each value
            columns = record_columns(table, entity)
            names = [column.name for column in columns]
            for rows in self._stream(select(*columns).where(*where).order_by(*order), chunk_size):
                yield [dict(zip(names, row, strict=True)) for row in rows]
            return
        names = [c.name for c in table.columns]
        for rows in self._stream(select(*table.columns).where(*where).order_by(*order), chunk_size):
            yield [to_record(entity, dict(zip(names, row, strict=True))) for row in rows]

    def unversioned(self, entity: str, chunk_size: int) -> Iterator[list[dict]]:
        """The bulk records of the rows whose version stamp is no time (the zero timestamp).

        They sort before every position, so no window holds them and the extract never reaches
        them: every load reads them here (a short range of the (updated_at, id) index) to quarantine
        them again until Base A fixes them (base_sync.dirty)."""
        table = self.table(entity)
        where = table.c.updated_at < FIRST_VERSION
        if self.backend.renders_records:
            columns = record_columns(table, entity)
            names = [column.name for column in columns]
            for rows in self._stream(select(*columns).where(where).order_by(table.c.id), chunk_size):
                yield [dict(zip(names, row, strict=True)) for row in rows]

    def records_by_keys(self, entity: str, keys: list[int], chunk_size: int) -> Iterator[list[dict]]:
        """The bulk records of the given keys' current rows (missing keys skipped), made as the extract
        makes them: on MySQL rendered by the server, invalid dates flagged (base_sync.dirty)."""
        if not self.backend.renders_records:
            for chunk in self.rows_by_keys(entity, keys, chunk_size):
                yield [to_record(entity, row) for row in chunk]
            return
        table = self.table(entity)
        columns = record_columns(table, entity)
        names = [column.name for column in columns]
        with self.engine.connect() as conn:
            for start in range(0, len(keys), chunk_size):
                part = keys[start : start + chunk_size]
                rows = conn.execute(select(*columns).where(table.c.id.in_(part)).order_by(table.c.id))
                chunk = [dict(zip(names, row, strict=True)) for row in rows]
                if chunk:
                    yield chunk

    def rows_by_keys(self, entity: str, keys: list[int], chunk_size: int) -> Iterator[list[dict]]:
        """The current rows of the given keys (missing keys are skipped), a chunk at a time."""
        table = self.table(entity)
        names = [c.name for c in table.columns]
        with self.engine.connect() as conn:
            for start in range(0, len(keys), chunk_size):
                part = keys[start : start + chunk_size]
                rows = conn.execute(select(*table.columns).where(table.c.id.in_(part)).order_by(table.c.id))
                chunk = [dict(zip(names, row, strict=True)) for row in rows]
                if chunk:
                    yield chunk

    def window_digest(
        self, entity: str, since: Cursor | None, until: Cursor, keys: KeyRange | None = None
    ) -> VersionDigest:
        """Count and checksum of the (id, updated_at) pairs in the window (since, until] (and key range)."""
        table = self.table(entity)
        where = self._window(table, since, until) + _in_range(table, keys)
        with self.engine.connect() as conn:
            return window_digest(conn, table.c.id, table.c.updated_at, where, self.backend.pair_hash)

    def window_versions(
        self, entity: str, since: Cursor | None, until: Cursor, keys: KeyRange | None = None
    ) -> Iterator[tuple[int, datetime]]:
        """(id, updated_at) in the window (and key range), by id."""
        table = self.table(entity)
        where = self._window(table, since, until) + _in_range(table, keys)
        statement = select(table.c.id, table.c.updated_at).where(*where).order_by(table.c.id)
        for rows in self._stream(statement, 50_000):
            for key, version in rows:
                yield key, utc(version)

    def key_buckets(self, entity: str, size: int) -> dict[int, tuple[int, int]]:
        """{bucket: (count, sum of ids)} with bucket = id // size: one aggregate over the key."""
        table = self.table(entity)
        bucket = (table.c.id // size).label("bucket")
        statement = select(bucket, func.count(), func.sum(table.c.id)).group_by(bucket)
        with self.engine.connect() as conn:
            return {int(b): (int(count), int(total)) for b, count, total in conn.execute(statement)}

    def key_span(self, entity: str) -> tuple[int, int, int]:
        """(lowest id, highest id, rows) of the table; (0, 0, 0) when it is empty."""
        table = self.table(entity)
        with self.engine.connect() as conn:
            low, high, rows = conn.execute(select(func.min(table.c.id), func.max(table.c.id), func.count())).one()
        return (int(low), int(high), int(rows)) if rows else (0, 0, 0)

    def keys_between(self, entity: str, low: int, high: int) -> set[int]:
        """The ids in [low, high]."""
        table = self.table(entity)
        with self.engine.connect() as conn:
            return set(conn.execute(select(table.c.id).where(table.c.id.between(low, high))).scalars())

    def logs_deletes(self, entity: str) -> bool:
        """Whether Base A's delete trigger on the entity's table is in place (see source_schema)."""
        return delete_trigger_name(entity) in existing_triggers(self.engine)

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


def window(version, key, since: Cursor | None, until: Cursor | None) -> list:
    """Conditions for since < (version, key) <= until on Base A (naive UTC timestamps).

    A row whose stamp is no time (the zero timestamp) is in no window: it has no version to sync or
    verify by; `BaseA.unversioned` reads those (base_sync.dirty)."""
    return [
        version >= FIRST_VERSION,
        *version_window(
            version,
            key,
            (_naive(since.updated_at), since.id) if since else None,
            (_naive(until.updated_at), until.id) if until else None,
        ),
    ]


def _in_range(table: Table, keys: KeyRange | None) -> list:
    return [table.c.id.between(keys.low, keys.high)] if keys else []


def _naive(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None)


ENTITY_NAMES = tuple(ENTITIES)
