"""The mapping pushed down to MySQL/MariaDB: the server applies it and renders each bulk record.

`Rendered.columns` is the SELECT list of the batch extract: every value as the JSON text the bulk
endpoint takes (stamps as ISO 8601 UTC, dates and decimals as their exact text), the mapping's
transforms as SQL, plus two flag columns that name what the mapping refuses (`INVALID`: date
columns holding no real date, whatever the session's sql_mode; `REFUSED`: the values a field's
transforms cannot convert, see `refusal_flags`) and the raw inputs of `python:` fields.
`Rendered.split` turns a chunk of such rows into clean bulk records and quarantined rows, with
the same reasons `view.apply` gives on the events path.

Text is compared and transformed as Unicode, as in Python: a column of another character set
(latin1, say) is read as utf8mb4 first (`CAST(c AS CHAR CHARACTER SET utf8mb4)`), a binary column
too, its bytes flagged when they are no UTF-8. The catalogue tells which columns need it
(`charsets`, from `mapping.check`): a utf8mb4 column, the usual case, is read as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Integer, Numeric, String, and_, case, cast, func, literal, literal_column, null, or_
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from base_sync.dirty import INVALID, Quarantined, reason
from base_sync.mapping.spec import FieldMapping
from base_sync.mapping.view import (
    EXCERPT_BYTES,
    EXCERPT_CHARACTERS,
    INTEGER_RANGE,
    WHOLE_NUMBER,
    SourceView,
    _holdable,
    _unmapped_reason,
    date_reason,
    not_utf8_reason,
    not_whole_reason,
)
from base_sync.mapping.view import ISO_UTC as ISO_UTC_PY
from baseab_contract.bulk_format import SOURCE_ID, SOURCE_ID_RANGE, VERSION
from baseab_contract.entities import Kind

REFUSED = "_refused"
INPUT = "_in_"  # prefix of a python field's raw input column
ISO_UTC = "%Y-%m-%dT%H:%i:%s.%fZ"
ZERO_DAYS = literal_column("0")
# Character sets whose bytes are UTF-8 already: their text needs no conversion.
UTF8 = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})
UTF8MB4 = mysql.CHAR(charset="utf8mb4")
UTF16 = mysql.CHAR(charset="utf16")
# The refusals of `refusal_flags`, one letter each: bytes that are no UTF-8 (of a column), a cast
# integer of no whole number, a value a rejecting map does not list, a date field's text that is no date.
NOT_UTF8, NOT_WHOLE, UNMAPPED, NOT_A_DATE = "b", "i", "u", "d"
# A whole number of up to 18 characters (digits, sign and spaces) is within BIGINT's range.
_SURELY_IN_RANGE = 19


def _stamp(expression) -> ColumnElement:
    return func.date_format(expression, ISO_UTC)


def _invalid_date(expression) -> ColumnElement:
    # Date arithmetic is NULL exactly on a value that is no real date, whatever the sql_mode.
    return expression.isnot(None) & func.adddate(expression, ZERO_DAYS).is_(None)


class Rendered:
    """The SQL rendering of one view, and the split of what it reads. `charsets`: the character
    set of each of the table's text columns as the catalogue shows it ('binary' for binary
    strings); a column it does not name is read as it is (utf8mb4 text, or no text). `numbers`: the
    table's BIT and ZEROFILL columns, each read as its number. `times`: its DATETIME, TIMESTAMP and TIME
    columns, whose text (`cast: string`, a concat part) is written as `apply` writes it."""

    def __init__(
        self,
        view: SourceView,
        charsets: Mapping[str, str] | None = None,
        numbers: Iterable[str] = (),
        times: Iterable[str] = (),
    ):
        self.view = view
        self.charsets = dict(charsets or {})
        self.numbers = frozenset(numbers)
        self.times = frozenset(times)
        cursor = view.spec.cursor or []
        self.cursor = [s.column for s in cursor]
        self.stamp_columns = {s.column for s in view.stamps}
        # The date fields refusing a column's value that is no real date (`invalid_flags` names the column).
        self.date_fields: dict[str, list[str]] = {}
        for name, m in view.fields.items():
            if m.column and view.declared[name].kind == Kind.DATE and m.zero_date == "reject":
                self.date_fields.setdefault(m.column, []).append(name)
        self.date_columns = list(self.date_fields)
        self.python_inputs = list(dict.fromkeys(c for m in view.fields.values() if m.python for c in m.inputs or []))
        # The binary columns the fields read, and the fields reading each (the first one names it).
        self.binary = {
            c: [name for name, cs in view.reads.items() if c in cs]
            for c in view.field_columns
            if self.charsets.get(c) == "binary"
        }
        self.python_fields = [
            (name, m, view.functions[name], _transforms(m) or view.declared[name].kind == Kind.DATE)
            for name, m in view.fields.items()
            if m.python
        ]

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
        columns += [self._input(c).label(INPUT + c) for c in self.python_inputs]
        columns.append(self.invalid_flags().label(INVALID))
        columns.append(self.refusal_flags().label(REFUSED))
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
        value = self._after_default(mapping)
        declared = self.view.declared[name]
        if declared.kind == Kind.DATE:
            text = func.date_format(value, "%Y-%m-%d")
            if _made_of_text(mapping):  # DATE_FORMAT would read '2024-1-5' and '2024-01-05 x' as dates
                return func.IF(_real_date(value, text), text, null())
            if mapping.zero_date == "null":
                return func.IF(func.adddate(value, ZERO_DAYS).is_(None), null(), text)
            return text
        if declared.kind == Kind.DECIMAL:
            return cast(value, String)
        if mapping.too_long == "truncate" and declared.max_length:
            return func.left(value, declared.max_length)
        return value

    def _input(self, name: str) -> ColumnElement:
        """A python field's input: as it is (bytes are decoded in `split`), a BIT or ZEROFILL as its number."""
        return bit_number(self.view.c(name)) if name in self.numbers else self.view.c(name)

    def _read(self, name: str) -> ColumnElement:
        """A column a field reads: text of another character set (or bytes) as utf8mb4 text, a BIT or
        ZEROFILL integer as its number (`bit_number`)."""
        column = self.view.c(name)
        if name in self.numbers:
            return bit_number(column)
        charset = self.charsets.get(name)
        if charset is None or charset in UTF8:
            return column
        if charset == "binary":
            # What is no UTF-8 becomes '?' (and is refused: `refusal_flags`); a surrogate too, which
            # utf8mb4 takes but no driver decodes. Only bytes holding 0xED pay for the second pass.
            text = cast(column, UTF8MB4)
            return func.IF(_no_ed(column), text, cast(cast(text, UTF16), UTF8MB4))
        return cast(column, UTF8MB4)

    def _source(self, mapping: FieldMapping) -> ColumnElement:
        if mapping.column is not None:
            return self._read(mapping.column)
        parts = [self._text_of(c) for c in mapping.concat]
        # CONCAT_WS of only NULLs is '': NULL instead, so `default` applies (`apply` does the same).
        return func.IF(func.coalesce(*parts).is_(None), null(), func.concat_ws(mapping.separator, *parts))

    def _text_of(self, name: str) -> ColumnElement:
        """A column made text: a time's with its fraction's trailing zeros left out, as `apply`
        writes it. MariaDB writes the column's precision (DATETIME(3) '.123', DATETIME(6) '.123000'
        and '.000000'), which an event cannot tell (Debezium's microseconds)."""
        value = self._read(name)
        if name not in self.times:
            return value
        text = cast(value, String)
        return func.IF(func.locate(".", text) > 0, _TrimTrailing(_TrimTrailing(text, "0"), "."), text)

    def _map_key(self, mapping: FieldMapping, value: ColumnElement) -> ColumnElement:
        """What a value map compares: a time column's text as `apply` writes it (its own precision's
        zeros left out), which trim and case leave alone there, as they leave a time alone in Python."""
        return self._text_of(mapping.column) if mapping.column in self.times and mapping.cast is None else value

    def _before_map(self, mapping: FieldMapping) -> ColumnElement:
        value = self._source(mapping)
        if mapping.cast == "string":
            value = cast(self._text_of(mapping.column) if mapping.column is not None else value, String)
        elif mapping.cast == "integer":
            value = cast(value, Integer)  # what is no whole number is refused (`refusal_flags`)
        if mapping.trim:
            value = func.trim(value)
        if mapping.case == "lower":
            value = func.lower(value)
        elif mapping.case == "upper":
            value = func.upper(value)
        return value

    def _after_default(self, mapping: FieldMapping) -> ColumnElement:
        value = self._before_map(mapping)
        if mapping.map is not None:
            # Compared byte for byte (exactly, case-sensitive), the value evaluated once.
            whens = {k: _value(v) for k, v in mapping.map.items()}
            otherwise = null() if mapping.unmapped == "null" else value
            key = func.binary(self._map_key(mapping, value))
            value = case(whens, value=key, else_=otherwise) if whens else otherwise
        if mapping.default is not None:
            value = func.coalesce(value, literal(mapping.default))
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

    def refusal_flags(self) -> ColumnElement:
        """What the fields' transforms cannot convert, field by field in the mapping's order: '' when
        nothing. Each item is a letter (NOT_UTF8, NOT_WHOLE, UNMAPPED, NOT_A_DATE), the column's or
        field's name, '=', the length of the text, ':', the text (so any text parses back):

        - a binary column a field reads holding bytes that are no UTF-8 (CAST to utf8mb4 would
          write '?'; a UTF-16 surrogate MariaDB takes, Python does not): the first bytes in hex;
        - `cast: integer` of no whole number in BIGINT's range (`view.whole_number`; CAST(... AS
          SIGNED) reads '12abc' as 12 with a warning): its first characters. REGEXP is the cheapest
          exact test MariaDB has: 0.11 us a value, where CAST's round trip costs 0.14;
        - a value a rejecting map does not list;
        - a date field made of text (`concat`, `cast: string`) whose text is no real date written
          YYYY-MM-DD (`dirty.iso_date`), unless `zero_date: "null"`.

        Each test runs inside an IF, so a row pays for the item's text only when it is refused."""
        items, named = [], set()
        for name, mapping in self.view.fields.items():
            for column in self.view.reads[name]:
                if column in self.binary and column not in named:
                    named.add(column)
                    value = self.view.c(column)
                    bad, start = value.isnot(None) & ~_utf8(value), func.hex(func.left(value, EXCERPT_BYTES + 1))
                    items.append(func.IF(bad, _item(NOT_UTF8, column, start), null()))
            if mapping.python:
                continue  # its transforms run in `split`, in Python
            if mapping.cast == "integer":
                source = self._source(mapping)
                bad = source.isnot(None) & ~_whole_number(source)
                items.append(func.IF(bad, _item(NOT_WHOLE, name, func.left(source, EXCERPT_CHARACTERS + 1)), null()))
            if mapping.map is not None and mapping.unmapped == "reject":
                value = self._before_map(mapping)
                text = self._map_key(mapping, value)
                listed = func.binary(text).in_([literal(k) for k in mapping.map]) if mapping.map else literal(False)
                items.append(func.IF(value.isnot(None) & ~listed, _item(UNMAPPED, name, text), null()))
            declared = self.view.declared[name]
            if declared.kind == Kind.DATE and _made_of_text(mapping) and mapping.zero_date == "reject":
                value = self._after_default(mapping)
                real = _real_date(value, func.date_format(value, "%Y-%m-%d"))
                bad = value.isnot(None) & (func.length(value) > 0) & ~real
                items.append(func.IF(bad, _item(NOT_A_DATE, name, func.left(value, EXCERPT_CHARACTERS + 1)), null()))
        return func.concat_ws("", *items) if items else literal("")

    def split(self, rows: list[dict]) -> list[dict | Quarantined]:
        """The rows as bulk records (python fields computed), each refused one a `Quarantined` with
        its reasons, in the order read."""
        out: list[dict | Quarantined] = []
        low, high = SOURCE_ID_RANGE
        python, python_reasons = bool(self.python_fields), None
        for record in rows:
            record["updated_at"] = record[VERSION]
            if record["created_at"] is None:
                record["created_at"] = record[VERSION]
            invalid = record.pop(INVALID, None)
            refused = record.pop(REFUSED, None)
            if python:
                python_reasons = self._python_fields(record, _parse(refused) if refused else ())
            no_version = record[VERSION] is None  # no cursor column holds a time (without a cursor: the clock)
            key = record[SOURCE_ID]
            if not invalid and not refused and not python_reasons and not no_version and type(key) is int:
                if low <= key <= high:
                    out.append(record)
                    continue
            items = _parse(refused) if refused else ()
            out.append(self._quarantined(record, invalid, items, python_reasons or {}, no_version))
        return out

    def _python_fields(self, record: dict, items) -> dict[str, list[dict]]:
        """Compute the row's python fields into `record` (the function on the raw inputs, binary ones
        as their UTF-8 text, then the field's transforms as `apply` runs them); their refusals by field.
        A field reading bytes that are no UTF-8 (named in `items`) is not computed."""
        undecodable = {name for letter, name, _ in items if letter == NOT_UTF8}
        inputs = {c: _decoded(record.pop(INPUT + c)) for c in self.python_inputs}
        found: dict[str, list[dict]] = {}
        for name, mapping, function, transformed in self.python_fields:
            if undecodable and not undecodable.isdisjoint(mapping.inputs):
                record[name] = None
                continue
            value = function(inputs)
            if transformed:
                reasons: list[dict] = []
                value = self.view.transform(name, mapping, value, reasons)
                if reasons:
                    found[name] = reasons
            record[name] = value
        return found

    def _quarantined(
        self, record: dict, invalid: str | None, items, python_reasons: dict, no_version: bool
    ) -> Quarantined:
        """A refused row with its reasons in the order `apply` gives them: the key, the version's
        stamps (or that it has none), the creation stamp, then field by field."""
        view = self.view
        reasons = [view.key_reason(record[SOURCE_ID])] if not _holdable(record[SOURCE_ID]) else []
        refusal = _FieldRefusals({name: [] for name in view.fields})
        stamps, version_usable = self._dates(invalid, refusal)
        if no_version and version_usable:  # no cursor column flagged: every one is NULL
            stamps.insert(0, view.no_version_reason())
            version_usable = False
        reasons += stamps
        self._conversions(items, refusal)
        for name, found in python_reasons.items():
            if name not in refusal.stopped:
                refusal.by_field[name] += found
        for name, found in refusal.by_field.items():
            reasons += found
            if name in refusal.unconverted:  # CAST's guess, or '?' for bytes: a zero date stays as its text
                record[name] = None
        version = record.get(VERSION) if version_usable else None
        return Quarantined(record[SOURCE_ID], version, record, reasons)

    def _dates(self, invalid: str | None, refusal: _FieldRefusals) -> tuple[list[dict], bool]:
        """The reasons of `invalid_flags`: the stamps' (in order), and whether the version is usable;
        a date field's go to the field."""
        stamps, version_usable = [], True
        for item in invalid.split(",") if invalid else []:
            column, _, text = item.partition("=")
            decides = column.endswith("!")  # the version's column (see invalid_flags)
            column = column.removesuffix("!")
            version_usable &= not decides
            if column in self.stamp_columns:
                stamps.append(reason(column, text or None, stamp=True, version=decides))
                continue
            for name in self.date_fields.get(column, []):
                refusal.by_field[name].append(reason(column, text or None, stamp=False))
                refusal.stopped.add(name)
        return stamps, version_usable

    def _conversions(self, items, refusal: _FieldRefusals) -> None:
        """The reasons of `refusal_flags`, as `apply` finds them: a field refused before its transforms
        (a zero date, bytes that are no UTF-8, no whole number) has no other reason."""
        for letter, name, text in items:
            if letter == NOT_UTF8:
                readers = [f for f in self.binary[name] if f not in refusal.stopped]
                if readers:
                    refusal.by_field[readers[0]].append(not_utf8_reason(name, text))
                refusal.stopped.update(readers)
                refusal.unconverted.update(readers)
            elif name in refusal.stopped:
                continue
            elif letter == NOT_WHOLE:
                refusal.by_field[name].append(not_whole_reason(name, text))
                refusal.stopped.add(name)
                refusal.unconverted.add(name)
            elif letter == UNMAPPED:
                refusal.by_field[name].append(_unmapped_reason(name, text))
            else:
                refusal.by_field[name].append(date_reason(name, text))


@dataclass
class _FieldRefusals:
    """A refused row's reasons by field, in the mapping's order."""

    by_field: dict[str, list[dict]]
    stopped: set[str] = field(default_factory=set)  # refused before their transforms ran
    unconverted: set[str] = field(default_factory=set)  # of those, the ones whose rendered value means nothing


class _TrimTrailing(FunctionElement):
    """TRIM(TRAILING character FROM text), which SQLAlchemy's func.trim cannot write."""

    inherit_cache = True
    type = String()
    name = "trim_trailing"


@compiles(_TrimTrailing)
def _compile_trim_trailing(element: _TrimTrailing, compiler, **kw) -> str:
    text, character = element.clauses
    return f"TRIM(TRAILING {compiler.process(character, **kw)} FROM {compiler.process(text, **kw)})"


def bit_number(column) -> ColumnElement:
    """A BIT column as its unsigned number (b'1' is 1, b'01000001' 65), which `apply` reads too. As
    it is, a BIT is bytes: CONCAT_WS with one gives bytes (stored as "b'...'" text), BINARY(b'1') is
    no '1' to a value map, CAST(... AS CHAR) is the byte 0x01. A ZEROFILL integer the same way: its
    text is padded ('0042'), where an event holds its number."""
    return column + literal_column("0")


def _value(value):
    return null() if value is None else literal(value)


def _transforms(mapping: FieldMapping) -> bool:
    """Whether a field has a transform to run on its source value."""
    return bool(
        mapping.cast
        or mapping.trim
        or mapping.case
        or mapping.map is not None
        or mapping.default is not None
        or mapping.too_long == "truncate"
    )


def _made_of_text(mapping: FieldMapping) -> bool:
    """A date field whose value is text, not a date column's date (map values and defaults are
    checked when the mapping is read; a python function's value is checked in Python)."""
    return mapping.concat is not None or mapping.cast == "string"


def _real_date(value, text) -> ColumnElement:
    """The text `value` writes a real date as YYYY-MM-DD: DATE_FORMAT gives it back (not NULL, not
    another spelling) and date arithmetic is not NULL (the zero date, 2024-00-10). Never NULL."""
    return func.binary(text).op("<=>")(func.binary(value)) & func.adddate(value, ZERO_DAYS).isnot(None)


def _whole_number(value) -> ColumnElement:
    """`value`'s text is a whole number in BIGINT's range (`view.whole_number`)."""
    low, high = INTEGER_RANGE
    pattern = value.regexp_match("^" + WHOLE_NUMBER + r"\z")  # \z: '$' also matches before a final newline
    in_range = or_(
        func.char_length(value) < _SURELY_IN_RANGE, cast(value, Numeric(65, 0)).between(literal(low), literal(high))
    )
    return and_(pattern, in_range)


def _utf8(value) -> ColumnElement:
    """Bytes that are UTF-8 text as Python reads it: converting them to utf8mb4 changes no byte
    (MariaDB writes '?' for what is no UTF-8), and a UTF-16 surrogate (ED A0..BF, which MariaDB
    takes) does not turn into '?' in utf16. Only bytes holding 0xED pay for that second test."""
    text = cast(value, UTF8MB4)
    surrogate_free = or_(_no_ed(value), func.binary(cast(cast(text, UTF16), UTF8MB4)) == value)
    return and_(func.binary(text) == value, surrogate_free)


def _no_ed(value) -> ColumnElement:
    """The bytes hold no 0xED, the first byte of every UTF-16 surrogate in UTF-8 (and of U+D000..U+D7FF)."""
    return func.locate(literal(b"\xed"), value) == 0


def _item(letter: str, name: str, text) -> ColumnElement:
    return func.concat(literal(letter + name + "="), func.char_length(text), literal(":"), text)


def _parse(flags: str) -> list[tuple[str, str, str]]:
    """The items of `Rendered.refusal_flags`: (letter, name, text)."""
    items, at = [], 0
    while at < len(flags):
        equals = flags.index("=", at)
        colon = flags.index(":", equals)
        end = colon + 1 + int(flags[equals + 1 : colon])
        items.append((flags[at], flags[at + 1 : equals], flags[colon + 1 : end]))
        at = end
    return items


def _decoded(value):
    """A python field's input: bytes (a binary column) as their UTF-8 text; bytes that are no
    UTF-8 stay bytes (`refusal_flags` names them, and no field reading them is computed)."""
    if type(value) is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _iso(clock: datetime | None) -> str:
    if clock is None:
        raise ValueError("a table without a cursor is versioned by the read's clock")
    return clock.strftime(ISO_UTC_PY)
