"""The mapping pushed down to MySQL/MariaDB: the server applies it and renders each bulk record.

`Rendered.columns` is the SELECT list of the batch extract: every value as the JSON text the bulk
endpoint takes (stamps as ISO 8601 UTC, dates and decimals as their exact text), the mapping's
transforms as SQL, plus two flag columns that name what the mapping refuses (`INVALID`: date
columns holding no real date, whatever the session's sql_mode; `UNMAPPED`: values a rejecting
value map does not list) and the raw inputs of `python:` fields. `Rendered.split` turns a chunk
of such rows into clean bulk records and quarantined rows, with the same reasons `view.apply`
gives on the events path.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, and_, case, cast, func, literal, literal_column, null
from sqlalchemy.sql import ColumnElement

from base_sync.dirty import INVALID, Quarantined, reason
from base_sync.mapping.spec import FieldMapping
from base_sync.mapping.view import ISO_UTC as ISO_UTC_PY
from base_sync.mapping.view import SourceView, _holdable, _unmapped_reason
from baseab_contract.bulk_format import SOURCE_ID, SOURCE_ID_RANGE, VERSION
from baseab_contract.entities import Kind

UNMAPPED = "_unmapped"
INPUT = "_in_"  # prefix of a python field's raw input column
ISO_UTC = "%Y-%m-%dT%H:%i:%s.%fZ"
ZERO_DAYS = literal_column("0")


def _stamp(expression) -> ColumnElement:
    return func.date_format(expression, ISO_UTC)


def _invalid_date(expression) -> ColumnElement:
    # Date arithmetic is NULL exactly on a value that is no real date, whatever the sql_mode.
    return expression.isnot(None) & func.adddate(expression, ZERO_DAYS).is_(None)


class Rendered:
    """The SQL rendering of one view, and the split of what it reads."""

    def __init__(self, view: SourceView):
        self.view = view
        cursor = view.spec.cursor or []
        self.cursor = [s.column for s in cursor]
        self.stamp_columns = {s.column for s in view.stamps}
        self.date_columns = [
            m.column
            for name, m in view.fields.items()
            if m.column and view.declared[name].kind == Kind.DATE and m.zero_date == "reject"
        ]
        self.python_inputs = list(dict.fromkeys(c for m in view.fields.values() if m.python for c in m.inputs or []))

    def columns(
        self, clock: datetime | None = None, since: datetime | None = None, unversioned: bool = False
    ) -> list[ColumnElement]:
        """The SELECT list; `clock` (Base A's time when the read began) versions a table without a
        cursor; `since`: a read of the rows after it (`SourceView.version_since`); `unversioned`: a
        read of the rows without a usable version (`SourceView.unversioned`), which have none to render."""
        view = self.view
        if unversioned:
            version = null()
        else:
            version = _stamp(view.version_since(since)) if view.version is not None else literal(_iso(clock))
        # updated_at is the version again: `split` copies it rather than the server converting twice.
        columns = [view.key.label(SOURCE_ID), version.label(VERSION), self._created().label("created_at")]
        for name, mapping in view.fields.items():
            if not mapping.python:
                columns.append(self.field(name, mapping).label(name))
        columns += [view.c(c).label(INPUT + c) for c in self.python_inputs]
        columns.append(self.invalid_flags().label(INVALID))
        columns.append(self.unmapped_flags().label(UNMAPPED))
        return columns

    def _created(self) -> ColumnElement:
        """The creation stamp, NULL where it equals the version (`split` copies the version there, as
        `apply` takes the version for a NULL creation stamp): a creation stamp that is also a cursor
        column is the version of every row whose earlier cursor columns are NULL (a row never updated),
        so the server converts one stamp per row, not two."""
        view, spec = self.view, self.view.spec
        cursor = spec.cursor or []
        if spec.created is None or spec.created not in cursor:
            return null() if spec.created is None else _stamp(view.created)
        earlier = view.decides(spec.created.column)
        return null() if earlier is None else func.IF(earlier, null(), _stamp(view.created))

    def field(self, name: str, mapping: FieldMapping) -> ColumnElement:
        value = self._before_map(mapping)
        if mapping.map is not None:
            whens = [(func.binary(value) == literal(k), _value(v)) for k, v in mapping.map.items()]
            otherwise = null() if mapping.unmapped == "null" else value
            value = case(*whens, else_=otherwise) if whens else otherwise
        if mapping.default is not None:
            value = func.coalesce(value, literal(mapping.default))
        declared = self.view.declared[name]
        if declared.kind == Kind.DATE:
            text = func.date_format(value, "%Y-%m-%d")
            if mapping.zero_date == "null":
                return func.IF(func.adddate(value, ZERO_DAYS).is_(None), null(), text)
            return text
        if declared.kind == Kind.DECIMAL:
            return cast(value, String)
        if mapping.too_long == "truncate" and declared.max_length:
            return func.left(value, declared.max_length)
        return value

    def _before_map(self, mapping: FieldMapping) -> ColumnElement:
        view = self.view
        if mapping.column is not None:
            value = view.c(mapping.column)
        else:
            value = func.concat_ws(mapping.separator, *(view.c(c) for c in mapping.concat))
        if mapping.cast == "string":
            value = cast(value, String)
        elif mapping.cast == "integer":
            value = cast(value, Integer)
        if mapping.trim:
            value = func.trim(value)
        if mapping.case == "lower":
            value = func.lower(value)
        elif mapping.case == "upper":
            value = func.upper(value)
        return value

    def invalid_flags(self) -> ColumnElement:
        """'column=text,...' of the row's date columns holding no real date; '' when none. The cursor
        column the version comes from (the first non-NULL one) is named 'column!': only it makes the
        version unusable, and a later cursor column counts only as the creation stamp or a date
        field, as in `apply`."""
        view = self.view
        cursor = self.cursor
        created = [view.spec.created.column] if view.spec.created else []
        always = {*created, *self.date_columns}
        flags = []
        for name in dict.fromkeys([*cursor, *created, *self.date_columns]):
            value = view.c(name)
            invalid, label = _invalid_date(value), literal(name + "=")
            if name in cursor:
                first = view.decides(name)
                if first is None:
                    label = literal(name + "!=")
                elif name in always:
                    label = func.IF(first, literal(name + "!="), label)
                else:
                    invalid, label = and_(first, invalid), literal(name + "!=")
            text = func.ifnull(cast(value, String), "")
            flags.append(func.IF(invalid, func.concat(label, text), null()))
        return func.concat_ws(",", *flags) if flags else literal("")

    def unmapped_flags(self) -> ColumnElement:
        flags = []
        for name, mapping in self.view.fields.items():
            if mapping.map is None or mapping.unmapped != "reject":
                continue
            value = self._before_map(mapping)
            listed = func.binary(value).in_([literal(k) for k in mapping.map]) if mapping.map else literal(False)
            flags.append(func.IF(value.isnot(None) & ~listed, func.concat(literal(name + "="), value), null()))
        return func.concat_ws("\x1f", *flags) if flags else literal("")

    def split(self, rows: list[dict]) -> list[dict | Quarantined]:
        """The rows as bulk records (python fields computed), each refused one a `Quarantined` with
        its reasons, in the order read."""
        out: list[dict | Quarantined] = []
        functions = self.view.functions
        low, high = SOURCE_ID_RANGE
        for record in rows:
            record["updated_at"] = record[VERSION]
            if record["created_at"] is None:
                record["created_at"] = record[VERSION]
            invalid = record.pop(INVALID, None)
            unmapped = record.pop(UNMAPPED, None)
            if self.python_inputs:
                inputs = {c: record.pop(INPUT + c) for c in self.python_inputs}
                for name, function in functions.items():
                    record[name] = function(inputs)
            no_version = record[VERSION] is None  # no cursor column holds a time (without a cursor: the clock)
            key = record[SOURCE_ID]
            if not invalid and not unmapped and not no_version and type(key) is int and low <= key <= high:
                out.append(record)
                continue
            reasons, version_usable = [], True
            if not _holdable(key):
                reasons.append(self.view.key_reason(key))
            for item in invalid.split(",") if invalid else []:
                column, _, text = item.partition("=")
                decides = column.endswith("!")  # the version's column (see invalid_flags)
                column = column.removesuffix("!")
                version_usable &= not decides
                reasons.append(reason(column, text or None, stamp=column in self.stamp_columns, version=decides))
            if no_version and version_usable:  # no cursor column flagged: every one is NULL
                reasons.insert(0, self.view.no_version_reason())
                version_usable = False
            for item in unmapped.split("\x1f") if unmapped else []:
                name, _, value = item.partition("=")
                reasons.append(_unmapped_reason(name, value))
            version = record.get(VERSION) if version_usable else None
            out.append(Quarantined(record[SOURCE_ID], version, record, reasons))
        return out


def _value(value):
    return null() if value is None else literal(value)


def _iso(clock: datetime | None) -> str:
    if clock is None:
        raise ValueError("a table without a cursor is versioned by the read's clock")
    return clock.strftime(ISO_UTC_PY)
