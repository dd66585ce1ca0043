"""Base A's operational tables, derived from the same entity declarations as Base B.

Each table has `id`, the entity's data fields, `created_at` and `updated_at`. `updated_at` is the
change cursor: the database itself maintains it on every change (MySQL's ON UPDATE clause, a
trigger on SQLite), and an index on (updated_at, id) serves the incremental extract.

A hard delete leaves no row to read, so an AFTER DELETE trigger on each table writes the deleted
key and its last version to `delete_log` (and an AFTER UPDATE trigger the old key of an UPDATE
that changes the key): the sync reads the deletes since its last position there, at a cost
proportional to the deletes, instead of comparing every key on both sides.
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


def key_change_trigger_name(table: str) -> str:
    """The trigger logging the old key of an UPDATE that changes a row's key: for Base B that key
    is gone as surely as a deleted one (Debezium's MySQL connector emits a delete for it too)."""
    return f"{table}_log_key_change"


def log_triggers(table: str, entity: str, key: str, version: str, backend: BaseABackend) -> dict[str, str]:
    """{name: CREATE TRIGGER} of the triggers that write a table's vanished keys to the delete log:
    the key of a deleted row, and the old key of a row whose key an UPDATE changed, each with
    `version` (an expression over OLD) as the version the delete carries."""
    logged = f"INSERT INTO {DELETE_LOG} (entity, id, updated_at) VALUES ('{entity}', OLD.{key}, {version})"
    # A nullable key column: a row without a key was never synced, and the log's id may not be NULL
    # (the owner's DELETE would fail). A key set to NULL is gone from Base B like a changed one.
    keyed = f"OLD.{key} IS NOT NULL"
    changed = f"{keyed} AND (NEW.{key} IS NULL OR OLD.{key} <> NEW.{key})"
    return {
        delete_trigger_name(table): f"CREATE TRIGGER {delete_trigger_name(table)} AFTER DELETE ON {table} "
        f"FOR EACH ROW {backend.trigger_body(logged, when=keyed)}",
        key_change_trigger_name(table): f"CREATE TRIGGER {key_change_trigger_name(table)} AFTER UPDATE ON {table} "
        f"FOR EACH ROW {backend.trigger_body(logged, when=changed)}",
    }


def _create_missing(engine: Engine, triggers: dict[str, str]) -> list[str]:
    """Create those of `triggers` Base A lacks; the names of all of them."""
    present = set(existing_triggers(engine))
    with engine.begin() as conn:
        for name, create in triggers.items():
            if name not in present:
                conn.execute(text(create))
    return list(triggers)


def create_schema(engine: Engine) -> dict[str, Table]:
    """Create Base A's tables and delete-log triggers where they are missing; return the tables."""
    backend = backend_of(engine)
    metadata, tables = build_tables(backend)
    metadata.create_all(engine)
    triggers = {}
    for entity in ENTITIES:
        triggers |= log_triggers(entity, entity, "id", "OLD.updated_at", backend)
    _create_missing(engine, triggers)
    return tables


def install_delete_log(engine: Engine, mapping, entities: list[str]) -> list[str]:
    """The operator's opt-in on a Base A the platform did not create (`base-a install-delete-log`):
    the `delete_log` table and, on each entity's mapped table, the triggers writing the entity, the
    vanished key (deleted, or changed by an UPDATE) and a version. Nothing else ever runs DDL on
    such a Base A. Running it again adds what is missing (a trigger a later version added).

    The version is the row's UTC cursor when it is a TIMESTAMP (as the platform's own trigger logs
    it), else the time of the delete (`now_sql`): a local DATETIME's wall time cannot become UTC in a
    trigger portably, and the delete's time is at or after any version the row had, unless its stamp
    lies in the future: that version beats the delete, and the row stays in Base B until the key
    comparison (the run warns, naming the key: `sync._warn_held_newer`). A row whose cursor is NULL gets
    the delete's time too, so a trigger never makes the owner's DELETE fail."""
    backend = backend_of(engine)
    metadata, _ = build_tables(backend)
    metadata.tables[DELETE_LOG].create(engine, checkfirst=True)
    triggers = {}
    for entity in entities:
        spec = mapping.spec.entities[entity]
        stamps = [s.column for s in spec.cursor or [] if s.type == "timestamp"]
        version = backend.now_sql
        if stamps and len(stamps) == len(spec.cursor or []):
            version = f"COALESCE({', '.join(f'OLD.{c}' for c in stamps)}, {backend.now_sql})"
        triggers |= log_triggers(spec.table, entity, spec.key, version, backend)
    return _create_missing(engine, triggers)


def existing_triggers(engine: Engine) -> list[str]:
    """The names of the triggers in Base A's database."""
    with engine.connect() as conn:
        return list(conn.execute(text(backend_of(engine).triggers_query)).scalars())
