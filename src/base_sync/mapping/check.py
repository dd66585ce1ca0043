"""The mapping against the live Base A: every column it reads is there, with a type it can read.

Three catalogue reads per check at most (information_schema on MySQL/MariaDB, PRAGMA table_info on SQLite,
through the backend's `live_columns`), never a write. A problem is what the mapping needs
("expected") against what the table has ("found"), named by table and column:

- the table or a column the mapping reads (key, cursor, created, soft-delete flag, a field's
  column, a concat's or python function's inputs) is missing;
- the key is no integer type;
- a cursor or `created` column is no DATETIME/TIMESTAMP, or not the one the mapping declares (a
  column declared `timestamp` found as DATETIME changed meaning: UTC became wall time);
- a date field reads no date type, a decimal field no numeric type, a text field (string, email,
  text) no text type unless the mapping casts it (`cast: string`) or a closed value map
  (`unmapped: null|reject`) makes every value;
- the row filter (SQL passed through) is refused by Base A: it names a column or function the table
  or server lacks, or is no condition (Base A parses it in a query that reads no row).

A nullable key column is a warning, not a problem: the sync runs, and refuses only the rows whose
key is NULL. So is a key column no PRIMARY KEY or UNIQUE index holds alone (`EntityCheck.key_unique`):
the sync quarantines only the rows whose key another row holds too (`base_sync.shared_keys`). So is
a `datetime` stamp the server's clock writes (DEFAULT or ON UPDATE
CURRENT_TIMESTAMP) in a zone other than the mapping's: the server writes the wall time of its own
zone (its global time_zone, the system's when SYSTEM) for a session that keeps it, so every version
would be off by the difference; an application that sets its session's zone, or its stamps itself,
writes them right. A mapped view is a warning too: the binlog names the tables under it, so the
relay publishes none of its changes and the batch sync alone carries it.

Drift between two runs is caught the same way: each batch task checks the live table against the
mapping's expectations before it reads, so a mapped column dropped or retyped incompatibly after a
run fails the next one, before anything is written (`Problem.missing`: a table or column that is
only missing is checked again once first, `BaseA.require_schema`; one gone during a read is
`SchemaChanging`, retried). A type change the mapping still reads the same
way (INT to BIGINT, VARCHAR(50) to VARCHAR(100)) is no drift, yet it makes the next run a full refresh
(`EntityCheck.definitions`, `sync.refresh_wanted`): an ALTER may rewrite stored values without a row
event or a stamp (DECIMAL(10,2) to DECIMAL(10,0)). Columns the mapping does not read
(nor its row filter names) are reported, never read: a new column in Base A changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, literal, select, table
from sqlalchemy.exc import DBAPIError

from base_sync.backends import NUMBER_TEXT, ServerClock
from base_sync.errors import TerminalError, TransientError
from base_sync.mapping.spec import FieldMapping, StampColumn, _text_key
from base_sync.mapping.view import row_filter
from baseab_contract.entities import ENTITIES, Field, Kind

STAMP_TYPES = {"timestamp": "TIMESTAMP", "datetime": "DATETIME"}
UNREADABLE = "or none this account may read (it needs SELECT on it)"
# A nullable key column (a UNIQUE one, say) may hold NULL: such a row can be neither synced nor kept as a
# rejection (Base B keys both by source_id). The sync runs on: it logs and counts them (`load.report_unkeyed`).
NOT_NULL_KEY = "a key column that holds no NULL (NOT NULL, or the PRIMARY KEY)"
NULLABLE_KEY = "a nullable column: a row whose key is NULL is not synced, only logged and counted (unkeyed)"
# A left-out cursor reads as `cursor: none` (a table without a change stamp), which the docs call required.
CURSOR_GIVEN = "a `cursor` naming the change stamp, or `cursor: none` for a table without one"
NO_CURSOR = (
    "no cursor: read as `cursor: none`, so the whole table is compared by checksums every run (docs/mapping.md, "
    '"Tables without a cursor"); write the stamp column, or `cursor: none` to say so'
)
# A row whose cursor columns are all NULL has no version: it is refused, not synced (docs/mapping.md).
NOT_NULL_CURSOR = "a cursor whose last column holds no NULL (the creation stamp after the update stamp)"
NULLABLE_CURSOR = (
    "every cursor column may be NULL: a row with all of them NULL has no version and is refused, not synced; "
    "end the cursor with a NOT NULL column (e.g. cursor: [geaendert_am, angelegt_am])"
)
# Rows sharing a key cannot sync as one: they are quarantined (base_sync.shared_keys), a cost per chunk read.
UNIQUE_KEY = "a key naming one row (the PRIMARY KEY, or a UNIQUE index on it alone)"
# The binlog names the base tables under a view, never the view: the relay (the events path) publishes none.
BASE_TABLE = "a base table, whose changes the relay publishes (the events path)"
A_VIEW = (
    "a view: the binlog names the tables under it, never the view, so the relay publishes none of its "
    "changes; the batch sync alone carries them"
)
NOT_UNIQUE_KEY = (
    "no PRIMARY KEY or UNIQUE index on this column alone (a view has none): the batch asks Base A whether rows "
    "share a key (per chunk read where an index starts with the column, else one pass over the table per task) "
    "and quarantines rows that do (the events path dead-letters what it can tell: docs/mapping.md, `key`); "
    "a view whose key names one row by construction (`id * 100 + tenant AS id`): set `key_unique: true` "
    "to skip that question (docs/mapping.md, `key_unique`)"
)
TEXT_KINDS = (Kind.STRING, Kind.EMAIL, Kind.TEXT)
# The key's rule, in the words the relay and the events drain refuse a key with too: the paths agree.
KEY_EXPECTED = "an integer type (the key)"
EXPECTED = {
    "integer": "an integer type",
    "numeric": "a numeric type (DECIMAL, INT, ...)",
    "text": "a text type (CHAR, VARCHAR, TEXT, ...) or `cast: string`",
    "date": "a date type (DATE, DATETIME, TIMESTAMP)",
}


class SchemaDriftError(TerminalError):
    """Base A's tables no longer hold what the mapping reads: nothing is read or written until the
    mapping or the table is fixed. The message names each table, column, expected and found type."""


class SchemaChanging(TransientError):
    """A mapped table or column the check found went missing during a read: a schema change in
    progress (an online schema change tool swapping tables, a column renamed and back). Retried: one
    that stays gone fails the next task's check (`SchemaDriftError`). One line, without the SQL."""

    def __init__(self, entity: str, table: str, column: str | None = None):
        self.entity, self.table, self.column = entity, table, column
        where = f"{table}.{column}" if column else table
        super().__init__(
            f"{entity}: Base A's {where} disappeared during the read (a schema change in progress, e.g. a "
            "pt-online-schema-change or gh-ost cut-over): the task's retries read it again"
        )


@dataclass(frozen=True)
class Problem:
    entity: str
    table: str
    column: str | None  # None: the table itself
    expected: str
    found: str
    # The key of the mapping file the problem concerns (`entities`, the entity, `fields`, ...), for
    # `SourceMapping.where`: not part of the problem's identity (one column in two roles is one problem).
    where: tuple[str | int, ...] = field(default=(), compare=False)
    # The table or column is not there (not: of another type): a brief rename may be under way.
    missing: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else f"table {self.table}"
        return f"{self.entity}: {where}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class Use:
    """One line of `base-a check`: a Base B field (or role) and the source columns it is made of."""

    target: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    transforms: str
    becomes: str


@dataclass
class EntityCheck:
    entity: str
    table: str
    uses: list[Use] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # live columns the mapping does not read
    # What the sync reads but warns of, never refuses to run on (a nullable key column).
    warnings: list[Problem] = field(default_factory=list)
    found: bool = True
    # Each live text column's character set ('binary' for a binary string): how `render` reads its text.
    charsets: dict[str, str] = field(default_factory=dict)
    # The live BIT and ZEROFILL columns: `render` reads each as its number.
    numbers: frozenset[str] = frozenset()
    # The live DATETIME, TIMESTAMP and TIME columns: `render` writes their text as `apply` does.
    times: frozenset[str] = frozenset()
    # {column: its live definition} of the columns the mapping reads or its filter names, in table
    # order: a changed one makes the next batch run a full refresh (`sync.refresh_wanted`).
    definitions: dict[str, str] = field(default_factory=dict)
    # The key column alone is a PRIMARY KEY or UNIQUE index: no two rows share a key. Else (or not
    # known) each chunk the batch reads asks Base A which of its keys rows share (`shared_keys`).
    key_unique: bool = False
    # An index starts with the key column: asking which of a chunk's keys rows share reads only those
    # rows. Else (a view, a computed key) one aggregate over the table per task answers for every chunk.
    key_indexed: bool = False


@dataclass
class SchemaCheck:
    """The check of every mapped entity's table."""

    entities: dict[str, EntityCheck]

    @property
    def problems(self) -> list[Problem]:
        return [p for check in self.entities.values() for p in check.problems]

    def only_missing(self, entity: str) -> bool:
        """Whether the entity's problems are all a missing table or column (which a rename under way
        explains), and there is one."""
        problems = self.entities[entity].problems
        return bool(problems) and all(p.missing for p in problems)

    def require(self, entity: str | None = None) -> EntityCheck | None:
        """Raise `SchemaDriftError` on the problems of `entity` (of every entity when None)."""
        problems = self.entities[entity].problems if entity else self.problems
        if problems:
            raise SchemaDriftError("; ".join(str(p) for p in problems))
        return self.entities[entity] if entity else None


def check_source(engine: Engine, mapping, backend, entities: list[str] | None = None) -> SchemaCheck:
    """Read the live columns of the mapped tables (one catalogue query) and compare them with the
    mapping; let Base A parse each row filter (a query that reads no row)."""
    names = [e for e in mapping.entities if entities is None or e in entities]
    tables = list(dict.fromkeys(mapping.table_of(e) for e in names))
    with engine.connect() as conn:
        live = backend.live_columns(conn, tables)
        unique = backend.unique_columns(conn, [t for t in tables if t in live])
        leading = backend.leading_columns(conn, [t for t in tables if t in live])
        views = backend.views(conn, [t for t in tables if t in live])
        spelled = backend.spelled_tables(conn, [t for t in tables if t not in live])
        year = _over_a_year(datetime.now(UTC))
        clock = cache(lambda: backend.server_clock(conn, year))  # read once, if a stamp is the server's
        checked = {
            e: _check_entity(
                e,
                mapping,
                backend,
                live.get(mapping.table_of(e)),
                unique.get(mapping.table_of(e)),
                clock,
                spelled.get(mapping.table_of(e)),
                leading.get(mapping.table_of(e), frozenset()),
            )
            for e in names
        }
        for entity, result in checked.items():
            if result.table in views:
                view = Problem(entity, result.table, None, BASE_TABLE, A_VIEW, ("entities", entity, "table"))
                result.warnings.append(view)
            _check_filter(conn, mapping.spec.entities[entity], result, backend)
    return SchemaCheck(checked)


def _check_filter(conn: Connection, spec, result: EntityCheck, backend) -> None:
    """The row filter is SQL the mapping passes through: Base A itself says whether it names columns
    and functions that exist (one it names missing may be a rename under way: `Problem.missing`). A lost
    connection is no verdict on the filter: it propagates (transient)."""
    if not spec.filter or not result.found:
        return
    probe = select(literal(1)).select_from(table(spec.table)).where(row_filter(spec.filter)).limit(0)
    try:
        conn.execute(probe).all()
    except DBAPIError as error:
        if error.connection_invalidated:
            raise
        refused = str(error.orig).strip().splitlines()[0]
        result.problems.append(
            Problem(
                result.entity,
                spec.table,
                None,
                f"a row filter Base A accepts ({spec.filter})",
                refused,
                ("entities", result.entity, "filter"),
                missing=backend.missing_object(error) is not None,
            )
        )


def _over_a_year(now: datetime) -> list[datetime]:
    """Instants a quarter apart over the year from `now`: two zones agreeing at all of them keep the
    same offsets, daylight saving included."""
    start = now.replace(minute=0, second=0, microsecond=0)
    return [start + timedelta(days=91 * quarter) for quarter in range(4)]


def _check_entity(
    entity: str,
    mapping,
    backend,
    columns,
    unique: frozenset[str] | None = None,
    clock: Callable[[], ServerClock | None] = lambda: None,
    spelled: str | None = None,
    leading: frozenset[str] = frozenset(),
) -> EntityCheck:
    spec = mapping.spec.entities[entity]
    result = EntityCheck(entity, spec.table)
    if columns is None:
        result.found = False
        # The catalogue lists only the tables this account may read: a missing grant looks the same.
        unseen = f"no such table, {UNREADABLE}"
        if spelled:  # a server that tells table names apart by case (lower_case_table_names=0)
            unseen = f"no such table (the database spells it {spelled!r}, and this server tells case apart: write that)"
        where = ("entities", entity, "table")
        missing = Problem(entity, spec.table, None, "a table the mapping reads", unseen, where, missing=True)
        result.problems.append(missing)
        return result
    live = {c.name: c for c in columns}
    result.charsets = {c.name: c.charset for c in columns if c.charset}
    result.numbers = frozenset(c.name for c in columns if NUMBER_TEXT & backend.type_families(c.type_text))
    result.times = frozenset(c.name for c in columns if backend.type_families(c.type_text) & TIMES)
    checker = _Checker(entity, spec.table, live, backend, result, clock)
    zone = mapping.spec.source.time_zone
    key = ("entities", entity, "key")
    checker.use("source_id", [spec.key], "", "the key (source_id)", "integer", KEY_EXPECTED, key)
    if spec.key in live and live[spec.key].nullable:
        result.warnings.append(Problem(entity, spec.table, spec.key, NOT_NULL_KEY, NULLABLE_KEY, key))
    # `key_unique: true`: the mapping asserts it (a view's computed key), verification catches a key held twice.
    result.key_unique = spec.key_unique or (unique is not None and spec.key in unique)
    result.key_indexed = spec.key in leading
    if spec.key in live and unique is not None and not result.key_unique:
        result.warnings.append(Problem(entity, spec.table, spec.key, UNIQUE_KEY, NOT_UNIQUE_KEY, key))
    for index, stamp in enumerate(spec.cursor or []):
        where = ("entities", entity, "cursor", index, "column")
        checker.stamp("source_updated_at", stamp, zone, "the version (source_updated_at, UTC)", where)
    if spec.cursor is None and "cursor" not in spec.model_fields_set:
        where = ("entities", entity)
        result.warnings.append(Problem(entity, spec.table, None, CURSOR_GIVEN, NO_CURSOR, where))
    # A column the server fills on insert (DEFAULT CURRENT_TIMESTAMP) is never NULL in practice (review).
    if spec.cursor and all(_may_be_null(live.get(stamp.column)) for stamp in spec.cursor):
        last = spec.cursor[-1].column
        where = ("entities", entity, "cursor", len(spec.cursor) - 1, "column")
        result.warnings.append(Problem(entity, spec.table, last, NOT_NULL_CURSOR, NULLABLE_CURSOR, where))
    if spec.created:
        checker.stamp("created_at", spec.created, zone, "created_at (UTC)", ("entities", entity, "created", "column"))
    if spec.soft_delete:
        rule = spec.soft_delete
        where = ("entities", entity, "soft_delete", "column")
        checker.use(
            "(soft delete)", [rule.column], f"deleted when {rule.deleted_when}", "the row's deletion", None, "", where
        )
        checker.deleted_when(rule, ("entities", entity, "soft_delete", "deleted_when"))
    declared = {f.name: f for f in ENTITIES[entity].fields}
    for name, field_mapping in spec.fields.items():
        checker.field(name, field_mapping, declared[name], ("entities", entity, "fields", name))
    read = {c for use in result.uses for c in use.columns}
    in_filter = set(re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", spec.filter or ""))
    result.unmapped = [c.name for c in columns if c.name not in read and c.name not in in_filter]
    result.definitions = {c.name: c.definition for c in columns if c.name in read or c.name in in_filter}
    return result


def _may_be_null(column) -> bool:
    """A live column that may hold NULL: nullable, and not filled by the server's clock on insert."""
    return column is not None and column.nullable and "DEFAULT" not in (column.clocked or "")


TIMES = frozenset({"datetime", "timestamp", "time"})
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


@dataclass
class _Checker:
    entity: str
    table: str
    live: dict
    backend: object
    result: EntityCheck
    clock: Callable[[], ServerClock | None]  # the zone the server stamps CURRENT_TIMESTAMP in

    def use(
        self, target: str, columns: list[str], transforms: str, becomes: str, family, expected: str, where: tuple = ()
    ) -> None:
        types = []
        for name in columns:
            column = self.live.get(name)
            if column is None:
                # As for tables: a column-level grant hides the columns it leaves out.
                spelled = [live for live in self.live if live.lower() == name.lower()]
                found = f"no such column (the table spells it {spelled[0]!r}: write that)" if spelled else None
                unseen = found or f"no such column, {UNREADABLE}"
                self._problem(name, expected or "a column the mapping reads", unseen, where, missing=True)
                types.append("(missing)")
                continue
            types.append(column.type_text)
            if family and family not in self.backend.type_families(column.type_text):
                self._problem(name, expected, column.type_text, where)
        self.result.uses.append(Use(target, tuple(columns), tuple(types), transforms, becomes))

    def deleted_when(self, rule, where: tuple = ()) -> None:
        """A number column's flag equals only a number: MariaDB reads 'J' as 0 (every 0 a deletion),
        Python as no number (none), so the two paths would disagree on every row."""
        column = self.live.get(rule.column)
        if column is None or rule.deleted_when in ("null", "not_null"):
            return
        if not {"numeric", "bits"} & self.backend.type_families(column.type_text):
            return
        if not _PLAIN_NUMBER.match(_text_key(rule.deleted_when)):  # not Decimal(): it reads NaN, 1_000, '１'
            found = f"deleted_when {rule.deleted_when!r} on {column.type_text}, which holds numbers"
            if str(rule.deleted_when).lower() in _YAML11_BOOLEANS:  # YAML 1.1's true/false: the file is read as 1.2
                found += " (a mapping file is YAML 1.2, where only true and false are booleans: write true or false)"
            self._problem(rule.column, "a deleted_when that is a number (the column is a number type)", found, where)

    def stamp(self, target: str, stamp: StampColumn, default_zone: str, becomes: str, where: tuple = ()) -> None:
        if stamp.type == "timestamp":
            transforms, expected = "UTC", "TIMESTAMP (declared `type: timestamp`, UTC)"
        else:
            zone = stamp.time_zone or default_zone
            transforms, expected = f"{zone} -> UTC", f"DATETIME (declared `type: datetime`, {zone})"
        self.use(target, [stamp.column], transforms, becomes, stamp.type, expected, where)
        if stamp.type == "datetime":
            self._server_clock_in(stamp.column, zone, where)

    def _server_clock_in(self, name: str, zone: str, where: tuple = ()) -> None:
        """Warn when the server's clock writes the wall-time column in another zone than the mapping
        reads it in: a warning, since an application setting its session's zone, or its stamps
        itself, writes them right."""
        column = self.live.get(name)
        if column is None or column.clocked is None or self.clock() is None:
            return
        server = self.clock()
        ours = tuple(int(instant.astimezone(ZoneInfo(zone)).utcoffset().total_seconds()) for instant in server.at)
        if ours == server.offsets:
            return
        # A wall time written at the server's offset and read at the mapping's is off by their difference.
        hours = ", ".join(sorted({f"{(s - o) / 3600:+g} h" for s, o in zip(server.offsets, ours, strict=True)}))
        warning = Problem(
            self.entity,
            self.table,
            name,
            f"the server's clock ({column.clocked} CURRENT_TIMESTAMP) in the mapping's zone {zone}",
            f"the server's time zone {server.zone}: a session keeping it stamps every version off by {hours}, "
            f"unless the application sets its session's time_zone or its stamps itself",
            where,
        )
        if warning not in self.result.warnings:  # one column in two roles (a cursor item and `created`)
            self.result.warnings.append(warning)

    def field(self, name: str, mapping: FieldMapping, declared: Field, where: tuple = ()) -> None:
        family = _family_needed(mapping, declared)
        transforms, becomes = _transforms(mapping), _becomes(declared)
        where += ("column",) if mapping.column else ("concat",) if mapping.concat else ("inputs",)
        self.use(name, mapping.source_columns(), transforms, becomes, family, EXPECTED.get(family), where)

    def _problem(self, column: str, expected: str, found: str, where: tuple = (), missing: bool = False) -> None:
        problem = Problem(self.entity, self.table, column, expected, found, where, missing)
        if problem not in self.result.problems:  # one column in two roles (a cursor item and `created`)
            self.result.problems.append(problem)


def _family_needed(mapping: FieldMapping, declared: Field) -> str | None:
    """The kind of source column a field mapped from one column needs; None: any column does."""
    if mapping.column is None:
        return None  # concat makes text of anything; a python function reads what it reads
    if mapping.map is not None and mapping.unmapped != "keep":
        return None  # every value comes from the map
    if declared.kind == Kind.DATE:
        return "date"
    if declared.kind == Kind.DECIMAL:
        return None if mapping.cast == "integer" else "numeric"
    if declared.kind in TEXT_KINDS and mapping.cast != "string":
        return "text"
    return None


def _transforms(mapping: FieldMapping) -> str:
    steps = []
    if mapping.concat:
        steps.append(f"concat {mapping.separator!r}")
    if mapping.python:
        steps.append(f"python {mapping.python}")
    if mapping.cast:
        steps.append(f"cast {mapping.cast}")
    if mapping.trim:
        steps.append("trim")
    if mapping.case:
        steps.append(mapping.case)
    if mapping.map is not None:
        steps.append(f"map {len(mapping.map)} values, unmapped {mapping.unmapped}")
    if mapping.default is not None:
        steps.append(f"default {mapping.default!r}")
    if mapping.zero_date == "null":
        steps.append("zero date null")
    if mapping.too_long == "truncate":
        steps.append("truncate")
    return ", ".join(steps)


def _becomes(declared: Field) -> str:
    kind = declared.kind.value
    if declared.max_length:
        kind += f"({declared.max_length})"
    elif declared.precision:
        kind += f"({declared.precision},{declared.scale})"
    return kind + (" required" if declared.required else "")


def render(check: SchemaCheck, origin: str) -> str:
    """The text `base-a check` prints: per entity a table of what each Base B field is made of."""
    lines = [f"mapping: {origin}"]
    for result in check.entities.values():
        lines.append("")
        if not result.found:
            lines.append(f"{result.entity} <- {result.table}: no such table")
        else:
            lines.append(f"{result.entity} <- {result.table}")
            rows = [("Base B field", "source column", "source type", "transforms", "becomes")]
            rows += [(u.target, ", ".join(u.columns), ", ".join(u.types), u.transforms, u.becomes) for u in result.uses]
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                cells = "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
                lines.append(f"  {cells}  {row[4]}".rstrip())
            if result.unmapped:
                lines.append(f"  not mapped (ignored): {', '.join(result.unmapped)}")
        lines += [f"  WARNING {w}" for w in result.warnings]
        lines += [f"  PROBLEM {p}" for p in result.problems]
    problems = check.problems
    lines.append("")
    lines.append(f"{len(problems)} problem(s)" if problems else "ok: every mapped column is there with a usable type")
    return "\n".join(lines)
