"""Foreign keys whose actions change mapped rows where no sync path sees it.

InnoDB runs ON DELETE / ON UPDATE actions (CASCADE, SET NULL, SET DEFAULT) inside the engine: no
trigger fires, so the delete log misses a cascaded delete; ON UPDATE CURRENT_TIMESTAMP stamps
nothing, so no window reads a cascaded change; and the binlog holds no row event for either, so the
events path misses them too. `base-a check` and each batch run's load name such keys with what they
cost and what to do (the backend reads them, SHOW CREATE TABLE on MySQL): a warning, never a
refusal (the sync runs on).
"""

from __future__ import annotations

import re

from sqlalchemy import Engine

from base_sync.backends import CascadingKey

CHANGING = ("CASCADE", "SET NULL", "SET DEFAULT")


def cascade_warnings(engine: Engine, mapping, backend, entities: list[str] | None = None) -> list[str]:
    """One warning per mapped entity and foreign key of its table whose action changes its rows."""
    names = [e for e in mapping.entities if entities is None or e in entities]
    tables = list(dict.fromkeys(mapping.table_of(e) for e in names))
    with engine.connect() as conn:
        keys = backend.cascading_keys(conn, tables)
    warnings = []
    for entity in names:
        for declared in (k for k in keys if k.table.lower() == mapping.table_of(entity).lower()):
            key = acting_on_mapping(declared, mapping, backend, entity)
            if key is not None and key.on_delete == "CASCADE":
                warnings.append(_deletes(entity, key))
            if key is not None and _changes(key):
                warnings.append(_updates(entity, key))
    return warnings


def acting_on_mapping(key: CascadingKey, mapping, backend, entity: str) -> CascadingKey | None:
    """The key with only the actions that change what Base B holds of `entity` (the others made NO
    ACTION), None when none does. ON DELETE CASCADE deletes mapped rows whatever columns are read; the
    actions that rewrite the key's own columns (ON DELETE SET NULL / SET DEFAULT, any ON UPDATE action)
    matter only where the mapping reads one of them or its filter names one. `base-a check`, the load
    and the relay all ask this."""
    if not _reads_any(mapping, backend, entity, key.columns):
        on_delete = "CASCADE" if key.on_delete == "CASCADE" else "NO ACTION"
        key = key._replace(on_delete=on_delete, on_update="NO ACTION")
    return key if key.on_delete in CHANGING or key.on_update in CHANGING else None


def _where(key: CascadingKey) -> str:
    return f"{key.table}({', '.join(key.columns)}) references {key.parent} ({key.name}"


def _deletes(entity: str, key: CascadingKey) -> str:
    return (
        f"{entity}: {_where(key)}, ON DELETE CASCADE): a delete in {key.parent} deletes these rows inside "
        "the engine, firing no trigger: the delete log (and the binlog) miss them, and Base B keeps them "
        "live until the next key comparison (every SYNC_KEY_CHECK_HOURS). Shorten SYNC_KEY_CHECK_HOURS, "
        f"or trigger a run with compare_keys after deleting {key.parent} rows"
    )


def _updates(entity: str, key: CascadingKey) -> str:
    actions = [f"ON DELETE {key.on_delete}"] if key.on_delete in CHANGING[1:] else []
    actions += [f"ON UPDATE {key.on_update}"] if key.on_update in CHANGING else []
    return (
        f"{entity}: {_where(key)}, {', '.join(actions)}): a change in {key.parent} rewrites columns the "
        "mapping reads inside the engine, stamping nothing (no ON UPDATE CURRENT_TIMESTAMP, no trigger, no "
        "binlog row event): no run sees it, and Base B keeps the old values until a full_refresh. Trigger "
        f"a full_refresh after such a change in {key.parent}, or have its owners change these rows by an "
        "application UPDATE first (which stamps them) and make the action RESTRICT"
    )


def _changes(key: CascadingKey) -> bool:
    return key.on_delete in CHANGING[1:] or key.on_update in CHANGING


def _reads_any(mapping, backend, entity: str, columns: tuple[str, ...]) -> bool:
    """Whether the mapping reads one of the columns, or names it in its row filter (SQL)."""
    read = {c.lower() for c in mapping.view(entity, backend).source_columns}
    condition = mapping.spec.entities[entity].filter or ""
    return any(c.lower() in read or re.search(rf"\b{re.escape(c)}\b", condition, re.IGNORECASE) for c in columns)
