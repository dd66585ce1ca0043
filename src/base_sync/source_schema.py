"""Base A's operational tables, derived from the same entity declarations as Base B.

Each table has `id`, the entity's data fields, `created_at` and `updated_at`. `updated_at` is the
change cursor: the database itself maintains it on every change (MySQL's ON UPDATE clause, a
trigger on SQLite), and an index on (updated_at, id) serves the incremental extract.

A hard delete leaves no row to read, so an AFTER DELETE trigger on each table writes the deleted
key and its last version to `delete_log`: the sync reads the deletes since its last position
there, at a cost proportional to the deletes, instead of comparing every key on both sides.
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
    String,
    Table,
    event,
    text,
)
from sqlalchemy.dialects import mysql

from baseab_contract.entities import ENTITIES, Entity
from baseab_contract.sql_types import sql_type

DELETE_LOG = "delete_log"
_MYSQL_NOW = "CURRENT_TIMESTAMP(6)"
# Six fractional digits, the text SQLAlchemy writes and compares against on SQLite.
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


def build_tables(dialect: str) -> tuple[MetaData, dict[str, Table]]:
    """Base A's entity tables for a dialect ("mysql" or "sqlite"); the metadata holds the delete log too."""
    metadata = MetaData()
    tables = {name: _table(metadata, entity, dialect) for name, entity in ENTITIES.items()}
    _delete_log(metadata, dialect)
    return metadata, tables


def _stamps(dialect: str):
    """The key and timestamp types, and the server default of "now", of a dialect."""
    if dialect == "mysql":
        # TIMESTAMP is stored in UTC; readers set their session time zone to UTC (source.py).
        return BigInteger, mysql.TIMESTAMP(fsp=6), _MYSQL_NOW
    return Integer, DateTime, _SQLITE_NOW


def _table(metadata: MetaData, entity: Entity, dialect: str) -> Table:
    key_type, stamp, now = _stamps(dialect)
    key = Column("id", key_type, primary_key=True, autoincrement=True)
    created = Column("created_at", stamp, nullable=False, server_default=text(now))
    touch = f"{now} ON UPDATE {now}" if dialect == "mysql" else now
    updated = Column("updated_at", stamp, nullable=False, server_default=text(touch))
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


def _delete_log(metadata: MetaData, dialect: str) -> Table:
    key_type, stamp, now = _stamps(dialect)
    table = Table(
        DELETE_LOG,
        metadata,
        Column("seq", key_type, primary_key=True, autoincrement=True),
        Column("entity", String(64), nullable=False),
        Column("id", BigInteger, nullable=False),  # the deleted row's key
        Column("updated_at", stamp, nullable=False),  # and its last version
        Column("deleted_at", stamp, nullable=False, server_default=text(now)),
    )
    # The sync reads one entity's deletes in (deleted_at, seq) order after a position.
    Index(f"ix_{DELETE_LOG}_entity_deleted_at_seq", table.c.entity, table.c.deleted_at, table.c.seq)
    return table


def delete_trigger_name(entity: str) -> str:
    return f"{entity}_log_delete"


def _delete_trigger(entity: str, dialect: str) -> str:
    body = f"INSERT INTO {DELETE_LOG} (entity, id, updated_at) VALUES ('{entity}', OLD.id, OLD.updated_at)"
    if dialect == "sqlite":
        body = f"BEGIN {body}; END"  # SQLite wants a block; MySQL takes the single statement
    return f"CREATE TRIGGER {delete_trigger_name(entity)} AFTER DELETE ON {entity} FOR EACH ROW {body}"


def create_schema(engine: Engine) -> dict[str, Table]:
    """Create Base A's tables and delete triggers where they are missing; return the tables."""
    metadata, tables = build_tables(engine.dialect.name)
    metadata.create_all(engine)
    present = set(existing_triggers(engine))
    with engine.begin() as conn:
        for entity in ENTITIES:
            if delete_trigger_name(entity) not in present:
                conn.execute(text(_delete_trigger(entity, engine.dialect.name)))
    return tables


def existing_triggers(engine: Engine) -> list[str]:
    """The names of the triggers in Base A's database."""
    if engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
    with engine.connect() as conn:
        return list(conn.execute(text(query)).scalars())
