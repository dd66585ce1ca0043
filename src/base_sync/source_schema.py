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

import logging

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
from base_sync.delete_log_triggers import (
    DELETE_LOG,
    OUTDATED,
    STALE,
    DeleteLogState,
    entity_triggers,
    row_columns,
    state,
)
from base_sync.errors import ConfigurationError
from base_sync.mapping import IDENTITY_MAPPING
from baseab_contract.entities import ENTITIES, Entity
from baseab_contract.sql_types import sql_type

log = logging.getLogger(__name__)


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


def _reconcile(engine: Engine, mapping, entities: list[str]) -> list[str]:
    """Create each entity's delete-log triggers where none matches (`delete_log_triggers.state`),
    dropping first a stale one (trigger names are unique in a database: one a table swap took along
    sits on the old table) or one that breaks the table's writes, replacing an outdated one of the
    same name in one statement where the server can (`replace_trigger`); the names of all
    the wanted triggers. A trigger naming a column the table lacks is refused before any DDL."""
    backend = backend_of(engine)
    with engine.connect() as conn:
        states = [state(conn, backend, mapping, entity) for entity in entities]
        live = backend.live_columns(conn, [s.table for s in states])
    for found in states:
        _require_columns(found, live.get(found.table))
    with engine.begin() as conn:
        for found in states:
            for trigger in found.replace:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger.name}"))
            for wanted in found.missing:
                backend.replace_trigger(conn, wanted.name, wanted.create)  # an older one of this name
            for trigger in found.outdated:  # a working one under another name: dropped once replaced
                if trigger.name not in {w.name for w in found.missing}:
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger.name}"))
            created = ", ".join(w.name for w in found.missing)
            if found.status == OUTDATED:
                log.info(
                    "%s: recreated the delete-log triggers on %s (%s) because %s",
                    found.entity,
                    found.table,
                    created,
                    found.reason,
                )
            elif found.status == STALE:
                dropped = ", ".join(f"{t.name} on {t.table}" for t in found.replace) or "none"
                log.warning(
                    "%s: replaced the stale delete-log triggers on %s (dropped: %s; created: %s) because %s",
                    found.entity,
                    found.table,
                    dropped,
                    created,
                    found.reason,
                )
            elif found.missing:
                log.info("%s: created %s on %s", found.entity, created, found.table)
    return [w.name for entity in entities for w in entity_triggers(mapping, entity, backend)]


def _require_columns(found: DeleteLogState, columns) -> None:
    """Refuse to create a trigger naming a column the table lacks: MySQL would refuse it too, and the
    owners must hear which mapping column to fix first."""
    held = {c.name.lower() for c in columns or []}
    for wanted in found.missing:
        lacking = [c for c in row_columns(wanted.body) if c.lower() not in held]
        if columns is None or lacking:
            what = f"no column {', '.join(lacking)}" if columns is not None else "no such table"
            raise ConfigurationError(
                f"{found.entity}: {found.table} has {what}, which the mapping names (key or cursor): fix the "
                f"mapping first (`base-a check`), then run `base-a install-delete-log` again"
                + (f" (the triggers now: {found.reason})" if found.reason else "")
            )


def create_schema(engine: Engine) -> dict[str, Table]:
    """Create Base A's tables and delete-log triggers where they are missing; return the tables."""
    backend = backend_of(engine)
    metadata, tables = build_tables(backend)
    metadata.create_all(engine)
    _reconcile(engine, IDENTITY_MAPPING, list(ENTITIES))
    return tables


def install_delete_log(engine: Engine, mapping, entities: list[str]) -> list[str]:
    """The operator's opt-in on a Base A the platform did not create (`base-a install-delete-log`):
    the `delete_log` table and, on each entity's mapped table, the triggers writing the entity, the
    vanished key (deleted, or changed by an UPDATE) and a version (`delete_log_triggers.entity_triggers`).
    Nothing else ever runs DDL on such a Base A. Running it again adds what is missing (a trigger a
    later version added) and replaces what no longer matches: a trigger a table swap took along to
    the old table, one naming a column renamed or dropped since, one the mapping now wants otherwise."""
    backend = backend_of(engine)
    metadata, _ = build_tables(backend)
    metadata.tables[DELETE_LOG].create(engine, checkfirst=True)
    return _reconcile(engine, mapping, entities)


def existing_triggers(engine: Engine) -> list[str]:
    """The names of the triggers in Base A's database."""
    with engine.connect() as conn:
        return list(conn.execute(text(backend_of(engine).triggers_query)).scalars())
