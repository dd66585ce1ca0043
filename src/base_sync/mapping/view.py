"""One entity's mapping compiled for a kind of Base A: SQL expressions for the reads, and the same
transforms in Python for rows read as they are (the events path, a SQLite Base A).

The batch extract on MySQL/MariaDB pushes the mapping down: renames, trim, case, value maps,
defaults, concatenation, truncation and the time zone rule become SQL, and the server renders
each bulk record's values as JSON text while it reads (see `render`). Only `python:` fields run
here, on the columns they name. Every other reader (verification's windows and digests, the key
comparison, partitions) works on the three expressions every mapping has:

- `key`: the source key;
- `version`: the row's change stamp in UTC (the first non-NULL cursor column, its local time
  converted by `time_zones`), the version Base B's guard compares; None without a cursor;
- `live`: the conditions a row meets to be synced (the row filter, not soft-deleted).

`apply` turns one source row (column -> Python value) into a bulk record, or refuses it with
reasons; `tests/sync/test_mapping_paths.py` holds `apply` and the SQL rendering side by side.

What a transform cannot convert exactly is refused, never guessed, by one rule on both paths (the
functions below, which `render` mirrors in SQL): `cast: integer` takes whole-number text only
(`whole_number`), bytes a field reads must be UTF-8 text (`as_text`), and a date field made of
text takes a real date written YYYY-MM-DD only (`dirty.iso_date`). MariaDB's own conversions would
only warn: CAST('12abc' AS SIGNED) is 12, CONVERT of bytes that are no UTF-8 writes '?',
DATE_FORMAT('2024-1-5') is 2024-01-05. `tests/sync/test_mapping_conversions.py` holds the cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property

from sqlalchemy import (
    Boolean,
    DateTime,
    and_,
    case,
    column,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    table,
    true,
)
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import TableClause

from base_sync.dirty import FIRST_VERSION, Quarantined, iso_date, reason
from base_sync.mapping.float_text import mariadb_text
from base_sync.mapping.spec import EntityMapping, FieldMapping, StampColumn, _text_key, resolve_function
from base_sync.mapping.time_zones import ZoneRule, zone_rule
from baseab_contract.bulk_format import SOURCE_ID, SOURCE_ID_RANGE, VERSION
from baseab_contract.entities import Entity, Field, Kind
from baseab_contract.sql_types import sql_type

# A DATETIME holds nothing valid before 1000-01-01; a TIMESTAMP nothing before FIRST_VERSION.
FIRST_DATETIME = datetime(1000, 1, 1)


ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"  # a version as text, as the SQL rendering writes it
_READ_TYPED = frozenset((Kind.DATE, Kind.DECIMAL))  # read with the field's own type (a decimal's scale)

# `cast: integer`: the value's text is a whole number, spaces around it allowed; `render` tests
# the same pattern with REGEXP (ASCII digits and spaces only: no '1_000', no fullwidth digits).
WHOLE_NUMBER = r" *[+-]?[0-9]+ *"
INTEGER_RANGE = (-(2**63), 2**63 - 1)  # BIGINT, what CAST(... AS SIGNED) holds
# A refused value in a reason: its first characters (of bytes, the first bytes in hex).
EXCERPT_CHARACTERS = 40
EXCERPT_BYTES = 20
_WHOLE_NUMBER = re.compile(WHOLE_NUMBER)


@dataclass
class Refusal:
    """Why a source row cannot become a record: one reason per field or column at fault."""

    reasons: list[dict] = field(default_factory=list)
    version_usable: bool = True
    named: set[str] = field(default_factory=set)  # columns already named as no UTF-8 text


class SourceView:
    """One entity's source table through its mapping, for one kind of Base A (`backend`)."""

    def __init__(self, entity: Entity, spec: EntityMapping, default_zone: str, backend):
        self.entity = entity
        self.spec = spec
        self.backend = backend
        self.default_zone = default_zone
        self.fields: dict[str, FieldMapping] = dict(spec.fields)
        self.declared: dict[str, Field] = {f.name: f for f in entity.fields}
        self.table: TableClause = table(spec.table, *(column(n, t) for n, t in self._column_types().items()))
        self.functions = {name: resolve_function(m.python) for name, m in self.fields.items() if m.python}
        self.reads: dict[str, list[str]] = {name: m.source_columns() for name, m in self.fields.items()}
        # The columns the fields read: bytes there are text (`as_text`).
        self.field_columns: tuple[str, ...] = tuple(dict.fromkeys(c for cs in self.reads.values() for c in cs))
        self._versions_since: dict[datetime, ColumnElement | None] = {}

    # What the mapping reads

    @property
    def has_cursor(self) -> bool:
        return self.spec.cursor is not None

    @property
    def stamps(self) -> list[StampColumn]:
        return [*(self.spec.cursor or []), *([self.spec.created] if self.spec.created else [])]

    def _column_types(self) -> dict:
        """Each source column with the type its values are read as where the mapping implies one
        (stamps, a date or decimal field's own column), so every driver gives the same Python values."""
        types = dict.fromkeys(self.source_columns)
        for name, mapping in self.fields.items():
            # `cast: integer` reads any column, text too: its value as it is.
            if mapping.column and self.declared[name].kind in _READ_TYPED and mapping.cast != "integer":
                types[mapping.column] = sql_type(self.declared[name])
        for stamp in self.stamps:
            types[stamp.column] = DateTime()
        return types

    @cached_property
    def source_columns(self) -> list[str]:
        """Every source column the mapping reads, key first, each once."""
        names = [self.spec.key, *(s.column for s in self.stamps)]
        if self.spec.soft_delete:
            names.append(self.spec.soft_delete.column)
        for mapping in self.fields.values():
            names += mapping.source_columns()
        return list(dict.fromkeys(names))

    def c(self, name: str) -> ColumnElement:
        return self.table.c[name]

    @property
    def key(self) -> ColumnElement:
        return self.c(self.spec.key)

    def zone(self, stamp: StampColumn) -> ZoneRule | None:
        """The rule of a DATETIME column's zone; None for a UTC TIMESTAMP (the session reads UTC)."""
        if stamp.type == "timestamp":
            return None
        rule = zone_rule(stamp.time_zone or self.default_zone)
        return None if rule.fixed and rule.first == 0 else rule

    def read_back_from(self, since: datetime) -> datetime:
        """Where a read must start for the rows committed at `since` or later (the watermark less the
        look-back) that its cursor's local times can still put before it: the start of a repeated
        hour's earlier reading while `since` lies in that hour or its second pass
        (`ZoneRule.repeat_started`), else `since` itself."""
        starts = (self.zone(stamp) for stamp in self.spec.cursor or [])
        return min((s for z in starts if z is not None and (s := z.repeat_started(since))), default=since)

    def floor(self, stamp: StampColumn) -> datetime:
        return FIRST_VERSION if stamp.type == "timestamp" else FIRST_DATETIME

    def _utc(self, stamp: StampColumn, since: datetime | None = None) -> ColumnElement:
        """A stamp column in UTC; with `since`, for wall times the window's prefilter lets through only."""
        raw = self.c(stamp.column)
        rule = self.zone(stamp)
        if rule is None:
            return self.backend.comparable_stamp(raw)
        if since is not None:
            rule = rule.from_wall(_moved(since, rule.lowest))
        return rule.sql_to_utc(raw, self.backend)

    @cached_property
    def _wall(self) -> tuple[ColumnElement, ZoneRule | None] | None:
        """The version's wall time (the first non-NULL cursor column) and the rule that converts it
        (None: already UTC), when one rule converts every cursor column."""
        cursor = self.spec.cursor or []
        rules = {(s.type, self.zone(s)) for s in cursor}
        if len(rules) != 1:
            return None
        ((_, rule),) = rules
        raw = [self.c(s.column) for s in cursor]
        return (raw[0] if len(raw) == 1 else func.coalesce(*raw, type_=DateTime)), rule

    @cached_property
    def version(self) -> ColumnElement | None:
        """The row's version in UTC, as SQL: its first non-NULL cursor column converted; None when
        the table has no cursor. One branch per column, each converting the plain column: the
        conversion tests its input at every level of its CASE, and a column costs a third of a COALESCE."""
        return self._version(None)

    def version_since(self, since: datetime | None) -> ColumnElement | None:
        """The version of the rows a read after `since` lets through (`version_prefilter` bounds
        their wall times): the zone's changes from there on only. A full rule since 1970 is 100 KB
        of SQL that the driver compiles and the server parses at every read, however few rows.
        Built once per `since`: a read asks for it in its window, its order and its digest."""
        if since is None:
            return self.version
        if since not in self._versions_since:
            self._versions_since[since] = self._version(since)
        return self._versions_since[since]

    def _version(self, since: datetime | None) -> ColumnElement | None:
        cursor = self.spec.cursor
        if not cursor:
            return None
        if len(cursor) == 1:
            return self._utc(cursor[0], since)
        branches = ((self.c(s.column).isnot(None), self._utc(s, since)) for s in cursor[:-1])
        return case(*branches, else_=self._utc(cursor[-1], since))

    @cached_property
    def created(self) -> ColumnElement | None:
        """The creation stamp in UTC; None without one (the record takes the version, `Rendered.split`)."""
        return self._utc(self.spec.created) if self.spec.created else None

    @cached_property
    def deleted(self) -> ColumnElement | None:
        """The soft-delete rule as a condition; None when the mapping has none."""
        rule = self.spec.soft_delete
        if rule is None:
            return None
        flag = self.c(rule.column)
        if rule.deleted_when == "not_null":
            return flag.isnot(None)
        if rule.deleted_when == "null":
            return flag.is_(None)
        # The value's text in the backend's exact collation: a text column compares exactly (no
        # collation folding case or padding spaces), as `is_deleted` does; a number column (INT,
        # DECIMAL, BIT) as a number. Null-safe: never NULL, so `live` is one NOT (NULL is no deletion).
        return flag.is_not_distinct_from(self.backend.exact_text(_text_key(rule.deleted_when)))

    @cached_property
    def in_scope(self) -> list[ColumnElement]:
        return [row_filter(self.spec.filter)] if self.spec.filter else []

    @cached_property
    def rules(self) -> list[ColumnElement]:
        """The mapping's conditions on a row: in the filter, not soft-deleted."""
        deleted = self.deleted
        return [*self.in_scope, *([not_(deleted)] if deleted is not None else [])]

    @cached_property
    def live(self) -> list[ColumnElement]:
        """The conditions of a row Base B should hold: it has a key (a nullable key column may hold
        NULL, which Base B cannot key: `unkeyed`), and it meets the mapping's `rules`."""
        return [self.key.isnot(None), *self.rules]

    @cached_property
    def unkeyed(self) -> list[ColumnElement]:
        """A row the mapping would sync but whose key is NULL: refused on every run (`key_reason`)."""
        return [self.key.is_(None), *self.rules]

    @cached_property
    def left_scope(self) -> ColumnElement:
        """A keyed row the mapping does not sync: its `rules` negated, null-safe. The filter is SQL on
        columns that may be NULL ("status <> 'entwurf'" is NULL where status is), and NOT NULL is
        NULL, which no WHERE takes: the row that left the filter that way would stay in Base B."""
        outside = not_(func.coalesce(and_(*self.rules), false(), type_=Boolean)) if self.rules else false()
        return and_(self.key.isnot(None), outside)

    def versioned(self) -> list[ColumnElement]:
        """The row has a usable version: its first non-NULL cursor column holds a time (not the
        zero date, no zero part, no impossible day), the column `version_of` and `apply` take.
        Tested on the raw columns, not on the conversion (a CASE per row): the range is one an index
        on the cursor columns serves, the real-time test a filter on the rows it reads."""
        if not self.spec.cursor:
            return [true()]
        return [self._first_stamp(lambda stamp, c: and_(c >= self._floor(stamp), *self._real_time(stamp, c)))]

    def unversioned(self) -> ColumnElement:
        """A row whose cursor holds no usable time: the first non-NULL column is the zero date (or
        before the type's first valid value), or every column is NULL. Index-friendly: every load
        reads these. A zero part or an impossible day is `unreal`, found less often."""
        if not self.spec.cursor:
            return false()
        earlier = self._first_stamp(lambda stamp, c: c < self._floor(stamp))
        return or_(earlier, and_(*(self.c(s.column).is_(None) for s in self.spec.cursor)))

    def unreal(self) -> ColumnElement:
        """A row whose first non-NULL cursor column is a DATETIME past the floor that holds no real
        time: a zero part or an impossible day ('2026-12-00', '2026-00-05', '2024-02-30'), which the
        sql_mode may let in. They sort among real times, where no range finds them: this tests every
        row (a scan), so only a load from the start reads it; later such rows are found by the
        periodic comparison of every key and version (`sync._bring_up_to_date`)."""
        if not any(stamp.type == "datetime" for stamp in self.spec.cursor or []):
            return false()

        def unusable(stamp: StampColumn, c: ColumnElement) -> ColumnElement:
            real = self._real_time(stamp, c)  # nothing for a TIMESTAMP: all it holds past the floor is real
            return and_(c >= self._floor(stamp), *(not_(r) for r in real)) if real else false()

        return self._first_stamp(unusable)

    def _floor(self, stamp: StampColumn) -> ColumnElement:
        return literal(self.floor(stamp), DateTime())

    def _real_time(self, stamp: StampColumn, c: ColumnElement) -> list[ColumnElement]:
        """That a DATETIME column holds a real time; nothing for a TIMESTAMP, whose only value that is
        none (the zero timestamp) lies below the floor: its unversioned rows stay an index range."""
        return [self.backend.real_time(c)] if stamp.type == "datetime" else []

    def _first_stamp(self, condition) -> ColumnElement:
        """`condition(stamp, column)` on the first non-NULL cursor column, written so that an index on
        the cursor columns (in that order) serves it as ranges: c1 meets it, or c1 is NULL and c2
        meets it, ..."""
        terms = []
        for stamp in self.spec.cursor:
            met, earlier = condition(stamp, self.c(stamp.column)), self.decides(stamp.column)
            terms.append(met if earlier is None else and_(earlier, met))
        return terms[0] if len(terms) == 1 else or_(*terms)

    def decides(self, column: str) -> ColumnElement | None:
        """When cursor column `column` is the one the version comes from (if it holds a value): every
        cursor column before it is NULL. None for the first cursor column, which always decides."""
        names = [s.column for s in self.spec.cursor]
        earlier = names[: names.index(column)]
        return and_(*(self.c(c).is_(None) for c in earlier)) if earlier else None

    def surely_within(self, since: datetime | None, until: datetime | None) -> ColumnElement | None:
        """A condition on the raw wall time that only rows whose version is strictly inside
        (since, until) meet, whatever the zone's offset at them: a read of a window tests it first
        and converts only the rows near a bound. None when the version is no converted wall time."""
        if self._wall is None or self._wall[1] is None or self._wall[1].fixed:
            return None
        wall, rule = self._wall
        bounds = []
        if since is not None:  # version >= wall - highest offset > since
            bounds.append(self.backend.wall_after(wall, _moved(since, rule.highest)))
        if until is not None:  # version <= wall - lowest offset < until
            bounds.append(self.backend.wall_before(wall, _moved(until, rule.lowest)))
        # A wall time that is no real time (2024-02-30 under a lax sql_mode) has no version: not inside.
        return and_(*bounds, self.backend.real_time(wall)) if bounds else None

    def version_prefilter(self, since: datetime | None, until: datetime | None) -> list[ColumnElement]:
        """Index-friendly bounds on the raw cursor columns (local DATETIMEs) that the exact window
        implies (a wall time is its UTC instant plus one of its zone's offsets), so the server reads
        a range: of the column's index, or of an index on the cursor columns in order when there are several."""
        cursor = self.spec.cursor or []
        # An unconverted version is the column itself, bounded by the window, unless the backend
        # compares an expression of it (SQLite's text forms): then these bounds keep its index in use.
        if not self.backend.normalises_stamps and not any(self.zone(s) is not None for s in cursor):
            return []
        at_least, at_most = self.backend.stamp_at_least, self.backend.stamp_at_most
        bounds = []
        if since is not None:  # wall = version + offset > since + lowest offset
            bounds.append(self._first_stamp(lambda s, c: at_least(c, _moved(since, self._offsets(s)[0]))))
        # wall = version + offset <= until + highest offset; but at the end of time, every wall time
        # whose UTC instant datetime cannot hold (`ZoneRule.to_utc`, held there) is inside.
        if until is not None and _naive(until) < datetime.max:
            bounds.append(self._first_stamp(lambda s, c: at_most(c, _moved(until, self._offsets(s)[1]))))
        return bounds

    def _offsets(self, stamp: StampColumn) -> tuple[int, int]:
        """The lowest and highest offset (seconds) of a stamp's zone; UTC for a TIMESTAMP."""
        rule = self.zone(stamp)
        return (0, 0) if rule is None else (rule.lowest, rule.highest)

    # Python: one row read as it is

    def is_deleted(self, row: dict) -> bool:
        """The soft-delete rule on a row read as it is (`deleted` in Python): text compared exactly,
        case and trailing spaces included, as a value map compares; a number (an INT, a DECIMAL, a
        BIT's) as a number (`deleted_when: 0` matches 0, False, 0.00, and the text "0" only);
        NULL never equals a value. `deleted` does the same in SQL."""
        rule = self.spec.soft_delete
        if rule is None:
            return False
        flag = row.get(rule.column)
        if rule.deleted_when == "not_null":
            return flag is not None
        if rule.deleted_when == "null":
            return flag is None
        return flag is not None and _flag_is(flag, _text_key(rule.deleted_when))

    def version_of(self, row: dict) -> datetime | None:
        """The row's version (aware UTC) from its cursor columns; None when none holds a usable time."""
        for stamp in self.spec.cursor or []:
            value = row.get(stamp.column)
            if value is None:
                continue
            return self._to_utc(stamp, value)
        return None

    def _to_utc(self, stamp: StampColumn, value) -> datetime | None:
        if not isinstance(value, datetime):
            return None  # unreadable (the zero date as text): not a time
        naive = value.replace(tzinfo=None) if stamp.type == "datetime" else _utc_naive(value)
        if naive < self.floor(stamp):
            return None
        rule = self.zone(stamp)
        return naive.replace(tzinfo=UTC) if rule is None else rule.to_utc(naive)

    def apply(self, row: dict, invalid: frozenset[str] = frozenset(), version: datetime | None = None):
        """The bulk record of a source row, or a `Quarantined` with the reasons it is refused.

        `invalid` names the row's columns whose value is no real date (the decoder's finding:
        drivers give those as None), each holding its text; `version` stands in for a table without
        a cursor. Bytes (a binary column) a field reads are its UTF-8 text."""
        refusal = Refusal()
        row, undecodable = self.as_text(row)
        if self.spec.cursor:
            version = self._row_version(row, invalid, refusal)
            self._later_cursor_reasons(row, invalid, refusal)
        created = version
        if self.spec.created is not None:
            stamp = self.spec.created
            raw = row.get(stamp.column)
            created = self._to_utc(stamp, raw) if raw is not None else None
            reported = any(r["field"] == stamp.column for r in refusal.reasons)  # a cursor column too
            if not reported and (stamp.column in invalid or (raw is not None and created is None)):
                refusal.reasons.append(reason(stamp.column, _text(raw), stamp=True))
        record = {
            SOURCE_ID: row[self.spec.key],
            VERSION: version,
            "created_at": created or version,
            "updated_at": version,
        }
        if not _holdable(record[SOURCE_ID]):
            refusal.reasons.insert(0, self.key_reason(record[SOURCE_ID]))
        readable = _dates_as_text(row, invalid)
        for name, mapping in self.fields.items():
            record[name] = self._field(name, mapping, row, readable, invalid, undecodable, refusal)
        if refusal.reasons:
            usable = refusal.version_usable and version is not None
            shown = version.strftime(ISO_UTC) if usable else None
            return Quarantined(record[SOURCE_ID], shown, _plain(record), refusal.reasons)
        return record

    def _row_version(self, row: dict, invalid: frozenset[str], refusal: Refusal) -> datetime | None:
        for stamp in self.spec.cursor or []:
            raw = row.get(stamp.column)
            if stamp.column in invalid or (raw is not None and self._to_utc(stamp, raw) is None):
                refusal.reasons.append(reason(stamp.column, _text(raw), stamp=True, version=True))
                refusal.version_usable = False
                return None
            if raw is not None:
                return self._to_utc(stamp, raw)
        refusal.reasons.append(self.no_version_reason())
        refusal.version_usable = False
        return None

    def _later_cursor_reasons(self, row: dict, invalid: frozenset[str], refusal: Refusal) -> None:
        """A cursor column after the one the version came from, holding no real date, is refused as a
        stamp only where something else needs it as a date: it is the creation stamp, or a date field
        refusing zero dates reads it (`render.invalid_flags` names it so; the version is unharmed)."""
        cursor = [s.column for s in self.spec.cursor]
        deciding = next((c for c in cursor if row.get(c) is not None), None)
        created = self.spec.created.column if self.spec.created else None
        later = cursor[cursor.index(deciding) + 1 :] if deciding is not None else []
        for stamp_column in later:
            needed = stamp_column == created or stamp_column in self.rejecting_date_columns
            if stamp_column in invalid and needed:
                refusal.reasons.append(reason(stamp_column, _text(row.get(stamp_column)), stamp=True, version=False))

    @cached_property
    def rejecting_date_columns(self) -> frozenset[str]:
        """The columns date fields read as they are and refuse when they hold no real date."""
        return frozenset(
            m.column
            for name, m in self.fields.items()
            if m.column and self.declared[name].kind == Kind.DATE and m.zero_date == "reject"
        )

    def key_reason(self, key) -> dict:
        """Why a row whose key Base B cannot hold (NULL, 0, negative, a BIGINT UNSIGNED above 2^63-1) is refused."""
        if key is None:
            return {
                "field": self.spec.key,
                "message": f"key is NULL: {self.spec.key} holds no value to sync the row by",
            }
        low, high = SOURCE_ID_RANGE
        return {"field": self.spec.key, "message": f"key {key} is outside Base B's key range {low}..{high}"}

    def no_version_reason(self) -> dict:
        return {"field": self.spec.cursor[0].column, "message": "every cursor column is NULL: the row has no version"}

    def as_text(self, row: dict) -> tuple[dict, frozenset[str]]:
        """The row with the bytes of the columns the fields read as their UTF-8 text, and a boolean
        (a BIT(1) as Debezium writes it) as its number 0 or 1, as `render` reads a BIT (a copy when
        there are any); and the columns whose bytes are no UTF-8 (left as bytes: `apply` refuses them)."""
        found = [c for c in self.field_columns if type(row.get(c)) in (bytes, bool)]
        if not found:
            return row, frozenset()
        row, undecodable = dict(row), []
        for name in found:
            if type(row[name]) is bool:
                row[name] = int(row[name])
                continue
            try:
                row[name] = row[name].decode("utf-8")
            except UnicodeDecodeError:
                undecodable.append(name)
        return row, frozenset(undecodable)

    def _field(
        self,
        name: str,
        mapping: FieldMapping,
        row: dict,
        readable: dict,
        invalid: frozenset[str],
        undecodable: frozenset[str],
        refusal: Refusal,
    ):
        """`row` as read, `readable` as the fields read it (`_dates_as_text`)."""
        if mapping.column in invalid and self.declared[name].kind == Kind.DATE:
            # A date field's rule (`zero_date`); a stamp column's reason is the stamp's, given once.
            stamp = mapping.column in {s.column for s in self.stamps}
            if mapping.zero_date == "reject" and not stamp:
                refusal.reasons.append(reason(mapping.column, _text(row.get(mapping.column))))
            return None
        if undecodable and not undecodable.isdisjoint(self.reads[name]):
            for column in self.reads[name]:
                if column in undecodable and column not in refusal.named:
                    refusal.named.add(column)
                    refusal.reasons.append(not_utf8_reason(column, hex_excerpt(row[column])))
            return None
        return self.transform(name, mapping, self._source_value(name, mapping, readable), refusal.reasons)

    def transform(self, name: str, mapping: FieldMapping, value, reasons: list[dict]):
        """A field's source value through its transforms (cast, trim, case, map, default, the date
        rule, too_long), each refusal appended to `reasons`. `render` does the same in SQL, and
        `Rendered.split` calls this for the values of `python:` fields."""
        if value is not None and mapping.cast is not None:
            if mapping.cast == "string":
                value = _concat_text(value)
            else:
                number = whole_number(value)
                if number is None:
                    reasons.append(not_whole_reason(name, _concat_text(value)))
                    return None
                value = number
        if isinstance(value, str):
            value = _text_transforms(value, mapping)
        if mapping.map is not None and value is not None:
            value = self._mapped(name, mapping, _concat_text(value), value, reasons)
        if value is None and mapping.default is not None:
            value = mapping.default
        declared = self.declared[name]
        if declared.kind == Kind.DATE:
            if isinstance(value, datetime):
                value = value.date()
            elif isinstance(value, str):
                value = _date_of_text(name, mapping, value, reasons)
        if mapping.too_long == "truncate" and isinstance(value, str) and declared.max_length:
            value = value[: declared.max_length]
        return value

    def _source_value(self, name: str, mapping: FieldMapping, row: dict):
        if mapping.column is not None:
            return row.get(mapping.column)
        if mapping.concat is not None:
            parts = [_concat_text(row[c]) for c in mapping.concat if row.get(c) is not None]
            return mapping.separator.join(parts) if parts else None  # only NULLs: NULL, so `default` applies
        return self.functions[name](row)

    @staticmethod
    def _mapped(name: str, mapping: FieldMapping, as_text: str, value, reasons: list[dict]):
        if as_text in mapping.map:
            return mapping.map[as_text]
        if mapping.unmapped == "null":
            return None
        if mapping.unmapped == "reject":
            reasons.append(_unmapped_reason(name, as_text))
        return value


def row_filter(sql: str) -> ColumnElement:
    """The mapping's row filter as SQL, exactly as written: every statement that sends it (the reads,
    `check`'s probe) takes it from here. A literal column, never `text()`, which reads `:word` as a
    bind parameter, also inside a string ('%:intern%'); the compiler doubles `%` for the driver.
    A column expression (not a bare text clause), so a read can negate it: rows that left the
    filter. Untyped: a Boolean one is written `(filter) = 1`, false for a truthy 2 (FIND_IN_SET)."""
    return literal_column(f"({sql})")


def aliased_table(sql: str | None, alias: str) -> str | None:
    """The table a row filter's subquery names `alias` (`FROM mandanten m`, `JOIN mandanten AS m`,
    `FROM p, mandanten m`), by its name alone; None when the filter gives no table that alias. A
    server's error names a column as the statement wrote it (`m.aktiv`), so its qualifier may be such
    an alias. Only a FROM clause's table list names tables: a comma elsewhere separates a select
    list (`SELECT k, code a FROM ...`, where `a` is a column's alias) or arguments."""
    if not sql:
        return None
    found = _ALIAS_TOKENS.findall(sql)
    in_list = [False]  # per parenthesis depth: in a FROM clause's table list (after FROM, a comma, a JOIN)
    starts = False  # the next token starts a table reference
    at = 0
    while at < len(found):
        word, key = found[at], found[at].upper()
        at += 1
        if word == "(":
            in_list.append(False)
        elif word == ")":
            in_list = in_list[:-1] or [False]
        elif key in ("FROM", "JOIN", "STRAIGHT_JOIN"):
            in_list[-1] = True
        elif key in _ENDS_TABLE_LIST:
            in_list[-1] = False
        elif starts and (table := _identifier(word)) is not None:
            if at + 1 < len(found) and found[at] == "." and _identifier(found[at + 1]) is not None:
                table, at = _identifier(found[at + 1]), at + 2  # db.t: the table's name alone
            at += at < len(found) and found[at].upper() == "AS"
            if at < len(found) and (_identifier(found[at]) or "").lower() == alias.lower():
                return table
        starts = in_list[-1] and (word == "," or key in ("FROM", "JOIN", "STRAIGHT_JOIN"))
    return None


_ALIAS_TOKENS = re.compile(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|[\w$]+|\S")
# The words that end a FROM clause's table list at their depth (a JOIN's ON condition too).
_ENDS_TABLE_LIST = frozenset(
    {"WHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "ON", "WINDOW", "UNION", "EXCEPT", "INTERSECT", "FOR", "LOCK"}
)


def _identifier(token: str) -> str | None:
    """The name a token is (a word, or a `quoted` one), if any."""
    if token.startswith("`"):
        return token[1:-1].replace("``", "`")
    return token if re.fullmatch(r"[\w$]+", token) else None


def _dates_as_text(row: dict, invalid: frozenset[str]) -> dict:
    """The row as the fields read it: a column holding no real date is its text (the decoder's), its
    fraction's trailing zeros left out as for any time made text (`_fraction`, `render._text_of`):
    a text field takes it as MariaDB gives it; only a date field refuses it (`zero_date`)."""
    texts = {c: _without_trailing_zeros(row[c]) for c in invalid if isinstance(row.get(c), str)}
    return {**row, **texts} if texts else row


def _without_trailing_zeros(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _text_transforms(value: str, mapping: FieldMapping) -> str:
    if mapping.trim:
        value = value.strip(" ")  # what SQL's TRIM removes: spaces
    if mapping.case == "lower":
        return value.lower()
    if mapping.case == "upper":
        return value.upper()
    return value


def _flag_is(flag, text: str) -> bool:
    """A soft-delete flag equals `deleted_when`'s text: a number numerically (SQL compares a number
    column with a string so), anything else as its text, exactly."""
    if isinstance(flag, int | float | Decimal):  # bool too
        try:
            return Decimal(flag) == Decimal(text)
        except InvalidOperation:
            return False
    return _concat_text(flag) == text


def _unmapped_reason(name: str, value: str) -> dict:
    return {"field": name, "message": f"{name}: the value {value!r} is not in the mapping's value map"}


def whole_number(value) -> int | None:
    """`cast: integer` of a value; None when it is no whole number in BIGINT's range. Text (and any
    value but a number, as its text) must be digits with an optional sign, spaces around allowed:
    '1.234,56', '12abc', '', '1_000' and '１２' are refused, where MariaDB's CAST(... AS SIGNED)
    reads 1, 12, 0, 1 and 0 with a warning and Python's int() raises or reads 1000 and 12. A
    DECIMAL's text has its scale ('12.50', and '12.00' too): refused, where CAST rounds."""
    if isinstance(value, bool):
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        # MariaDB writes a whole DOUBLE below 1e15 as plain digits ('3'), a larger one with an exponent.
        if not (value.is_integer() and abs(value) < 1e15):
            return None
        number = int(value)
    else:
        text = _concat_text(value)
        if not _WHOLE_NUMBER.fullmatch(text):
            return None
        number = int(text)
    return number if INTEGER_RANGE[0] <= number <= INTEGER_RANGE[1] else None


def not_whole_reason(name: str, text: str) -> dict:
    """Why `cast: integer` refuses a value (`text`: its text, or at least its first 41 characters)."""
    low, high = INTEGER_RANGE
    return {
        "field": name,
        "message": f"{name}: cast integer: {_quoted_excerpt(text)} is not a whole number ({low}..{high})",
    }


def hex_excerpt(data: bytes) -> str:
    """The first bytes of a value, as a reason shows bytes that are no text (an SQL hex literal)."""
    return data[: EXCERPT_BYTES + 1].hex().upper()


def not_utf8_reason(column: str, hex_text: str) -> dict:
    """Why a column's bytes are refused as text (`hex_text`: `hex_excerpt` of them)."""
    limit = 2 * EXCERPT_BYTES
    shown = hex_text if len(hex_text) <= limit else hex_text[:limit] + "…"
    return {"field": column, "message": f"{column} is not UTF-8 text: X'{shown}'"}


def date_reason(name: str, text: str) -> dict:
    """Why a date field refuses a text that is no date (`text`: at least its first 41 characters)."""
    shown = text if len(text) <= EXCERPT_CHARACTERS else text[:EXCERPT_CHARACTERS] + "…"
    return reason(name, shown, stamp=False)


def _date_of_text(name: str, mapping: FieldMapping, text: str, reasons: list[dict]) -> date | None:
    """A date field's value made of text (a concat, a cast, a python function): the date it writes;
    no date (refused, or NULL with `zero_date: "null"`) for any other text; NULL for ''."""
    if text == "":
        return None
    parsed = iso_date(text)
    if parsed is None and mapping.zero_date == "reject":
        reasons.append(date_reason(name, text))
    return parsed


def _quoted_excerpt(text: str) -> str:
    if len(text) <= EXCERPT_CHARACTERS:
        return repr(text)
    return repr(text[:EXCERPT_CHARACTERS]) + "…"


def _concat_text(value) -> str:
    """A value as MariaDB writes it as text (CAST ... AS CHAR, CONCAT), so both paths make one text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + _fraction(value.microsecond)
    if isinstance(value, timedelta):
        return _time_text(value)
    if isinstance(value, float):
        return mariadb_text(value)  # Python's own is '100.0', '1e-05', '1e+16'
    return str(value)


def _time_text(value: timedelta) -> str:
    """A TIME as MariaDB writes it: [-]HH:MM:SS, hours past 24 too (838:59:59); Python's own text is
    '-1 day, 23:00:00' for -01:00:00."""
    micros = value // timedelta(microseconds=1)
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{'-' if micros < 0 else ''}{hours:02d}:{minute:02d}:{second:02d}{_fraction(fraction)}"


def _fraction(micros: int) -> str:
    """A time's fraction without trailing zeros ('.5', '.123'; none for zero), as the batch path
    writes a column of any precision (`Rendered._text_of`): an event holds microseconds only."""
    return f".{micros:06d}".rstrip("0").rstrip(".")


def _text(value) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _plain(record: dict) -> dict:
    return {k: _text(v) if isinstance(v, date | Decimal) else v for k, v in record.items()}


def _moved(stamp: datetime, seconds: int) -> datetime:
    """A UTC instant moved by `seconds`, naive; past either end of datetime (a window ending at an
    "open end" sentinel, 9999-12-31 23:59:59 in a zone east of UTC), that end: no wall time lies
    beyond it, and the ends of datetime are DATETIME's. A bound so held only widens a prefilter
    (the exact test follows) and never lets a row through `surely_within` that is not inside."""
    try:
        return _naive(stamp) + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max if seconds > 0 else datetime.min


def _naive(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


def _utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _holdable(key) -> bool:
    """Whether Base B can hold a row of this key (SOURCE_ID_RANGE)."""
    return isinstance(key, int) and SOURCE_ID_RANGE[0] <= key <= SOURCE_ID_RANGE[1]
