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

from sqlalchemy import Engine, Table, func, select, tuple_
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
        newest = select(func.max(table.c.id)).scalar_subquery()
        old = [table.c.deleted_at < before, table.c.id < newest]
        purged.tombstones[entity] = _remove(engine, table, (table.c.id,), old, dry_run, batch_rows)
    closed = [REJECTIONS.c.resolved_at < before]
    keys = (REJECTIONS.c.entity, REJECTIONS.c.source_id)
    purged.rejections = _remove(engine, REJECTIONS, keys, closed, dry_run, batch_rows)
    return purged


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
        with engine.connect() as conn, begin_write(conn):
            count = conn.execute(table.delete().where(chosen)).rowcount
        removed += count
        if count < batch_rows:
            return removed
