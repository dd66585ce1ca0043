"""Base A's operational tables, derived from the same entity declarations as Base B.

Each table has `id`, the entity's data fields, `created_at` and `updated_at`. `updated_at` is the
change cursor: the database itself maintains it on every change (MySQL's ON UPDATE clause, a
trigger on SQLite), and an index on (updated_at, id) serves the incremental extract.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    event,
    text,
)
from sqlalchemy.dialects import mysql

from api_service.entities import ENTITIES, Entity
from api_service.models import sql_type

_MYSQL_NOW = "CURRENT_TIMESTAMP(6)"
# Six fractional digits, the text SQLAlchemy writes and compares against on SQLite.
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


def build_tables(dialect: str) -> tuple[MetaData, dict[str, Table]]:
    """Base A's tables for a dialect ("mysql" or "sqlite")."""
    metadata = MetaData()
    tables = {name: _table(metadata, entity, dialect) for name, entity in ENTITIES.items()}
    return metadata, tables


def _table(metadata: MetaData, entity: Entity, dialect: str) -> Table:
    if dialect == "mysql":
        key = Column("id", BigInteger, primary_key=True, autoincrement=True)
        # TIMESTAMP is stored in UTC; readers set their session time zone to UTC (source.py).
        stamp = mysql.TIMESTAMP(fsp=6)
        created = Column("created_at", stamp, nullable=False, server_default=text(_MYSQL_NOW))
        updated = Column(
            "updated_at", stamp, nullable=False, server_default=text(f"{_MYSQL_NOW} ON UPDATE {_MYSQL_NOW}")
        )
    else:
        key = Column("id", Integer, primary_key=True, autoincrement=True)
        created = Column("created_at", DateTime, nullable=False, server_default=text(_SQLITE_NOW))
        updated = Column("updated_at", DateTime, nullable=False, server_default=text(_SQLITE_NOW))
    table = Table(
        entity.name,
        metadata,
        key,
        *(Column(f.name, sql_type(f), nullable=not f.required, unique=f.unique) for f in entity.fields),
        created,
        updated,
    )
    Index(f"ix_{entity.name}_updated_at_id", table.c.updated_at, table.c.id)
    if dialect == "sqlite":
        event.listen(table, "after_create", _sqlite_touch_trigger(entity.name))
    return table


def _sqlite_touch_trigger(name: str):
    # An UPDATE that does not set updated_at itself gets the current time, as MySQL's ON UPDATE does.
    return DDL(  # DDL formats with %, hence the doubled signs
        f"CREATE TRIGGER IF NOT EXISTS {name}_touch AFTER UPDATE ON {name} "
        f"FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at BEGIN "
        f"UPDATE {name} SET updated_at = {_SQLITE_NOW.replace('%', '%%')} WHERE id = NEW.id; END"
    )


def create_schema(engine: Engine) -> dict[str, Table]:
    """Create Base A's tables if they are missing; return them."""
    metadata, tables = build_tables(engine.dialect.name)
    metadata.create_all(engine)
    return tables
