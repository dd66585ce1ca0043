"""What Base B keeps only for a while, removed once it is older than a horizon: tombstones (deleted
rows, kept so that a late write of an older version cannot bring them back) and closed rejections
(records a pipeline sent that a later write settled). `flask --app api_service purge --older-than DAYS`.

In batches, each its own short transaction: the API and the pipelines write on meanwhile. A table's
newest row is never removed, so a database that reuses the highest key (SQLite's INTEGER PRIMARY KEY)
cannot give a deleted row's id to a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, Table, func, or_, select, tuple_
from sqlalchemy.sql import ColumnElement

from api_service.db import begin_write
from api_service.models import REJECTIONS, TABLES

BATCH_ROWS = 5_000


@dataclass
class Purged:
    tombstones: dict[str, int] = field(default_factory=dict)  # entity: rows removed (or, dry, to remove)
    rejections: int = 0


def purge(engine: Engine, before: datetime, dry_run: bool = False, batch_rows: int = BATCH_ROWS) -> Purged:
    """Remove the tombstones deleted before `before` and the rejections closed before it; with
    `dry_run`, count them only."""
    purged = Purged()
    for entity, table in TABLES.items():
        purged.tombstones[entity] = _remove(
            engine, table, (table.c.id,), old_tombstones(table, before), dry_run, batch_rows
        )
    closed = [REJECTIONS.c.resolved_at < before]
    keys = (REJECTIONS.c.entity, REJECTIONS.c.source_id)
    purged.rejections = _remove(engine, REJECTIONS, keys, closed, dry_run, batch_rows)
    return purged


def old_tombstones(table: Table, before: datetime) -> list[ColumnElement]:
    """The rows of an entity's table the purge removes: deleted and last written before `before`,
    the newest row aside (found by the tombstones' partial index on deleted_at)."""
    newest = select(func.max(table.c.id)).scalar_subquery()
    # Aged by its last write: a newer delete rewrites a tombstone's version (and synced_at) but
    # keeps its first deleted_at, and is as young as that delete for a replay.
    last_written = or_(table.c.synced_at.is_(None), table.c.synced_at < before)
    return [table.c.deleted_at < before, last_written, table.c.id < newest]


def _remove(
    engine: Engine, table: Table, keys: tuple, where: list[ColumnElement], dry_run: bool, batch_rows: int
) -> int:
    if dry_run:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    removed = 0
    while True:
        batch = select(*keys).where(*where).limit(batch_rows)
        chosen = keys[0].in_(batch) if len(keys) == 1 else tuple_(*keys).in_(batch)
        # The conditions again on the DELETE itself: PostgreSQL re-checks a row a concurrent write
        # changed (a merge bringing a tombstone back, a rejection reopened) against the statement's
        # own conditions after waiting for it, not against the subquery's choice.
        with engine.connect() as conn, begin_write(conn):
            count = conn.execute(table.delete().where(chosen, *where)).rowcount
        removed += count
        if count == 0:  # a batch cut short by a concurrent write is no sign the rest is done
            return removed
