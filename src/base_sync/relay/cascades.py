"""Foreign keys whose cascade changes a mapped table's rows without a row event of its own.

InnoDB applies ON DELETE CASCADE / SET NULL / SET DEFAULT and ON UPDATE CASCADE / SET NULL / SET
DEFAULT inside the engine: the binlog holds the parent table's row event only, so the child's rows
change or vanish with no event (nor a new updated_at). The relay reads such foreign keys into mapped
tables (`backends.MySQLBaseA.cascading_keys`) at start and again after DDL that may add or drop one,
and counts each parent row whose DELETE, or UPDATE of a referenced column, may have cascaded
(`changed_rows`), as far as the action changes what Base B holds (`acting_on_mapped`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent

from base_sync.backends import CascadingKey
from base_sync.mapping.cascades import acting_on_mapping

ACTING = ("CASCADE", "SET NULL", "SET DEFAULT")  # rules that change the child's rows; not RESTRICT, NO ACTION

_DDL = re.compile(r"\s*(ALTER|CREATE|DROP|RENAME)\b", re.I)
_NAMES_KEYS = re.compile(r"\b(REFERENCES|FOREIGN)\b", re.I)


def may_change_foreign_keys(sql: str) -> bool:
    """DDL that may add, drop or move a foreign key (an ALTER or CREATE naming REFERENCES or FOREIGN,
    any DROP or RENAME): the relay reads them again."""
    verb = _DDL.match(sql)
    if verb is None:
        return False
    return verb.group(1).upper() in ("DROP", "RENAME") or bool(_NAMES_KEYS.search(sql))


def acting_on_mapped(keys: list[CascadingKey], mapping, backend, tables: dict[str, str]) -> list[CascadingKey]:
    """The keys whose actions change what Base B holds, each with only those actions: an ON UPDATE
    action on columns the mapping does not read changes nothing it holds, and `base-a check` names no
    such key either (`mapping.cascades.acting_on_mapping`). `tables`: {mapped table: its entity}."""
    entities = {table.lower(): entity for table, entity in tables.items()}
    kept = []
    for key in keys:
        entity = entities.get(key.table.lower())
        acting = key if entity is None else acting_on_mapping(key, mapping, backend, entity)
        if acting is not None:
            kept.append(acting)
    return kept


@dataclass(frozen=True)
class Cascade:
    name: str
    child: str  # the mapped table
    parent_schema: str
    parent: str
    columns: tuple[str, ...]  # the parent's referenced columns
    on_update: str
    on_delete: str

    @classmethod
    def of_key(cls, key: CascadingKey, database: str) -> Cascade:
        """The backend's foreign key (read from SHOW CREATE TABLE, which a SELECT-only account may
        read: information_schema.referential_constraints lists nothing to one)."""
        schema = key.parent_schema or database
        return cls(key.name, key.table, schema, key.parent, key.parent_columns, key.on_update, key.on_delete)

    def describe(self) -> str:
        rules = [f"ON {verb} {rule}" for verb, rule in (("DELETE", self.on_delete), ("UPDATE", self.on_update))]
        acting = ", ".join(rule for rule in rules if rule.split(" ", 2)[2] in ACTING)
        return f"{self.name} ({self.child} -> {self.parent_schema}.{self.parent}({', '.join(self.columns)}) {acting})"

    def changed_rows(self, event) -> int:
        """How many rows of the parent's row event may have cascaded into the child."""
        if isinstance(event, DeleteRowsEvent):
            return len(event.rows) if self.on_delete in ACTING else 0
        if isinstance(event, UpdateRowsEvent) and self.on_update in ACTING:
            return sum(self._referenced_changed(row["before_values"], row["after_values"]) for row in event.rows)
        return 0

    def _referenced_changed(self, before: dict, after: dict) -> bool:
        folded = {name.lower(): name for name in before}
        names = [folded.get(column.lower()) for column in self.columns]
        if None in names:  # the binlog does not name them (binlog_row_metadata not FULL): may have
            return True
        return any(before[name] != after[name] for name in names)
