"""Bulk upsert and delete for the pipelines, with the version guard.

A request's records are validated in one pass, staged in a temporary table (PostgreSQL fills it
from one JSON parameter, so Python never loops over rows to load them) and merged with one
`INSERT ... ON CONFLICT (source_id) DO UPDATE ... WHERE <guard>`. The guard makes a write older
than the row's `source_updated_at` a no-op ("stale"), keeps tombstones against older writes, and
makes a re-sent batch change nothing ("unchanged").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter
from typing import Any

import orjson
import psycopg
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    Table,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from api_service.db import begin_write
from api_service.entities import Entity
from api_service.fastpath import FastDecoder
from api_service.models import UTCDateTime
from api_service.problems import Problem, field_errors
from api_service.schemas import BULK_DELETE_RECORDS, BulkDeleteRecord, BulkResult, RejectedRecord

log = logging.getLogger(__name__)
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass
class Batch:
    """Validated records of one request, with the rejections found so far."""

    received: int
    records: list[tuple[int, BaseModel]]  # (index in the request, record)
    rejected: list[RejectedRecord] = field(default_factory=list)
    superseded: int = 0  # same source_id again later in the request: counted stale

    def reject(self, index: int, source_id: int | None, reasons: list[dict[str, str]]) -> None:
        self.rejected.append(RejectedRecord(index=index, source_id=source_id, reasons=reasons))


# --- parsing and validation -------------------------------------------------------------------


def parse_body(body: bytes, content_type: str, max_records: int) -> tuple[list[Any], dict[int, str]]:
    """Items of a JSON-array or NDJSON body, and per-index parse errors (NDJSON lines)."""
    if content_type in NDJSON_TYPES:
        items: list[Any] = []
        errors: dict[int, str] = {}
        for line_number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                errors[len(items)] = f"line {line_number} is not valid JSON: {exc}"
                items.append(None)
    elif content_type == "application/json":
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise Problem(422, "the body must be a JSON array of records (or NDJSON, one record a line)")
        errors = {}
    else:
        raise Problem(415, "send application/json (an array of records) or application/x-ndjson")
    if len(items) > max_records:
        raise Problem(413, f"{len(items)} records in one request; the limit is {max_records}: split the batch")
    return items, errors


def read_upserts(body: bytes, content_type: str, max_records: int, adapter: TypeAdapter, fast: FastDecoder) -> Batch:
    """The validated records of a bulk upsert body: msgspec's fast pass, else pydantic's."""
    if content_type not in NDJSON_TYPES and content_type != "application/json":
        raise Problem(415, "send application/json (an array of records) or application/x-ndjson")
    records = fast.decode(body, ndjson=content_type in NDJSON_TYPES)
    if records is None:
        items, parse_errors = parse_body(body, content_type, max_records)
        return validate(items, parse_errors, adapter)
    if len(records) > max_records:
        raise Problem(413, f"{len(records)} records in one request; the limit is {max_records}: split the batch")
    return Batch(received=len(records), records=list(enumerate(records)))


def _source_id_of(item: Any) -> int | None:
    value = item.get("source_id") if isinstance(item, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def validate(items: list[Any], parse_errors: dict[int, str], adapter: TypeAdapter) -> Batch:
    """Validate all items in one pass; on failure, split the good from the bad by index."""
    batch = Batch(received=len(items), records=[])
    candidates = [(i, item) for i, item in enumerate(items) if i not in parse_errors]
    for index, message in parse_errors.items():
        batch.reject(index, None, [{"field": "body", "message": message}])
    try:
        valid = adapter.validate_python([item for _, item in candidates])
        batch.records = [(index, record) for (index, _), record in zip(candidates, valid, strict=True)]
        return batch
    except ValidationError as exc:
        bad: dict[int, list[dict]] = {}
        for error in field_errors(exc):
            position, _, name = error["field"].partition(".")
            bad.setdefault(int(position), []).append({"field": name or "record", "message": error["message"]})
    good = [pair for position, pair in enumerate(candidates) if position not in bad]
    for position, reasons in bad.items():
        index, item = candidates[position]
        batch.reject(index, _source_id_of(item), reasons)
    valid = adapter.validate_python([item for _, item in good])
    batch.records = [(index, record) for (index, _), record in zip(good, valid, strict=True)]
    return batch


def keep_latest_per_source_id(batch: Batch) -> None:
    """One record per source_id: the newest version wins, the last one on a tie."""
    if len({record.source_id for _, record in batch.records}) == len(batch.records):
        return  # the usual case, checked in one pass
    latest: dict[int, tuple[int, BaseModel]] = {}
    for index, record in batch.records:
        held = latest.get(record.source_id)
        if held is None or record.source_updated_at >= held[1].source_updated_at:
            latest[record.source_id] = (index, record)
    batch.superseded = len(batch.records) - len(latest)
    batch.records = sorted(latest.values(), key=lambda pair: pair[0])


def reject_duplicate_unique_values(batch: Batch, entity: Entity) -> None:
    """Two records of one request may not claim the same unique value (an email)."""
    for unique in entity.unique_fields:
        values = [getattr(record, unique.name) for _, record in batch.records]
        if len(set(values)) == len(values):
            continue  # the usual case, checked in one pass
        first_seen: dict[Any, int] = {}
        kept = []
        for index, record in batch.records:
            value = getattr(record, unique.name)
            if value is not None and value in first_seen:
                message = f"{unique.name} {value!r} is also in record {first_seen[value]} of this request"
                batch.reject(index, record.source_id, [{"field": unique.name, "message": message}])
                continue
            if value is not None:
                first_seen[value] = index
            kept.append((index, record))
        batch.records = kept


# --- staging ----------------------------------------------------------------------------------

_SYSTEM_COLUMNS = frozenset(
    {"id", "source_id", "created_at", "updated_at", "source_updated_at", "synced_at", "deleted_at"}
)
# Binary COPY needs the server type of each column.
_PG_TYPES = {"BIGINT": "int8", "INTEGER": "int4", "TEXT": "text", "DATE": "date", "NUMERIC": "numeric"}


@cache
def stage_table(target: Table, kind: str) -> Table:
    """A per-connection temporary table shaped like the request's records."""
    if kind == "upsert":
        names = ["source_id", *[c for c in target.c.keys() if c not in _SYSTEM_COLUMNS], "created_at", "updated_at"]
    else:
        names = ["source_id"]
    columns = [Column(name, target.c[name].type) for name in names]
    columns.append(Column("source_updated_at", UTCDateTime))
    return Table(
        f"stage_{kind}_{target.name}",
        MetaData(),
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


def _pg_type(column: Column) -> str:
    if isinstance(column.type, UTCDateTime):
        return "timestamptz"
    name = column.type.compile(dialect=postgresql.dialect()).split("(")[0]
    return _PG_TYPES.get(name, "varchar" if name == "VARCHAR" else name.lower())


def _fill_stage(conn: Connection, stage: Table, records: list[BaseModel]) -> None:
    """Load the records into the (emptied) stage: binary COPY on PostgreSQL, executemany elsewhere."""
    conn.execute(CreateTable(stage, if_not_exists=True))
    conn.execute(stage.delete())
    keys = stage.c.keys()
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {stage.name} ({', '.join(keys)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_pg_type(column) for column in stage.c])
            row_of = attrgetter(*keys)  # one C call per record
            for record in records:
                copy.write_row(row_of(record))
        staged = conn.execute(select(func.count()).select_from(stage)).scalar_one()
    else:
        rows = [{key: getattr(record, key) for key in keys} for record in records]
        staged = conn.execute(stage.insert().execution_options(preserve_rowcount=True), rows).rowcount if rows else 0
    if staged != len(records):
        raise RuntimeError(f"staged {staged} of {len(records)} records into {stage.name}")


def _probe(conn: Connection, table: Table, name: str, condition, *columns: str):
    """The one matching row of `table` for each stage row, as a joinable FROM item.

    On PostgreSQL a LATERAL ... LIMIT 1 subquery: it can only run as one index probe per staged
    row, whatever the planner thinks of the table's size (a hash join would scan the table).
    """
    alias = table.alias(name)
    if conn.dialect.name == "postgresql":
        probe = select(*(alias.c[c] for c in columns)).where(condition(alias)).limit(1).lateral(name)
        return probe, true()
    return alias, condition(alias)


def _insert_for(conn: Connection):
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


# --- upsert -----------------------------------------------------------------------------------


def _stale(version, row):
    """The record is older than the row (or as old as its tombstone)."""
    return and_(
        row.c.source_updated_at.is_not(None),
        or_(
            version < row.c.source_updated_at,
            and_(version == row.c.source_updated_at, row.c.deleted_at.is_not(None)),
        ),
    )


def upsert(conn: Connection, entity: Entity, target: Table, batch: Batch) -> BulkResult:
    """Merge a validated batch into Base B and count what happened to each record."""
    keep_latest_per_source_id(batch)
    reject_duplicate_unique_values(batch, entity)
    try:
        with begin_write(conn):
            counts = _merge(conn, entity, target, batch)
    except IntegrityError as exc:
        # Another writer took a unique value between our check and our merge, or rows of this
        # batch pass a value along: merge record by record so only real conflicts are rejected.
        log.warning("bulk merge of %s hit a unique conflict, merging one by one: %s", entity.name, exc.orig)
        with begin_write(conn):
            counts = _merge_one_by_one(conn, entity, target, batch)
    return BulkResult(
        received=batch.received,
        rejected=len(batch.rejected),
        errors=sorted(batch.rejected, key=lambda r: r.index),
        **counts,
    )


def _merge(conn: Connection, entity: Entity, target: Table, batch: Batch) -> dict[str, int]:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")  # compiling costs more than these short statements
        if _copy_if_all_new(conn, entity, target, batch):
            return {"inserted": len(batch.records), "updated": 0, "unchanged": 0, "stale": batch.superseded}
    stage = stage_table(target, "upsert")
    _fill_stage(conn, stage, [record for _, record in batch.records])
    _reject_unique_collisions(conn, entity, target, stage, batch)
    return _classify_and_write(conn, entity, target, stage, staged=len(batch.records), superseded=batch.superseded)


def _copy_if_all_new(conn: Connection, entity: Entity, target: Table, batch: Batch) -> bool:
    """PostgreSQL, initial loads: when no key of the batch is in Base B (not even as a tombstone),
    every record is an insert, so COPY them straight into the table. Any constraint the table
    refuses (an email held by another row) rolls back to the savepoint and returns False: the
    staged merge then decides record by record."""
    if not batch.records:
        return False
    keys = bindparam("keys", [record.source_id for _, record in batch.records], type_=postgresql.ARRAY(BigInteger))
    # One array parameter: an IN list of 5,000 values costs more to render than to run.
    if conn.execute(select(target.c.id).where(target.c.source_id == any_(keys)).limit(1)).first() is not None:
        return False
    names = ["source_id", *entity.field_names]
    now = datetime.now(UTC)
    row_of = attrgetter(*names)
    savepoint = conn.begin_nested()
    try:
        cursor = conn.connection.driver_connection.cursor()
        columns = [*names, "created_at", "updated_at", "source_updated_at", "synced_at"]
        with cursor.copy(f"COPY {target.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_pg_type(target.c[name]) for name in columns])
            for _, record in batch.records:
                version = record.source_updated_at
                copy.write_row(
                    (*row_of(record), record.created_at or version, record.updated_at or version, version, now)
                )
    except psycopg.IntegrityError as exc:
        savepoint.rollback()
        log.info("direct COPY into %s refused (%s); merging through the stage", target.name, exc.sqlstate)
        return False
    savepoint.commit()
    return True


def _merge_one_by_one(conn, entity: Entity, target: Table, batch: Batch) -> dict[str, int]:
    totals = {"inserted": 0, "updated": 0, "unchanged": 0, "stale": batch.superseded}
    known = set(
        conn.execute(
            select(target.c.source_id).where(target.c.source_id.in_([r.source_id for _, r in batch.records]))
        ).scalars()
    )
    # Rows Base B already holds first: a unique value they give up is then free for a new row.
    ordered = sorted(batch.records, key=lambda pair: pair[1].source_id not in known)
    stage = stage_table(target, "upsert")
    for index, record in ordered:
        single = Batch(received=1, records=[(index, record)])
        savepoint = conn.begin_nested()
        try:
            _fill_stage(conn, stage, [record])
            _reject_unique_collisions(conn, entity, target, stage, single)
            counts = _classify_and_write(conn, entity, target, stage, staged=len(single.records), superseded=0)
            savepoint.commit()
        except IntegrityError as exc:
            savepoint.rollback()
            message = str(exc.orig).splitlines()[0]
            batch.reject(
                index, record.source_id, [{"field": "record", "message": f"conflicts with another row: {message}"}]
            )
            continue
        batch.rejected.extend(single.rejected)
        for key, value in counts.items():
            totals[key] += value
    return totals


def _reject_unique_collisions(conn, entity: Entity, target: Table, stage: Table, batch: Batch) -> None:
    """Reject records whose unique value another live row holds (API-created or synced)."""
    if not batch.records:
        return
    colliding: dict[int, list[dict[str, str]]] = {}
    for unique in entity.unique_fields:
        value = stage.c[unique.name]
        own, own_on = _probe(
            conn,
            target,
            "own",
            lambda row: row.c.source_id == stage.c.source_id,
            "source_id",
            "source_updated_at",
            "deleted_at",
            unique.name,
        )
        mover = stage.alias("mover")

        def holds_value(row, unique=unique, value=value, own=own, mover=mover):
            # Another live row holds the value, and does not give it up in this same batch.
            return and_(
                row.c[unique.name] == value,
                row.c.deleted_at.is_(None),
                or_(row.c.source_id.is_(None), row.c.source_id != stage.c.source_id),
                value.is_distinct_from(own.c[unique.name]),
                ~select(mover.c.source_id)
                .where(mover.c.source_id == row.c.source_id, mover.c[unique.name] != row.c[unique.name])
                .exists(),
            )

        holder, holder_on = _probe(conn, target, "holder", holds_value, "id", "source_id")
        query = (
            select(stage.c.source_id, holder.c.id, holder.c.source_id)
            .select_from(stage.outerjoin(own, own_on).join(holder, holder_on))
            .where(~_stale(stage.c.source_updated_at, own))
        )
        for source_id, holder_id, holder_source_id in conn.execute(query):
            owner = (
                f"synced row with source_id {holder_source_id}" if holder_source_id else "a row created through the API"
            )
            message = f"{unique.name} is already used by {owner} (id {holder_id})"
            colliding.setdefault(source_id, []).append({"field": unique.name, "message": message})
    if not colliding:
        return
    kept = []
    for index, record in batch.records:
        if record.source_id in colliding:
            batch.reject(index, record.source_id, colliding[record.source_id])
        else:
            kept.append((index, record))
    batch.records = kept
    conn.execute(stage.delete().where(stage.c.source_id.in_(list(colliding))))


def _classify_and_write(conn, entity: Entity, target: Table, stage: Table, staged: int, superseded: int):
    if staged == 0:
        return {"inserted": 0, "updated": 0, "unchanged": 0, "stale": superseded}
    own, own_on = _probe(
        conn, target, "own", lambda row: row.c.source_id == stage.c.source_id, "id", "source_updated_at", "deleted_at"
    )
    existing, stale = conn.execute(
        select(
            func.count(own.c.id),
            func.coalesce(func.sum(case((_stale(stage.c.source_updated_at, own), 1), else_=0)), 0),
        ).select_from(stage.outerjoin(own, own_on))
    ).one()

    now = literal(datetime.now(UTC), UTCDateTime)
    names = ["source_id", *entity.field_names, "created_at", "updated_at", "source_updated_at", "synced_at"]
    rows = select(
        stage.c.source_id,
        *(stage.c[name] for name in entity.field_names),
        func.coalesce(stage.c.created_at, stage.c.source_updated_at),
        func.coalesce(stage.c.updated_at, stage.c.source_updated_at),
        stage.c.source_updated_at,
        now,
    ).where(true())  # SQLite parses INSERT ... SELECT ... ON CONFLICT only with a WHERE
    insert = _insert_for(conn)(target).from_select(names, rows)
    incoming = insert.excluded
    content = [*entity.field_names, "created_at", "updated_at"]
    # The version guard: newer wins; as new but different wins unless the row is a tombstone.
    newer = or_(
        incoming.source_updated_at > target.c.source_updated_at,
        and_(
            incoming.source_updated_at == target.c.source_updated_at,
            target.c.deleted_at.is_(None),
            or_(*(target.c[name].is_distinct_from(incoming[name]) for name in content)),
        ),
    )
    merge = insert.on_conflict_do_update(
        index_elements=[target.c.source_id],
        set_={**{name: incoming[name] for name in names if name != "source_id"}, "deleted_at": None},
        where=newer,
    ).returning(target.c.id)
    written = len(conn.execute(merge).all())
    inserted = staged - existing
    updated = written - inserted
    return {
        "inserted": inserted,
        "updated": updated,
        "unchanged": existing - stale - updated,
        "stale": stale + superseded,
    }


# --- delete -----------------------------------------------------------------------------------


def parse_deletes(body: bytes, content_type: str, max_records: int) -> Batch:
    items, parse_errors = parse_body(body, content_type, max_records)
    return validate(items, parse_errors, BULK_DELETE_RECORDS)


def delete(conn: Connection, target: Table, batch: Batch) -> BulkResult:
    """Tombstone the rows of the given source ids, unless the row is newer than the delete."""
    keep_latest_per_source_id(batch)
    stage = stage_table(target, "delete")
    staged = len(batch.records)
    with begin_write(conn):
        if conn.dialect.name == "postgresql":
            # One index probe per key; a hash join would scan the whole table for a few deletes.
            conn.exec_driver_sql("SET LOCAL jit = off")
            conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
            conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        _fill_stage(conn, stage, [record for _, record in batch.records])
        own, own_on = _probe(
            conn,
            target,
            "own",
            lambda row: row.c.source_id == stage.c.source_id,
            "id",
            "source_updated_at",
            "deleted_at",
        )
        # A delete wins over an upsert of the same version: in Base A it came after it.
        stale = and_(own.c.source_updated_at.is_not(None), stage.c.source_updated_at < own.c.source_updated_at)
        existing, stale_count, already = conn.execute(
            select(
                func.count(own.c.id),
                func.coalesce(func.sum(case((stale, 1), else_=0)), 0),
                func.coalesce(func.sum(case((and_(~stale, own.c.deleted_at.is_not(None)), 1), else_=0)), 0),
            ).select_from(stage.outerjoin(own, own_on))
        ).one()
        now = literal(datetime.now(UTC), UTCDateTime)
        conn.execute(
            update(target)
            .where(
                target.c.source_id == stage.c.source_id,
                or_(target.c.source_updated_at.is_(None), target.c.source_updated_at <= stage.c.source_updated_at),
            )
            .values(
                deleted_at=func.coalesce(target.c.deleted_at, now),
                source_updated_at=stage.c.source_updated_at,
                synced_at=now,
            )
        )
    return BulkResult(
        received=batch.received,
        inserted=0,
        updated=0,
        unchanged=already,
        stale=stale_count + batch.superseded,
        deleted=existing - stale_count - already,
        not_found=staged - existing,
        rejected=len(batch.rejected),
        errors=sorted(batch.rejected, key=lambda r: r.index),
    )


__all__ = ["Batch", "BulkDeleteRecord", "delete", "parse_body", "parse_deletes", "upsert", "validate"]
