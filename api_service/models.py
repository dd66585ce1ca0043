"""Base B tables, derived from the entity declarations.

Every table has the entity's data columns plus the sync columns: `source_id` (Base A's key, empty
for rows created through the API), `source_updated_at` (the Base A version the row holds, the
version guard), `synced_at` (when a pipeline last wrote it) and `deleted_at` (the tombstone).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

from api_service.backends import backend_of
from baseab_contract.entities import ENTITIES, Entity
from baseab_contract.sql_types import sql_type

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements an INTEGER PRIMARY KEY, so the 64-bit key becomes INTEGER there.
Key = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if backend_of(dialect).naive_timestamps else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def build_table(entity: Entity) -> Table:
    """Base B's table for an entity."""
    table = Table(
        entity.name,
        metadata,
        Column("id", Key, primary_key=True, autoincrement=True),
        Column("source_id", BigInteger, nullable=True),
        *(Column(f.name, sql_type(f), nullable=not f.required) for f in entity.fields),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("source_updated_at", UTCDateTime, nullable=True),
        Column("synced_at", UTCDateTime, nullable=True),
        Column("deleted_at", UTCDateTime, nullable=True),
    )
    # The pipelines match rows by Base A's key; ON CONFLICT needs a unique index on it.
    Index(None, table.c.source_id, unique=True)
    # Verification reads a window of synced versions: (source_updated_at, source_id), as Base A's cursor.
    synced = text("source_id IS NOT NULL")
    Index(None, table.c.source_updated_at, table.c.source_id, postgresql_where=synced, sqlite_where=synced)
    # The purge's batches look for old tombstones: without it each scanned the whole table.
    tombstones = text("deleted_at IS NOT NULL")
    Index(None, table.c.deleted_at, postgresql_where=tombstones, sqlite_where=tombstones)
    for field in entity.unique_fields:
        # Unique among live rows, so a tombstone does not hold its value hostage.
        live = text("deleted_at IS NULL")
        Index(None, table.c[field.name], unique=True, postgresql_where=live, sqlite_where=live)
    return table


TABLES: dict[str, Table] = {name: build_table(entity) for name, entity in ENTITIES.items()}

# Records a pipeline sent that the API rejected: kept until a later write of the same key succeeds,
# so an operator can see them (GET /{entity}/rejections) and replay them. One row per (entity, key).
REJECTIONS = Table(
    "sync_rejections",
    metadata,
    Column("entity", String(64), primary_key=True),
    Column("source_id", BigInteger, primary_key=True, autoincrement=False),
    Column("source_updated_at", UTCDateTime, nullable=True),
    Column("record", Text, nullable=True),  # the record as sent (JSON)
    Column("reasons", Text, nullable=False),  # [{field, message}] (JSON)
    Column("first_rejected_at", UTCDateTime, nullable=False),
    Column("last_rejected_at", UTCDateTime, nullable=False),
    Column("times", Integer, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
)
Index(None, REJECTIONS.c.entity, REJECTIONS.c.resolved_at)

# The batch sync's mark of each entity: a token its commit writes here and keeps with its watermark.
# A Base B restored from a backup holds an older token (or none): the next run compares every key.
SYNC_MARKS = Table(
    "sync_marks",
    metadata,
    Column("entity", String(64), primary_key=True),
    Column("token", String(64), nullable=False),
    Column("marked_at", UTCDateTime, nullable=False),
)
