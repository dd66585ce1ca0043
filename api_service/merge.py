"""Merging validated bulk records into Base B, with the version guard.

Records are staged in a per-connection temporary table (binary COPY on PostgreSQL) and merged
with one `INSERT ... ON CONFLICT (source_id) DO UPDATE ... WHERE <guard>`. The guard makes a
write older than the row's `source_updated_at` a no-op ("stale"), keeps tombstones against
older writes, and makes a re-sent batch change nothing ("unchanged"). Every lookup from the
stage into Base B is an index probe, whatever the planner thinks of the table's size.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from functools import cache
from operator import attrgetter

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    Connection,
    Date,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from api_service.backends import CopyRefused, backend_of
from api_service.bulk_input import Batch, keep_latest_per_source_id, reject_duplicate_unique_values
from api_service.db import begin_write
from api_service.models import UTCDateTime
from api_service.schemas import BulkDeletePlan, BulkResult, SyncVersion
from api_service.versions import VersionBounds
from baseab_contract.bulk_format import UNIQUE_TAKEN
from baseab_contract.entities import Entity, Kind

log = logging.getLogger(__name__)


# --- staging ----------------------------------------------------------------------------------

_SYSTEM_COLUMNS = frozenset(
    {"id", "source_id", "created_at", "updated_at", "source_updated_at", "synced_at", "deleted_at"}
)


@cache
def stage_table(target: Table, kind: str) -> Table:
    """A per-connection temporary table shaped like the request's records."""
    if kind == "upsert":
        names = ["source_id", *[c for c in target.c.keys() if c not in _SYSTEM_COLUMNS], "created_at", "updated_at"]
    else:
        names = ["source_id"]
    columns = [Column(name, target.c[name].type) for name in names]
    columns.append(Column("source_updated_at", UTCDateTime))
    if kind == "upsert":
        columns.append(Column("replaces_version", UTCDateTime))
    return Table(
        f"stage_{kind}_{target.name}",
        MetaData(),
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


def _fill_stage(conn: Connection, stage: Table, records: list) -> None:
    """Load the records into the (emptied) stage: binary COPY on PostgreSQL, executemany elsewhere."""
    conn.execute(CreateTable(stage, if_not_exists=True))
    conn.execute(stage.delete())
    staged = backend_of(conn).fill_stage(conn, stage, records)
    if staged != len(records):
        raise RuntimeError(f"staged {staged} of {len(records)} records into {stage.name}")


def _probe(conn: Connection, table: Table, name: str, condition, *columns: str):
    """The one matching row of `table` for each stage row, as a joinable FROM item.

    On PostgreSQL a LATERAL ... LIMIT 1 subquery: it can only run as one index probe per staged
    row, whatever the planner thinks of the table's size (a hash join would scan the table).
    """
    return backend_of(conn).probe(table.alias(name), condition, columns, name)


def _own_row(conn: Connection, target: Table, stage: Table, *columns: str):
    """Base B's row with the staged record's source_id, if any (a probe, see `_probe`)."""
    return _probe(conn, target, "own", lambda row: row.c.source_id == stage.c.source_id, *columns)


# --- upsert -----------------------------------------------------------------------------------


def _stale(version, row, bounds: VersionBounds, replaces=None):
    """The record is older than the row (or as old as its tombstone, unless the request restores at
    ties), and does not replace the row's exact version (`replaces`, see `_write_replacements`). A
    row whose version is outside the admitted range (stored before the range was enforced) never
    wins: any valid write repairs it."""
    return and_(
        row.c.source_updated_at.is_not(None),
        bounds.trusted(row.c.source_updated_at),
        or_(version < row.c.source_updated_at, and_(version == row.c.source_updated_at, _tombstone_wins(row, bounds))),
        true() if replaces is None else replaces.is_distinct_from(row.c.source_updated_at),
    )


def _tombstone_wins(row, bounds: VersionBounds):
    """SQL: at an equal version, the row's tombstone keeps it deleted."""
    return false() if bounds.restore_at_ties else row.c.deleted_at.is_not(None)


def upsert(conn: Connection, entity: Entity, target: Table, batch: Batch, bounds: VersionBounds) -> BulkResult:
    """Merge a validated batch into Base B and count what happened to each record."""
    keep_latest_per_source_id(batch)
    reject_duplicate_unique_values(batch, entity)
    try:
        with begin_write(conn):
            counts = _merge(conn, entity, target, batch, bounds)
    except IntegrityError as first:
        counts, conflict = None, first.orig
        if _passes_on(entity):
            # Rows of this batch pass values along (two rows swapping emails, a chain): the index
            # checks each row as it is written, so free the values the batch moves first, then merge.
            log.info("bulk merge of %s hit a unique conflict, merging again with the moved values freed", entity.name)
            try:
                with begin_write(conn):
                    counts = _merge(conn, entity, target, batch, bounds, passing_on=True)
            except (IntegrityError, _NotPassedOn) as again:
                conflict = getattr(again, "orig", again)
        if counts is None:
            # Another writer took a unique value between our check and our merge, or a moved value's
            # record was not written: record by record, so only real conflicts are rejected.
            log.warning("bulk merge of %s hit a unique conflict, merging one by one: %s", entity.name, conflict)
            with begin_write(conn):
                counts = _merge_one_by_one(conn, entity, target, batch, bounds)
    return BulkResult(
        received=batch.received,
        rejected=len(batch.rejected),
        errors=sorted(batch.rejected, key=lambda r: r.index),
        **counts,
    )


def _merge(
    conn: Connection, entity: Entity, target: Table, batch: Batch, bounds: VersionBounds, passing_on: bool = False
) -> dict[str, int]:
    backend_of(conn).tune_merge(conn)
    if not passing_on and _copy_if_all_new(conn, entity, target, batch):
        return {"inserted": len(batch.records), "updated": 0, "unchanged": 0, "stale": batch.superseded}
    stage = stage_table(target, "upsert")
    _fill_stage(conn, stage, [record for _, record in batch.records])
    _reject_unique_collisions(conn, entity, target, stage, batch, bounds)
    moved = _free_moved_values(conn, entity, target, stage, bounds) if passing_on else {}
    counts = _classify_and_write(
        conn,
        entity,
        target,
        stage,
        bounds,
        staged=len(batch.records),
        superseded=batch.superseded,
        replacing=_replacing(batch),
    )
    _check_passed_on(conn, target, moved)
    return counts


_PLACEHOLDER = "~passed on~"  # and the row's id: unique, and 30 characters at most
_TEXTS = (Kind.STRING, Kind.TEXT, Kind.EMAIL)


class _NotPassedOn(Exception):
    """A row kept its placeholder: the merge did not write its record after all (a write in between)."""


def _passes_on(entity: Entity) -> bool:
    """Whether every unique field can hold a placeholder (text of 30 characters or more)."""
    return all(f.kind in _TEXTS and (f.max_length or 255) >= 30 for f in entity.unique_fields)


def _check_passed_on(conn: Connection, target: Table, moved: dict[str, list[int]]) -> None:
    for name, keys in moved.items():
        for start in range(0, len(keys), 1000):
            held = target.c.source_id.in_(keys[start : start + 1000]) & target.c[name].startswith(_PLACEHOLDER)
            if conn.execute(select(target.c.source_id).where(held).limit(1)).first() is not None:
                raise _NotPassedOn(f"a row kept its placeholder for {name}: its record was not written")


def _free_moved_values(
    conn: Connection, entity: Entity, target: Table, stage: Table, bounds: VersionBounds
) -> dict[str, list[int]]:
    """Give every live row whose record this merge writes with another unique value a placeholder
    (unique: it holds the row's id) until the merge, in this transaction, writes the new one: a
    value the batch passes from row to row is then free when its new holder is written. The rows
    held are locked first, in source_id order; a row that keeps its placeholder after the merge (a
    write in between made its record stale) rolls the whole request back (`_check_passed_on`).
    {unique field: the keys given a placeholder}."""
    keys = select(stage.c.source_id)
    conn.execute(
        backend_of(conn).for_update(
            select(target.c.id).where(target.c.source_id.in_(keys)).order_by(target.c.source_id), target
        )
    ).all()
    names = [unique.name for unique in entity.unique_fields]
    own, own_on = _own_row(conn, target, stage, "source_updated_at", "deleted_at", *names)
    written = ~_stale(stage.c.source_updated_at, own, bounds, stage.c.replaces_version)
    found = {}
    for name in names:
        # The keys first, one probe per staged record: correlated into the UPDATE, the probe ran per row of the table.
        moved = (
            conn.execute(
                select(stage.c.source_id)
                .select_from(stage.join(own, own_on))
                .where(written, own.c.deleted_at.is_(None), stage.c[name] != own.c[name])
            )
            .scalars()
            .all()
        )
        placeholder = literal(_PLACEHOLDER, String) + cast(target.c.id, String)  # ||: SQLite 3.40 has no concat()
        for start in range(0, len(moved), 1000):
            conn.execute(
                update(target).where(target.c.source_id.in_(moved[start : start + 1000])).values({name: placeholder})
            )
        found[name] = moved
    return found


def _replacing(batch: Batch) -> bool:
    """Whether a record names a version it replaces (rare: only then is the extra write run)."""
    return any(record.replaces_version is not None for _, record in batch.records)


def _copy_if_all_new(conn: Connection, entity: Entity, target: Table, batch: Batch) -> bool:
    """Initial loads, where the backend can COPY (PostgreSQL): when no key of the batch is in Base B
    (not even as a tombstone), every record is an insert, so COPY them straight into the table. The
    unique index on source_id decides: a key Base B holds, like any other constraint the table
    refuses (an email held by another row), rolls back to the savepoint and returns False, and the
    staged merge then decides record by record. A probe of three keys first sends a batch of
    updates straight to the merge."""
    backend = backend_of(conn)
    if not batch.records or not backend.can_copy:
        return False
    records = batch.records
    sample = {records[0][1].source_id, records[len(records) // 2][1].source_id, records[-1][1].source_id}
    if conn.execute(select(target.c.id).where(target.c.source_id.in_(sample)).limit(1)).first() is not None:
        return False
    names = ["source_id", *entity.field_names]
    now = datetime.now(UTC)
    row_of = attrgetter(*names)
    columns = [*names, "created_at", "updated_at", "source_updated_at", "synced_at"]

    def row(record) -> tuple:
        version = record.source_updated_at
        return (*row_of(record), record.created_at or version, record.updated_at or version, version, now)

    # Keys in order, as the merge takes them: two writers of the same keys queue, never deadlock.
    rows = (row(record) for _, record in sorted(batch.records, key=lambda pair: pair[1].source_id))
    savepoint = conn.begin_nested()
    try:
        backend.copy_rows(conn, target, columns, rows)
    except CopyRefused as exc:
        # A key another writer holds or has just written: the merge below settles each record.
        savepoint.rollback()
        log.info("direct COPY into %s refused (%s); merging through the stage", target.name, exc.reason)
        return False
    savepoint.commit()
    return True


def _merge_one_by_one(conn, entity: Entity, target: Table, batch: Batch, bounds: VersionBounds) -> dict[str, int]:
    totals = {"inserted": 0, "updated": 0, "unchanged": 0, "stale": batch.superseded}
    known = set(
        conn.execute(
            select(target.c.source_id).where(target.c.source_id.in_([r.source_id for _, r in batch.records]))
        ).scalars()
    )
    # Rows Base B already holds first: a unique value they give up is then free for a new row.
    pending = sorted(batch.records, key=lambda pair: pair[1].source_id not in known)
    stage = stage_table(target, "upsert")
    # Pass after pass while one applies something: a record refused for a value another row of the
    # request gives up later in the pass (a higher key) goes through in the next one. A cycle (two
    # rows swapping values) makes no progress, and a chain longer than the passes runs out: those
    # stay refused, with their reasons (the sync sends unique_taken refusals again later).
    for passes_left in range(_MERGE_PASSES, 0, -1):
        refused: list[tuple[int, BaseModel, list[dict[str, str]]]] = []
        for index, record in pending:
            single = Batch(received=1, records=[(index, record)])
            savepoint = conn.begin_nested()
            try:
                _fill_stage(conn, stage, [record])
                _reject_unique_collisions(conn, entity, target, stage, single, bounds)
                counts = _classify_and_write(
                    conn,
                    entity,
                    target,
                    stage,
                    bounds,
                    staged=len(single.records),
                    superseded=0,
                    replacing=_replacing(single),
                )
                savepoint.commit()
            except IntegrityError as exc:
                savepoint.rollback()
                message = str(exc.orig).splitlines()[0]
                refused.append(
                    (index, record, [{"field": "record", "message": f"conflicts with another row: {message}"}])
                )
                continue
            if single.rejected:
                refused.append((index, record, single.rejected[0].reasons))
                continue
            for key, value in counts.items():
                totals[key] += value
        if not refused or len(refused) == len(pending) or passes_left == 1:  # done, or no progress: final
            for index, record, reasons in refused:
                batch.reject(index, record.source_id, reasons)
            break
        pending = [(index, record) for index, record, _ in refused]
    return totals


_MERGE_PASSES = 8  # a chain of rows handing a unique value on, each to the next, up to this long


def _reject_unique_collisions(
    conn, entity: Entity, target: Table, stage: Table, batch: Batch, bounds: VersionBounds
) -> None:
    """Reject records whose unique value another live row holds (API-created or synced)."""
    if not batch.records:
        return
    colliding: dict[int, list[dict[str, str]]] = {}
    for unique in entity.unique_fields:
        value = stage.c[unique.name]
        own, own_on = _own_row(conn, target, stage, "source_id", "source_updated_at", "deleted_at", unique.name)
        mover = stage.alias("mover")

        def holds_value(row, unique=unique, value=value, own=own, mover=mover):
            # Another live row holds the value, and does not give it up in this same batch.
            return and_(
                row.c[unique.name] == value,
                row.c.deleted_at.is_(None),
                or_(row.c.source_id.is_(None), row.c.source_id != stage.c.source_id),
                # The record keeps its own value, unless its row is a tombstone: that holds none.
                or_(value.is_distinct_from(own.c[unique.name]), own.c.deleted_at.is_not(None)),
                ~select(mover.c.source_id)
                .where(mover.c.source_id == row.c.source_id, mover.c[unique.name] != row.c[unique.name])
                .exists(),
            )

        holder, holder_on = _probe(conn, target, "holder", holds_value, "id", "source_id")
        query = (
            select(stage.c.source_id, holder.c.id, holder.c.source_id)
            .select_from(stage.outerjoin(own, own_on).join(holder, holder_on))
            .where(~_stale(stage.c.source_updated_at, own, bounds, stage.c.replaces_version))
        )
        for source_id, holder_id, holder_source_id in conn.execute(query):
            owner = (
                f"synced row with source_id {holder_source_id}" if holder_source_id else "a row created through the API"
            )
            message = f"{unique.name} is already used by {owner} (id {holder_id})"
            colliding.setdefault(source_id, []).append({"field": unique.name, "message": message, "code": UNIQUE_TAKEN})
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


def _classify_and_write(
    conn,
    entity: Entity,
    target: Table,
    stage: Table,
    bounds: VersionBounds,
    staged: int,
    superseded: int,
    replacing: bool = False,
):
    """Merge the stage into Base B; the counts come from what the merge itself did.

    Counting rows before the write is racy: another writer may commit the same new keys in
    between. So the merge returns, per written row, whether it inserted it (PostgreSQL: a row
    version no transaction deleted, `xmax = 0`); a record it did not write lost to the version
    guard, and telling "stale" from "unchanged" afterwards is safe because the conflicting rows are
    ours now (PostgreSQL locks them even when the guard says no; SQLite holds the write lock).
    """
    if staged == 0:
        return {"inserted": 0, "updated": 0, "unchanged": 0, "stale": superseded}
    now = literal(datetime.now(UTC), UTCDateTime)
    names = ["source_id", *entity.field_names, "created_at", "updated_at", "source_updated_at", "synced_at"]
    rows = (
        select(
            stage.c.source_id,
            *(stage.c[name] for name in entity.field_names),
            func.coalesce(stage.c.created_at, stage.c.source_updated_at),
            func.coalesce(stage.c.updated_at, stage.c.source_updated_at),
            stage.c.source_updated_at,
            now,
        )
        .where(true())  # SQLite parses INSERT ... SELECT ... ON CONFLICT only with a WHERE
        .order_by(stage.c.source_id)  # one lock order for every writer: no deadlock between two merges
    )
    insert = backend_of(conn).insert(target).from_select(names, rows)
    incoming = insert.excluded
    content = [*entity.field_names, "created_at", "updated_at"]
    # The version guard: newer wins; as new but different wins unless the row is a tombstone (which a
    # record of its version restores when the request was made after the delete: restore_ties).
    newer = or_(
        incoming.source_updated_at > target.c.source_updated_at,
        ~bounds.trusted(target.c.source_updated_at),
        and_(
            incoming.source_updated_at == target.c.source_updated_at,
            target.c.deleted_at.is_(None),
            or_(*(target.c[name].is_distinct_from(incoming[name]) for name in content)),
        ),
        and_(incoming.source_updated_at == target.c.source_updated_at, target.c.deleted_at.is_not(None))
        if bounds.restore_at_ties
        else false(),
    )
    merge = insert.on_conflict_do_update(
        index_elements=[target.c.source_id],
        set_={**{name: incoming[name] for name in names if name != "source_id"}, "deleted_at": None},
        where=newer,
    )
    written, inserted = backend_of(conn).write_merge(conn, merge, stage, target, staged)
    replaced = _write_replacements(conn, entity, target, stage, now) if replacing else 0
    own, own_on = _own_row(conn, target, stage, "source_updated_at", "deleted_at")
    stale = conn.execute(
        select(func.count()).select_from(stage.join(own, own_on)).where(_stale(stage.c.source_updated_at, own, bounds))
    ).scalar_one()
    return {
        "inserted": inserted,
        "updated": written - inserted + replaced,
        "unchanged": staged - written - replaced - stale,
        "stale": stale + superseded,
    }


def _write_replacements(conn: Connection, entity: Entity, target: Table, stage: Table, now) -> int:
    """The records older than Base B's row that replace its exact version (`replaces_version`: Base
    A's stamp went back, so the later state carries the earlier stamp). A compare-and-set: written
    only while the row holds that version, so a newer write in between keeps it. After the merge,
    which left them stale but holds their rows' locks: nothing new is locked, no lock order broken."""
    statement = (
        update(target)
        .where(
            target.c.source_id == stage.c.source_id,
            stage.c.replaces_version.is_not(None),
            target.c.source_updated_at == stage.c.replaces_version,
            stage.c.source_updated_at < target.c.source_updated_at,
        )
        .values(
            **{name: stage.c[name] for name in entity.field_names},
            created_at=func.coalesce(stage.c.created_at, stage.c.source_updated_at),
            updated_at=func.coalesce(stage.c.updated_at, stage.c.source_updated_at),
            source_updated_at=stage.c.source_updated_at,
            synced_at=now,
            deleted_at=None,
        )
    )
    return conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount


def plan_delete(conn: Connection, target: Table, batch: Batch, bounds: VersionBounds) -> BulkDeletePlan:
    """What `delete` would answer for the batch, the keys of the live rows it would delete named;
    nothing written and no row locked (the breakers ask before deletes: a plan must neither queue
    behind the merges nor hold them up). A write racing it may change the answer; the delete decides."""
    keep_latest_per_source_id(batch)
    stage = stage_table(target, "delete")
    with conn.begin():
        _fill_stage(conn, stage, [record for _, record in batch.records])
        own, own_on = _own_row(conn, target, stage, "id", "source_updated_at", "deleted_at")
        rows = conn.execute(
            select(
                stage.c.source_id,
                own.c.id.is_not(None).label("held"),
                _delete_loses(own, stage, bounds).label("stale"),
                own.c.deleted_at.is_not(None).label("deleted"),
                own.c.source_updated_at,
            )
            .select_from(stage.outerjoin(own, own_on))
            .order_by(stage.c.source_id)
        ).all()
    held = [row for row in rows if row.held]
    would_delete = [row.source_id for row in held if not row.stale and not row.deleted]
    return BulkDeletePlan(
        received=batch.received,
        inserted=0,
        updated=0,
        unchanged=sum(1 for row in held if not row.stale and row.deleted),
        stale=sum(1 for row in held if row.stale) + batch.superseded,
        deleted=len(would_delete),
        not_found=len(rows) - len(held),
        rejected=len(batch.rejected),
        errors=sorted(batch.rejected, key=lambda r: r.index),
        would_delete=would_delete,
        held_newer=[
            SyncVersion(source_id=row.source_id, version=row.source_updated_at)
            for row in held
            if row.stale and not row.deleted
        ],
    )


def _delete_loses(own, stage: Table, bounds: VersionBounds):
    """SQL: the row is newer than the delete. A delete wins over an upsert of the same version: in
    Base A it came after it."""
    return and_(
        own.c.source_updated_at.is_not(None),
        bounds.trusted(own.c.source_updated_at),
        stage.c.source_updated_at < own.c.source_updated_at,
    )


def delete(conn: Connection, target: Table, batch: Batch, bounds: VersionBounds) -> BulkResult:
    """Tombstone the rows of the given source ids, unless the row is newer than the delete."""
    keep_latest_per_source_id(batch)
    stage = stage_table(target, "delete")
    staged = len(batch.records)
    with begin_write(conn):
        backend_of(conn).tune_delete(conn)
        _fill_stage(conn, stage, [record for _, record in batch.records])
        # Lock the rows first: the counts below then describe exactly the rows the update sees
        # (a concurrent upsert of one of them waits for this transaction, or went before it).
        held = backend_of(conn).for_update(
            select(target.c.id).where(target.c.source_id == stage.c.source_id).order_by(target.c.source_id), target
        )
        locked = conn.execute(held).scalars().all()
        own, own_on = _own_row(conn, target, stage, "id", "source_updated_at", "deleted_at")
        stale = _delete_loses(own, stage, bounds)
        # Counted among the locked rows only: a row an upsert committed after the lock is not theirs.
        mine = own.c.id.in_(locked)
        existing, stale_count, already = conn.execute(
            select(
                func.count(case((mine, own.c.id))),
                func.coalesce(func.sum(case((and_(mine, stale), 1), else_=0)), 0),
                func.coalesce(func.sum(case((and_(mine, ~stale, own.c.deleted_at.is_not(None)), 1), else_=0)), 0),
            ).select_from(stage.outerjoin(own, own_on))
        ).one()
        now = literal(datetime.now(UTC), UTCDateTime)

        def tombstone(where) -> int:
            """Mark deleted the rows `where` picks that are not newer than the delete; how many."""
            guarded = or_(
                target.c.source_updated_at.is_(None),
                ~bounds.trusted(target.c.source_updated_at),
                target.c.source_updated_at <= stage.c.source_updated_at,
            )
            statement = (
                update(target)
                .where(where, target.c.source_id == stage.c.source_id, guarded)
                .values(
                    deleted_at=func.coalesce(target.c.deleted_at, now),
                    source_updated_at=stage.c.source_updated_at,
                    synced_at=now,
                )
            )
            return conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount

        if locked:
            tombstone(target.c.id.in_(locked))
        # A key Base B does not hold gets a tombstone of its own: without it, an older write arriving
        # later (a replay, another partition, an upsert racing this delete) would bring the row back.
        found = select(target.c.source_id).where(target.c.id.in_(locked))
        created = set(conn.execute(_tombstones(conn, target, stage, now, stage.c.source_id.not_in(found))).scalars())
        # Keys an upsert committed between the lock and the insert: their rows are visible now.
        raced = staged - existing - len(created)
        raced_deleted = tombstone(target.c.source_id.not_in(found) & target.c.source_id.not_in(created)) if raced else 0
    return BulkResult(
        received=batch.received,
        inserted=0,
        updated=0,
        unchanged=already,
        stale=stale_count + batch.superseded + raced - raced_deleted,
        deleted=existing - stale_count - already + raced_deleted,
        not_found=len(created),
        rejected=len(batch.rejected),
        errors=sorted(batch.rejected, key=lambda r: r.index),
    )


def _tombstones(conn: Connection, target: Table, stage: Table, now, where):
    """INSERT a deleted row for each staged key `where` picks (ON CONFLICT DO NOTHING), RETURNING the keys it
    inserted: the version and the delete's time, and a blank of each column that takes no NULL (a
    tombstone is never read: every read skips deleted rows)."""
    blanks = {c.name: literal(_blank(c.type), c.type) for c in target.c if not c.nullable and c.name not in _FILLED}
    names = ["source_id", "source_updated_at", "created_at", "updated_at", "synced_at", "deleted_at", *blanks]
    rows = (
        select(
            stage.c.source_id,
            stage.c.source_updated_at,
            stage.c.source_updated_at,
            stage.c.source_updated_at,
            now,
            now,
            *blanks.values(),
        )
        .where(where)
        .order_by(stage.c.source_id)
    )  # SQLite parses INSERT ... SELECT ... ON CONFLICT only with a WHERE
    insert = backend_of(conn).insert(target).from_select(names, rows)
    return insert.on_conflict_do_nothing(index_elements=[target.c.source_id]).returning(target.c.source_id)


_FILLED = ("id", "source_id", "source_updated_at", "created_at", "updated_at", "synced_at", "deleted_at")


def _blank(kind):
    if isinstance(kind, Numeric):
        return 0
    if isinstance(kind, Date):
        return date(1970, 1, 1)
    return ""
