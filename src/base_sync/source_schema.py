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
    BigInteger,
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    text,
)

from base_sync.backends import BaseABackend, backend_of
from baseab_contract.entities import ENTITIES, Entity
from baseab_contract.sql_types import sql_type

DELETE_LOG = "delete_log"


def build_tables(backend: BaseABackend) -> tuple[MetaData, dict[str, Table]]:
    """Base A's entity tables on a kind of database; the metadata holds the delete log too."""
    metadata = MetaData()
    tables = {name: _table(metadata, entity, backend) for name, entity in ENTITIES.items()}
    _delete_log(metadata, backend)
    return metadata, tables


def _table(metadata: MetaData, entity: Entity, backend: BaseABackend) -> Table:
    stamp = backend.stamp_type
    key = Column("id", backend.key_type, primary_key=True, autoincrement=True)
    created = Column("created_at", stamp, nullable=False, server_default=text(backend.now_sql))
    updated = Column("updated_at", stamp, nullable=False, server_default=text(backend.touch_default()))
    table = Table(
        entity.name,
        metadata,
        key,
        *(Column(f.name, sql_type(f), nullable=not f.required, unique=f.unique) for f in entity.fields),
        created,
        updated,
    )
    Index(f"ix_{entity.name}_updated_at_id", table.c.updated_at, table.c.id)
    backend.extend_table(table)
    return table


def _delete_log(metadata: MetaData, backend: BaseABackend) -> Table:
    stamp = backend.stamp_type
    table = Table(
        DELETE_LOG,
        metadata,
        Column("seq", backend.key_type, primary_key=True, autoincrement=True),
        Column("entity", String(64), nullable=False),
        Column("id", BigInteger, nullable=False),  # the deleted row's key
        Column("updated_at", stamp, nullable=False),  # and its last version
        Column("deleted_at", stamp, nullable=False, server_default=text(backend.now_sql)),
    )
    # The sync reads one entity's deletes in (deleted_at, seq) order after a position.
    Index(f"ix_{DELETE_LOG}_entity_deleted_at_seq", table.c.entity, table.c.deleted_at, table.c.seq)
    return table


def delete_trigger_name(table: str) -> str:
    """The delete-log trigger of a source table (named after the table: an entity's mapped table
    may differ from the platform's own table of the same entity in one database)."""
    return f"{table}_log_delete"


def _delete_trigger(entity: str, backend: BaseABackend) -> str:
    body = backend.delete_trigger_body(
        f"INSERT INTO {DELETE_LOG} (entity, id, updated_at) VALUES ('{entity}', OLD.id, OLD.updated_at)"
    )
    return f"CREATE TRIGGER {delete_trigger_name(entity)} AFTER DELETE ON {entity} FOR EACH ROW {body}"


def create_schema(engine: Engine) -> dict[str, Table]:
    """Create Base A's tables and delete triggers where they are missing; return the tables."""
    backend = backend_of(engine)
    metadata, tables = build_tables(backend)
    metadata.create_all(engine)
    present = set(existing_triggers(engine))
    with engine.begin() as conn:
        for entity in ENTITIES:
            if delete_trigger_name(entity) not in present:
                conn.execute(text(_delete_trigger(entity, backend)))
    return tables


def install_delete_log(engine: Engine, mapping, entities: list[str]) -> list[str]:
    """The operator's opt-in on a Base A the platform did not create (`base-a install-delete-log`):
    the `delete_log` table and, on each entity's mapped table, an AFTER DELETE trigger writing the
    entity, the deleted row's key and a version. Nothing else ever runs DDL on such a Base A.

    The version is the row's UTC cursor when it is a TIMESTAMP (as the platform's own trigger logs
    it), else the time of the delete (`now_sql`): a local DATETIME's wall time cannot become UTC in a
    trigger portably, and the delete's time is at or after any version the row had (unless its stamp
    lies in the future, which the watermark never passes either). A row whose cursor is NULL gets
    the delete's time too, so a trigger never makes the owner's DELETE fail."""
    backend = backend_of(engine)
    metadata, _ = build_tables(backend)
    metadata.tables[DELETE_LOG].create(engine, checkfirst=True)
    present = set(existing_triggers(engine))
    installed = []
    with engine.begin() as conn:
        for entity in entities:
            spec = mapping.spec.entities[entity]
            stamps = [s.column for s in spec.cursor or [] if s.type == "timestamp"]
            timestamps_only = len(stamps) == len(spec.cursor or [])
            version = backend.now_sql
            if stamps and timestamps_only:
                version = f"COALESCE({', '.join(f'OLD.{c}' for c in stamps)}, {backend.now_sql})"
            statement = backend.delete_trigger_body(
                f"INSERT INTO {DELETE_LOG} (entity, id, updated_at) VALUES ('{entity}', OLD.{spec.key}, {version})"
            )
            name = delete_trigger_name(spec.table)
            if name not in present:
                conn.execute(text(f"CREATE TRIGGER {name} AFTER DELETE ON {spec.table} FOR EACH ROW {statement}"))
            installed.append(name)
    return installed


def existing_triggers(engine: Engine) -> list[str]:
    """The names of the triggers in Base A's database."""
    with engine.connect() as conn:
        return list(conn.execute(text(backend_of(engine).triggers_query)).scalars())
