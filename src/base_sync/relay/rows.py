"""Binlog row events as change events: which changes a row event makes, and the columns' Debezium types.

A row change becomes one or two changes (`RowChange`): a create, an update, a delete, or, for an
UPDATE of the key, a delete of the old key and a create of the new one, as Debezium emits it. A row
the binlog does not describe whole becomes an *incomplete* change instead, with the reason: the
relay publishes it (the drain dead-letters it with that reason, `base_sync.debezium`), never reads
it as something it is not. That is the case for

- a partial row image (`binlog_row_image` MINIMAL or NOBLOB, set on the server or in the writing
  session while the relay runs): an UPDATE's after image lacks the columns it did not change, the
  key among them; read as a whole row it would be a key change (a delete of the row) or wipe the
  columns. A DELETE whose before image holds the mapping's key is still a delete (the row is gone;
  its version is the commit time, as for any delete without a usable one);
- a table map without column names (`binlog_row_metadata` is not FULL): no column is known, not
  even the key; the values are published by position (`UNKNOWN_COL0`, ...), unkeyed.

Values are read as MariaDB returns them to the batch path's SQL, where mysql-replication 1.0's
decoder does otherwise; `install_readers` replaces its readers (module import does it):

- DATE and DATETIME values the binlog holds but that are no date (the zero date, a zero part, an
  impossible day under ALLOW_INVALID_DATES) are read as their text (`InvalidDate`): the decoder
  returns None for them (the same as NULL, losing the text) or raises on an impossible day;
- text as MariaDB converts it to utf8mb4 (`_read_string`): Python decodes where its codec is
  MariaDB's conversion (`PYTHON_CODECS`; latin1 by MariaDB's latin1, which is cp1252 with the five
  bytes cp1252 leaves undefined as the C1 controls U+0081...); every other single-byte character
  set (cp1250, latin2, cp1251, koi8r, ...) by its 256 bytes as MariaDB converts them, read from the
  server once per process (`_charmap`); MariaDB converts the rest (sjis, big5, gbk, ...) in one
  query per row event (`_convert`), its '?' for bytes a character set leaves undefined included.
  The decoder read UTF-16/32 in the machine's byte order, sjis by Python's table, character sets
  Python has no codec for as bytes, and an undefined byte made the whole row event unreadable.
  Text MariaDB converts to no UTF-8 (ucs2 surrogates), or whose query or text would pass
  max_allowed_packet, makes the row an incomplete change, keyed. A collation id mysql-replication
  does not know (uca1400, 2048 and up) is read in the character set information_schema names for
  the column (`_catalogue_charsets`);
- INET6 and UUID (BINARY(16) in the binlog, told apart by information_schema: `_mariadb_types`)
  as MariaDB's text of them, converted in the same query; the decoder gave their 16 bytes;
- a BINARY(n) padded with zero bytes to its n, as MariaDB returns it (the binlog leaves the padding
  out);
- YEAR 0000, which the decoder reads as 1900 (it adds 1900 to the stored byte), as 0
  (`mariadb_years`: the reader is no method of its own to replace);
- a SET holding no member as '' (`empty_sets`): the decoder reads it as None, the same as NULL;
- ENUM and SET values in their column's character set: the table map's reader took them as UTF-8
  and made each it could not read "" (TableMapEvent's readers are replaced too).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import date, datetime

import pymysql
from pymysqlreplication.bitmap import BitGet
from pymysqlreplication.constants import FIELD_TYPE, NONE_SOURCE
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, TableMapEvent, WriteRowsEvent

from base_sync.debezium import SourceColumn

ROW_IMAGE = "binlog_row_image"
ROW_METADATA = "binlog_row_metadata"
UNREADABLE = "unreadable"
TOO_LARGE = "too_large"


@dataclass(frozen=True)
class RowChange:
    """One change event of a binlog row. `problem` set: an incomplete change (published with the
    reason, dead-lettered by the drain); `cause` names the setting or `unreadable`."""

    op: str
    key: object | None  # the mapping key's value; None when the binlog does not give it
    before: dict | None
    after: dict | None
    invalid: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    problem: str | None = None
    cause: str | None = None


def row_changes(event, row: dict, key_column: str) -> list[RowChange]:
    """The change events of one binlog row.

    An update that changes the key is, as Debezium's MySQL connector emits it, a delete of the old
    key and a create of the new one: an update under the new key alone would leave the old row in
    Base B, still holding its unique values. Only whole images can say the key changed."""
    op = row_op(event)
    names = [column.name for column in event.columns]
    if any(name is None for name in names):
        problem = (
            f"the binlog's table map of {event.schema}.{event.table} carries no column names (Base A's "
            "binlog_row_metadata is not FULL): the row's columns and key are unknown, its values are by "
            "position. Set binlog_row_metadata=FULL; the batch sync carries the row"
        )
        before, after = _images(op, row)
        return [RowChange(op, None, before, after, _invalid_of(before, after), problem, ROW_METADATA)]
    row = empty_sets(event, mariadb_years(event, row))
    unread = _unreadable_text(event, op, row, key_column)
    if unread is not None:
        return [unread]
    if op == "c":
        after = row["values"]
        missing = _missing(names, event.columns_present_bitmap)
        if missing:
            return [_partial(event, op, key_column, None, after, (), missing)]
        return [RowChange("c", after[key_column], None, after, ((), _invalid_dates(after, row.get("none_sources"))))]
    if op == "d":
        before = row["values"]
        missing = _missing(names, event.columns_present_bitmap)
        invalid = (_invalid_dates(before, row.get("none_sources")), ())
        if missing and key_column in missing:
            return [_partial(event, op, key_column, before, None, missing, ())]
        if missing:  # the row is gone all the same: a delete of its key (the drain versions it by the commit)
            before = {name: value for name, value in before.items() if name not in missing}
        return [RowChange("d", before[key_column], before, None, invalid)]
    before, after = row["before_values"], row["after_values"]
    missing_before = _missing(names, event.columns_present_bitmap)
    missing_after = _missing(names, event.columns_present_bitmap2)
    if missing_before or missing_after:
        return [_partial(event, op, key_column, before, after, missing_before, missing_after)]
    invalid = (
        _invalid_dates(before, row.get("before_none_sources")),
        _invalid_dates(after, row.get("after_none_sources")),
    )
    if before[key_column] == after[key_column]:
        return [RowChange("u", after[key_column], before, after, invalid)]
    return [
        RowChange("d", before[key_column], before, None, (invalid[0], ())),
        RowChange("c", after[key_column], None, after, ((), invalid[1])),
    ]


def row_op(event) -> str:
    """The Debezium op of a row event: c (WRITE_ROWS), d (DELETE_ROWS) or u (UPDATE_ROWS)."""
    return "c" if isinstance(event, WriteRowsEvent) else "d" if isinstance(event, DeleteRowsEvent) else "u"


def unreadable(op: str, table: str, error: Exception, key: object | None = None) -> RowChange:
    """An incomplete change for a row (or a whole row event) the relay failed to read or encode."""
    problem = (
        f"the relay could not read this binlog row of {table} ({type(error).__name__}: {_short(error)}); "
        "the batch sync carries the row"
    )
    return RowChange(op, key, None, None, problem=problem, cause=UNREADABLE)


def too_large(change: RowChange, table: str, size: int, limit: int) -> RowChange:
    """The incomplete stand-in, keyed as the change, for a change whose event no Kafka message can hold."""
    problem = (
        f"the change of {table} was {size} bytes as an event, more than the {limit} bytes a Kafka message "
        "may hold (RELAY_MESSAGE_MAX_BYTES, the producer's message.max.bytes), so the relay could not publish "
        "it. Raise RELAY_MESSAGE_MAX_BYTES with the topics' max.message.bytes (and the broker's "
        "message.max.bytes) to publish such rows; the batch sync carries the row"
    )
    return RowChange(change.op, change.key, None, None, problem=problem, cause=TOO_LARGE)


def _partial(event, op, key_column, before, after, missing_before, missing_after) -> RowChange:
    """An incomplete change for a partial row image: the images as far as the binlog gives them."""
    key = None
    if before is not None and key_column not in missing_before:
        key = before[key_column]
    elif after is not None and key_column not in missing_after:
        key = after[key_column]
    lacks = [
        f"`{image}` lacks {', '.join(missing)}"
        for image, missing in (("before", missing_before), ("after", missing_after))
        if missing
    ]
    problem = (
        f"the binlog's row image of {event.schema}.{event.table} is partial ({'; '.join(lacks)}): "
        "binlog_row_image is not FULL on Base A (the server's setting or the writing session's). "
        "The relay does not guess the row (read whole, it would be a key change or wipe columns). Set "
        "binlog_row_image=FULL; the batch sync carries the row"
    )
    before, after = _present(before, missing_before), _present(after, missing_after)
    return RowChange(op, key, before, after, _invalid_of(before, after), problem, ROW_IMAGE)


def _unreadable_text(event, op: str, row: dict, key_column: str) -> RowChange | None:
    """An incomplete change, keyed, for a row holding text neither Python nor MariaDB could read
    (`UnreadableText`): the drain dead-letters it with the columns and why, the batch carries it."""
    before, after = _images(op, row)
    unread = {
        name: value
        for image in (before, after)
        for name, value in (image or {}).items()
        if isinstance(value, UnreadableText)
    }
    if not unread:
        return None
    key = (after if after is not None else before).get(key_column)
    problem = (
        f"the relay could not read the text of {', '.join(unread)} in this binlog row of {event.schema}."
        f"{event.table} ({'; '.join(unread.values())}); the batch sync carries the row"
    )
    before, after = _present(before, tuple(unread)), _present(after, tuple(unread))
    key = None if isinstance(key, UnreadableText) else key
    return RowChange(op, key, before, after, _invalid_of(before, after), problem, UNREADABLE)


def _images(op: str, row: dict) -> tuple[dict | None, dict | None]:
    if op == "u":
        return row["before_values"], row["after_values"]
    return (row["values"], None) if op == "d" else (None, row["values"])


def _invalid_of(before: dict | None, after: dict | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The columns of each image holding no date (read as their text), for an incomplete change."""
    return _invalid_dates(before or {}, None), _invalid_dates(after or {}, None)


def _missing(names: list[str], bitmap) -> tuple[str, ...]:
    """The columns a row image leaves out (not in its columns-present bitmap)."""
    return tuple(name for i, name in enumerate(names) if not BitGet(bitmap, i))


def _present(image: dict | None, missing: tuple[str, ...]) -> dict | None:
    return None if image is None else {name: value for name, value in image.items() if name not in missing}


def _short(error: Exception, limit: int = 200) -> str:
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "…"


# Dates the binlog holds but that are no date

UNREADABLE_DATES = frozenset(
    (NONE_SOURCE.OUT_OF_DATE_RANGE, NONE_SOURCE.OUT_OF_DATETIME_RANGE, NONE_SOURCE.OUT_OF_DATETIME2_RANGE)
)


class InvalidDate(str):
    """The text of a DATE or DATETIME value that is no date, as Base A shows it (`2024-00-10`)."""


def _invalid_dates(values: dict, none_sources: dict | None) -> tuple[str, ...]:
    """The DATE and DATETIME columns holding no date: read as their text (`InvalidDate`), or read as
    None by a decoder that says so in `none_sources`; not NULLs, never published as null."""
    named = [name for name, value in values.items() if isinstance(value, InvalidDate)]
    named += [name for name, why in (none_sources or {}).items() if why in UNREADABLE_DATES and name not in named]
    return tuple(named)


def _read_date(self) -> date | InvalidDate:
    """RowsEvent's DATE reader, keeping a value that is no date as its text (3 bytes: y*512+m*32+d)."""
    raw = self.packet.read_uint24()
    year, month, day = raw >> 9, (raw >> 5) & 0x0F, raw & 0x1F
    try:
        return date(year, month, day)
    except ValueError:
        return InvalidDate(f"{year:04d}-{month:02d}-{day:02d}")


def _read_datetime(self) -> datetime | InvalidDate:
    """RowsEvent's reader of the old DATETIME (8 bytes: YYYYMMDDhhmmss as an integer)."""
    value = self.packet.read_uint64()
    day_part, time_part = divmod(value, 1_000_000)
    year, rest = divmod(day_part, 10_000)
    month, day = divmod(rest, 100)
    hour, rest = divmod(time_part, 10_000)
    minute, second = divmod(rest, 100)
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return InvalidDate(f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}")


def _read_datetime2(self, column) -> datetime | InvalidDate:
    """RowsEvent's DATETIME2 reader (5 bytes big-endian: sign, year*13+month, day, hour, minute,
    second; then the fraction), keeping a value that is no date as its text."""
    data = self.packet.read_int_be_by_size(5)
    year_month = (data >> 22) & 0x1FFFF
    year, month = divmod(year_month, 13)
    day, hour = (data >> 17) & 0x1F, (data >> 12) & 0x1F
    minute, second = (data >> 6) & 0x3F, data & 0x3F
    microsecond = self._RowsEvent__read_fsp(column)
    try:
        return datetime(year, month, day, hour, minute, second, microsecond)
    except ValueError:
        text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
        fsp = getattr(column, "fsp", 0) or 0
        return InvalidDate(f"{text}.{microsecond:06d}"[: 20 + fsp] if fsp else text)


# Text and binary strings as MariaDB returns them

BINARY_CHARSET = "binary"  # the character set name mysql-replication gives a binary string column
LATIN1_ENCODING = "cp1252"  # the Python codec mysql-replication names for MariaDB's latin1
# MariaDB's latin1 (strings/ctype-latin1.c): cp1252, and the bytes cp1252 leaves undefined as the
# C1 controls of the same number, as ISO 8859-1 has them.
MARIADB_LATIN1 = "".join(bytes([byte]).decode("cp1252", "ignore") or chr(byte) for byte in range(256))


# The character sets whose bytes Python's codec reads exactly as MariaDB converts them to utf8mb4
# (MariaDB stores UTF-16 and UTF-32 big-endian; ucs2 and utf8mb3 hold no character past U+FFFF).
# A single-byte character set is read by its map from the server (`_charmap`); any other, and any
# bytes these codecs refuse, MariaDB converts (`_convert`).
PYTHON_CODECS = {
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "ascii": "ascii",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
    "ucs2": "utf-16-be",
}
_BMP_ONLY = frozenset({"ucs2", "utf8mb3", "utf8"})
_CONVERT_CHUNK = 500_000  # bytes of SQL per conversion query of several values (one may be longer)
_PACKET_MARGIN = 1024  # bytes a conversion query keeps below max_allowed_packet (SELECT, the packet's)
_PACKET = "_relay_max_allowed_packet"  # a connection attribute: its session's max_allowed_packet


_SINGLE_BYTE: set[str] = set()  # MariaDB's character sets of one byte a character (read once)
_CHARMAPS: dict[str, str | None] = {}  # {single-byte charset: its 256 bytes' characters, or None}


def _charmap(connection, charset: str | None) -> None:
    """Read a single-byte character set's conversion to utf8mb4 from the server, each of its 256
    bytes (MariaDB's '?' for one it leaves undefined), once per relay process: its text is then
    decoded in Python (`python_text`), never a query per row event (or a value too long to send).
    The character sets of one byte are information_schema's of MAXLEN 1 (latin1 and binary aside)."""
    if charset is None or charset in _CHARMAPS or charset in (BINARY_CHARSET, "latin1") or not charset.isalnum():
        return
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        if not _SINGLE_BYTE:
            cursor.execute("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS WHERE MAXLEN = 1")
            _SINGLE_BYTE.update(name for (name,) in cursor.fetchall())
        if charset not in _SINGLE_BYTE:
            _CHARMAPS[charset] = None
            return
        cursor.execute("SELECT " + ", ".join(f"HEX(CONVERT(_{charset} X'{b:02X}' USING utf8mb4))" for b in range(256)))
        characters = [bytes.fromhex(h).decode("utf-8") for h in cursor.fetchone()]
    # One character a byte, or the map is no charmap: MariaDB then converts, as for any other charset
    _CHARMAPS[charset] = "".join(characters) if all(len(c) == 1 for c in characters) else None


class UnreadableText(str):
    """A text value neither Python nor MariaDB could read as utf8mb4 (the text: why)."""


class _Converted:
    """A value MariaDB gives as utf8mb4 text once the rows event is read (`_convert`): `sql` makes it,
    its `{}` the raw bytes as a literal."""

    __slots__ = ("sql", "what", "raw", "text")

    def __init__(self, sql: str, what: str, raw: bytes):
        self.sql, self.what, self.raw, self.text = sql, what, raw, None


def mariadb_charset(column) -> str | None:
    """The column's MariaDB character set: its collation's first word (`utf16_general_ci`), or
    information_schema's for a collation id mysql-replication does not know (`_catalogue_charsets`);
    None when neither names one. (mysql-replication's `character_set_name` is a Python codec name.)"""
    charset = getattr(column, MARIADB_CHARSET, None)
    if charset is not None:
        return charset
    collation = getattr(column, "collation_name", None)
    return collation.split("_", 1)[0] if collation else None


def python_text(raw: bytes, charset: str | None) -> str | None:
    """The text of `raw` where Python reads it as MariaDB does, else None (MariaDB must convert it)."""
    if charset == "latin1":
        return codecs.charmap_decode(raw, "strict", MARIADB_LATIN1)[0]
    charmap = _CHARMAPS.get(charset)
    if charmap is not None:
        return codecs.charmap_decode(raw, "strict", charmap)[0]
    codec = PYTHON_CODECS.get(charset)
    if codec is None:
        return None
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        return None
    if charset in _BMP_ONLY and any(ord(c) > 0xFFFF for c in text):
        return None  # ucs2 surrogates MariaDB keeps as two characters: its conversion decides
    return text


def _read_string(self, size: int, column) -> str | bytes:
    """RowsEvent's reader of CHAR, VARCHAR, TEXT, BINARY, VARBINARY and BLOB: text as MariaDB converts
    it to utf8mb4 (what the batch path reads), a BINARY(n) padded to n. mysql-replication decoded
    UTF-16/UTF-32 in the machine's byte order, sjis by Python's table, and a character set Python
    has no codec for (ucs2, utf16le, swe7, ...) not at all; bytes a charset leaves undefined
    (cp1250 0x81) made the whole row event unreadable, where MariaDB returns '?'."""
    raw = self.packet.read_length_coded_pascal_string(size)
    if column.character_set_name is None:  # no metadata: UTF-8, as mysql-replication assumes
        try:
            return raw.decode(errors="ignore" if self._ignore_decode_errors else "strict")
        except UnicodeDecodeError:  # text or binary, unknown: its bytes (raised, the whole row event failed)
            return raw
    if column.character_set_name == BINARY_CHARSET:
        raw = raw.ljust(column.max_length, b"\0") if column.type == FIELD_TYPE.STRING else raw
        kind = getattr(column, MARIADB_TYPE, None)
        if kind is None:
            return raw
        # INET6 and UUID (BINARY(16) in the binlog) as MariaDB writes them ('::ffff:192.0.2.1')
        return _converting(self, f"CAST(CAST({{}} AS {kind}) AS CHAR CHARACTER SET utf8mb4)", kind, raw)
    charset = mariadb_charset(column)
    text = python_text(raw, charset)
    if text is not None:
        return text
    if charset is None or not charset.isalnum():  # an unknown collation id the catalogue no longer has
        return UnreadableText(
            f"the binlog names a collation mysql-replication does not know for `{column.name}`, "
            "and information_schema has no character set for the column"
        )
    # The bytes as a binary literal (about their size; hex doubled it), read in the charset
    return _converting(self, f"CONVERT(CONVERT({{}} USING {charset}) USING utf8mb4)", charset, raw)


def _converting(event, sql: str, what: str, raw: bytes) -> _Converted:
    shown = raw.hex()[:64] + ("..." if len(raw) > 32 else "")
    # As binary: pymysql gives its bytes, undecoded (ucs2's surrogates are no UTF-8), at their size
    converted = _Converted(f"CAST({sql} AS BINARY)", f"{what} X'{shown}'", raw)
    event.__dict__.setdefault("_relay_converted", []).append(converted)
    return converted


def _fetch_rows(self) -> None:
    """RowsEvent's row reader, then the values Python cannot read converted by MariaDB in one query
    (a few for a huge event) over the stream's own connection to the server."""
    _FETCH_ROWS(self)
    pending = self.__dict__.pop("_relay_converted", None)
    if not pending:
        return
    _convert(self._ctl_connection, pending)
    for row in self._RowsEvent__rows:
        for image in ("values", "before_values", "after_values"):
            values = row.get(image)
            for name, value in (values or {}).items():
                if isinstance(value, _Converted):
                    values[name] = value.text


def _convert(connection, pending: list[_Converted]) -> None:
    """Each value's text as MariaDB converts it to utf8mb4 (bytes the charset leaves undefined as
    '?', as the batch path reads them). A lost connection is raised (the relay reconnects); a value
    the server refuses or converts to no UTF-8 becomes `UnreadableText`, and so does one whose query
    would pass max_allowed_packet: the server would refuse it and close the connection."""
    packet = _max_allowed_packet(connection)
    limit = packet - _PACKET_MARGIN
    chunks, chunk, size = [], [], 0
    for index, value in enumerate(pending):
        # Named: MariaDB names a column by its expression's text, the value's raw bytes among them,
        # and pymysql decodes the name as UTF-8 (ucs2's X'EDA080...' failed the whole row event)
        sql = f"{value.sql.format(_binary_literal(connection, value.raw))} AS v{index}"
        if len(sql) > limit:  # never sent: MariaDB would refuse it (1153) and close the connection
            value.text = UnreadableText(
                f"{value.what} is {len(value.raw)} bytes: converting it takes a query of {len(sql) + 7} bytes, "
                f"more than Base A's max_allowed_packet ({packet}) allows"
            )
            continue
        # A query's result row is bounded by max_allowed_packet too: about 3 bytes of UTF-8 a byte at most
        cost = max(len(sql), 3 * len(value.raw) + 64) + 2
        if chunk and size + cost > min(limit, _CONVERT_CHUNK):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append((value, sql))
        size += cost
    if chunk:
        chunks.append(chunk)
    for chunk in chunks:
        results = _select(connection, "SELECT " + ", ".join(sql for _, sql in chunk), len(chunk))
        for (value, _), result in zip(chunk, results, strict=True):
            value.text = _utf8(value, result, packet)


def _select(connection, select: str, count: int) -> tuple:
    """The conversion query's row, or its error for each of its `count` values. The connection is
    usable after it (`_usable`): MariaDB closes it on a packet it refuses (1153, or a reset the
    client sees as 2006 while still sending), and the next query would then fail as a lost
    connection, the relay resume at the same transaction and fail again, forever. A connection lost
    is reconnected and the query tried again once: the server away raises (the relay reconnects);
    the server there and this query dropped twice is the query's error."""
    for attempt in (1, 2):
        try:
            with connection.cursor(pymysql.cursors.Cursor) as cursor:
                cursor.execute(select)
                return cursor.fetchone()
        except pymysql.err.InterfaceError as error:  # the connection is closed: the relay reconnects
            raise pymysql.err.OperationalError(2013, f"lost the connection converting text: {error}") from error
        except ValueError as error:  # pymysql could not read the answer: reconnected (it stopped mid-answer)
            _usable(connection)
            return (error,) * count
        except pymysql.err.MySQLError as error:
            lost = isinstance(error, pymysql.err.OperationalError) and _client_error(error)
            _usable(connection)  # raises when the server cannot be reached again: the relay reconnects
            if not lost or attempt == 2:
                return (error,) * count
    raise AssertionError("unreachable")


def _client_error(error: Exception) -> bool:
    """A client error (2000-2999: lost, gone), not the server's refusal."""
    return bool(error.args) and isinstance(error.args[0], int) and 2000 <= error.args[0] < 3000


def _binary_literal(connection, raw: bytes) -> str:
    """`raw` as a binary string literal in the connection's quoting (pymysql leaves `_binary` out
    unless connected with binary_prefix, and then the server would read the bytes as utf8mb4). Its
    length is its bytes' (pymysql sends the query's str as surrogate-escaped UTF-8)."""
    literal = connection.escape(bytes(raw))
    return literal if literal.startswith("_binary") else "_binary" + literal


def _max_allowed_packet(connection) -> int:
    """The connection's max_allowed_packet, read once per session (a session keeps the value it
    connected with; `_usable` forgets it when it may have reconnected)."""
    packet = getattr(connection, _PACKET, None)
    if packet is None:
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            (packet,) = cursor.fetchone()
        packet = int(packet)
        setattr(connection, _PACKET, packet)
    return packet


def _usable(connection) -> None:
    """The connection usable again after an error (reconnected if the server closed it), its
    max_allowed_packet read anew. A reconnection that fails is raised (the relay reconnects)."""
    connection.__dict__.pop(_PACKET, None)
    connection.ping(reconnect=True)


def _utf8(value: _Converted, result, packet: int) -> str:
    if isinstance(result, Exception):
        return UnreadableText(f"MariaDB could not convert {value.what}: {result}")
    if result is None:  # MariaDB's NULL for a result over max_allowed_packet (warning 1301)
        return UnreadableText(
            f"MariaDB gives no conversion of {value.what} ({len(value.raw)} bytes): its text is longer than "
            f"Base A's max_allowed_packet ({packet})"
        )
    try:
        return bytes(result).decode("utf-8")
    except UnicodeDecodeError:  # ucs2's lone surrogates, converted as such: no UTF-8 (the batch fails too)
        return UnreadableText(f"MariaDB converts {value.what} to no UTF-8 text")


def _read_type_values(self, length: int) -> list[list[str]] | None:
    """TableMapEvent's reader of ENUM and SET values. mysql-replication reads them as UTF-8 before it
    knows the column's character set, and makes a value it cannot read "" ('Ä' of a latin1 ENUM):
    each keeps its bytes here (as surrogates where they are no UTF-8) until `_values_in_charsets`."""
    result, read_until = [], self.packet.read_bytes + length
    if self.packet.read_bytes >= read_until:
        return None
    while self.packet.read_bytes < read_until:
        count = self.packet.read_length_coded_binary()
        result.append(
            [self.packet.read_variable_length_string().decode(errors="surrogateescape") for _ in range(count)]
        )
    return result


def _values_in_charsets(self) -> None:
    """TableMapEvent's column set-up, then each ENUM and SET value read in its column's character
    set, and the INET6 and UUID columns named (`_mariadb_types`)."""
    _SYNC_COLUMN_INFO(self)
    _mariadb_types(self)
    _catalogue_charsets(self)
    for column in self.columns:
        _charmap(self._ctl_connection, mariadb_charset(column))
        for attribute in ("enum_values", "set_values"):
            values = getattr(column, attribute, None)
            if values:
                setattr(column, attribute, [_in_charset(v, column.character_set_name) for v in values])


MARIADB_TYPE = "mariadb_type"  # a column attribute: INET6 or UUID
_BINARY_TYPES: dict[tuple, dict[str, str]] = {}  # {(schema, table, table id): {column: INET6 or UUID}}


def _mariadb_types(event) -> None:
    """Name the table's INET6 and UUID columns (`MARIADB_TYPE`): the binlog holds them as BINARY(16),
    so only information_schema tells them apart. Read once per table id (an ALTER makes a new one),
    only for a table with a BINARY(16); the catalogue is read as it is then (a relay far behind an
    ALTER between BINARY(16) and INET6 or UUID reads the rows before it by the new type)."""
    sixteen = [
        c
        for c in event.columns
        if c.type == FIELD_TYPE.STRING and c.character_set_name == BINARY_CHARSET and c.max_length == 16 and c.name
    ]
    if not sixteen:
        return
    kinds = _catalogue(
        event,
        _BINARY_TYPES,
        "SELECT COLUMN_NAME, UPPER(DATA_TYPE) FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND DATA_TYPE IN ('inet6', 'uuid')",
    )
    for column in sixteen:
        kind = kinds.get(column.name)
        if kind is not None:
            setattr(column, MARIADB_TYPE, kind)


MARIADB_CHARSET = "mariadb_charset"  # a column attribute: its character set, where the binlog's collation is unknown
_CHARSETS: dict[tuple, dict[str, str]] = {}  # {(schema, table, table id): {column: character set}}


def _catalogue_charsets(event) -> None:
    """Name the character set (`MARIADB_CHARSET`) of each text column whose collation id
    mysql-replication does not know: its table stops at id 1270, so MariaDB's uca1400 collations
    (utf8mb4_uca1400_ai_ci = 2304, the utf8mb4 default of MariaDB 11.5+) come with no collation and
    a guessed 'utf8'. information_schema.COLUMNS says, read once per table id as `_mariadb_types`
    reads it (the catalogue as it is then)."""
    unknown = [
        c
        for c in event.columns
        if c.name and c.character_set_name not in (None, BINARY_CHARSET) and c.collation_name is None
    ]
    if not unknown:
        return
    charsets = _catalogue(
        event,
        _CHARSETS,
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CHARACTER_SET_NAME IS NOT NULL",
    )
    for column in unknown:
        charset = charsets.get(column.name)
        if charset is not None:
            setattr(column, MARIADB_CHARSET, charset)


def _catalogue(event, cache: dict[tuple, dict[str, str]], query: str) -> dict[str, str]:
    """{column: value} of the event's table by `query` (over schema and table name), read once per
    table id (an ALTER makes a new one) over the stream's own connection; `cache` keeps them."""
    key = (event.schema, event.table, event.table_id)
    if key not in cache:
        if len(cache) > 10_000:
            cache.clear()
        with event._ctl_connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute(query, (event.schema, event.table))
            cache[key] = dict(cursor.fetchall())
    return cache[key]


def _in_charset(value: str, encoding: str | None) -> str:
    raw = value.encode(errors="surrogateescape")
    if encoding == LATIN1_ENCODING:
        return codecs.charmap_decode(raw, "strict", MARIADB_LATIN1)[0]
    try:
        return raw.decode(encoding or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return value


def mariadb_years(event, row: dict) -> dict:
    """The row with YEAR 0000 as 0: mysql-replication reads a YEAR as 1900 + its stored byte, and
    1900 is no year a YEAR holds (1901..2155, and 0000), so 1900 is always 0000."""
    years = [c.name for c in event.columns if getattr(c, "type", None) == FIELD_TYPE.YEAR]
    if not years:
        return row
    fixed = dict(row)
    for image in ("values", "before_values", "after_values"):
        if isinstance(row.get(image), dict):
            fixed[image] = {**row[image], **{name: 0 for name in years if row[image].get(name) == 1900}}
    return fixed


# Each row image and where mysql-replication says why its None values are None.
_IMAGE_SOURCES = (
    ("values", "none_sources"),
    ("before_values", "before_none_sources"),
    ("after_values", "after_none_sources"),
)


def empty_sets(event, row: dict) -> dict:
    """The row with '' for each SET holding no member: mysql-replication reads one as None and names
    it EMPTY_SET in the image's none sources, where NULL is named NULL. Published as null, it was
    NULL to the mapping (a default, `deleted_when: "null"`), where the batch path reads ''."""
    sets = {c.name for c in event.columns if getattr(c, "type", None) == FIELD_TYPE.SET and c.set_values}
    if not sets:
        return row
    fixed = dict(row)
    for image, sources in _IMAGE_SOURCES:
        why_none = row.get(sources) or {}
        empty = [name for name in sets if why_none.get(name) == NONE_SOURCE.EMPTY_SET]
        if empty and isinstance(row.get(image), dict):
            fixed[image] = {**row[image], **dict.fromkeys(empty, "")}
    return fixed


def install_readers() -> None:
    """Replace mysql-replication's DATE/DATETIME and string readers (private methods of RowsEvent,
    1.0.x) by the ones above. Fails loudly if the library no longer has them."""
    for name, reader in (
        ("_RowsEvent__read_date", _read_date),
        ("_RowsEvent__read_datetime", _read_datetime),
        ("_RowsEvent__read_datetime2", _read_datetime2),
        ("_RowsEvent__read_string", _read_string),
    ):
        if not hasattr(RowsEvent, name):
            raise RuntimeError(f"mysql-replication's RowsEvent has no {name}: the relay's readers need 1.0.x")
        setattr(RowsEvent, name, reader)
    if not hasattr(RowsEvent, "_fetch_rows"):
        raise RuntimeError("mysql-replication's RowsEvent has no _fetch_rows: the relay's readers need 1.0.x")
    RowsEvent._fetch_rows = _fetch_rows
    for needed in ("_RowsEvent__read_fsp",):
        if not hasattr(RowsEvent, needed):
            raise RuntimeError(f"mysql-replication's RowsEvent has no {needed}: the relay needs 1.0.x")
    for name, method in (("_read_type_values", _read_type_values), ("_sync_column_info", _values_in_charsets)):
        if not hasattr(TableMapEvent, name):
            raise RuntimeError(f"mysql-replication's TableMapEvent has no {name}: the relay needs 1.0.x")
        setattr(TableMapEvent, name, method)


_SYNC_COLUMN_INFO = TableMapEvent._sync_column_info  # before install_readers replaces them
_FETCH_ROWS = RowsEvent._fetch_rows
install_readers()


# Column types

_INTEGERS = {
    FIELD_TYPE.TINY: ("int16", "int16"),
    FIELD_TYPE.SHORT: ("int16", "int32"),
    FIELD_TYPE.INT24: ("int32", "int32"),
    FIELD_TYPE.LONG: ("int32", "int64"),
    FIELD_TYPE.LONGLONG: ("int64", "int64"),  # BIGINT UNSIGNED as a long: Debezium's default handling
}
_SIMPLE = {
    FIELD_TYPE.FLOAT: "float32",
    FIELD_TYPE.DOUBLE: "float64",
    FIELD_TYPE.DATE: "date",
    FIELD_TYPE.NEWDATE: "date",
    FIELD_TYPE.TIMESTAMP: "timestamp",
    FIELD_TYPE.TIMESTAMP2: "timestamp",
    FIELD_TYPE.TIME: "time",
    FIELD_TYPE.TIME2: "time",
    FIELD_TYPE.YEAR: "year",
    FIELD_TYPE.JSON: "json",
}
_TEXT = (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB)


_NAMES = {
    FIELD_TYPE.DECIMAL: "DECIMAL",
    FIELD_TYPE.FLOAT: "FLOAT",
    FIELD_TYPE.DOUBLE: "DOUBLE",
    FIELD_TYPE.DATE: "DATE",
    FIELD_TYPE.NEWDATE: "DATE",
    FIELD_TYPE.DATETIME: "DATETIME",
    FIELD_TYPE.DATETIME2: "DATETIME",
    FIELD_TYPE.TIMESTAMP: "TIMESTAMP",
    FIELD_TYPE.TIMESTAMP2: "TIMESTAMP",
    FIELD_TYPE.TIME: "TIME",
    FIELD_TYPE.TIME2: "TIME",
    FIELD_TYPE.YEAR: "YEAR",
    FIELD_TYPE.JSON: "JSON",
    FIELD_TYPE.ENUM: "ENUM",
    FIELD_TYPE.SET: "SET",
    FIELD_TYPE.GEOMETRY: "GEOMETRY",
}


def integer_column(column) -> bool:
    """Whether a binlog column (its table map's type, as of its row event) is of an integer type,
    TINYINT to BIGINT, signed or not: the only key the batch path takes (`mapping.check`)."""
    return column.type in _INTEGERS


def binlog_type(column) -> str:
    """A binlog column's type as its table map gives it, in SQL's words where the binlog tells them
    apart (VARCHAR or VARBINARY, CHAR or BINARY, TEXT or BLOB by the character set; DECIMAL with its
    precision and scale, BIT with its width). Lengths of strings are bytes there: left out."""
    kind = column.type
    if kind in _INTEGERS:
        return "INTEGER"
    if getattr(column, MARIADB_TYPE, None) is not None:
        return getattr(column, MARIADB_TYPE)  # INET6, UUID
    binary = mariadb_charset(column) in (None, BINARY_CHARSET)
    if kind in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING):
        return "VARBINARY" if binary else "VARCHAR"
    if kind == FIELD_TYPE.STRING:
        return "BINARY" if binary else "CHAR"
    if kind == FIELD_TYPE.BLOB:
        return "BLOB" if binary else "TEXT"
    if kind == FIELD_TYPE.NEWDECIMAL:
        return f"DECIMAL({column.precision},{column.decimals})"
    if kind == FIELD_TYPE.BIT:
        return f"BIT({column.bits})"
    return _NAMES.get(kind, f"binlog type {kind}")


def null_flags(bitmap: bytes, columns: int) -> tuple[bool, ...]:
    """A binlog table map's NULL bitmap as one flag per column (bit i set: column i takes NULL)."""
    return tuple(bool(bitmap[i // 8] & (1 << (i % 8))) for i in range(columns))


def binlog_column(column, nullable: bool | None = None, name: str | None = None) -> SourceColumn:
    """A binlog column (mysql-replication's, with binlog_row_metadata=FULL) as Debezium's MySQL
    connector types it: integers by size and sign, DECIMAL with its scale, DATE as days, DATETIME
    as epoch ms or µs of the wall time, TIMESTAMP as ISO UTC text, TIME as µs, text as strings,
    binary as bytes, BIT(1) as a boolean and a wider BIT as Bits (little-endian bytes). Optional
    as the column takes NULL (`nullable`, from the table map's NULL bitmap); unknown, every column
    but the primary key. `name`: the column's, when the binlog has none."""
    kind, optional = column.type, (not column.is_primary) if nullable is None else nullable
    name = column.name or name
    if kind in _INTEGERS:
        return SourceColumn(name, _INTEGERS[kind][1 if column.unsigned else 0], optional)
    if kind == FIELD_TYPE.NEWDECIMAL:
        return SourceColumn(name, "decimal", optional, column.decimals, column.precision)
    if kind in (FIELD_TYPE.DATETIME, FIELD_TYPE.DATETIME2):
        return SourceColumn(name, "datetime", optional, fsp=getattr(column, "fsp", 0))
    if kind in _SIMPLE:
        return SourceColumn(name, _SIMPLE[kind], optional)
    if kind == FIELD_TYPE.ENUM:
        return SourceColumn(name, "enum", optional, allowed=tuple(v for v in column.enum_values or () if v))
    if kind == FIELD_TYPE.SET:
        return SourceColumn(name, "set", optional, allowed=tuple(column.set_values or ()))
    if getattr(column, MARIADB_TYPE, None) is not None:
        return SourceColumn(name, "string", optional)  # INET6, UUID: MariaDB's text of them
    if kind in _TEXT:
        # A character column names its character set; a binary one (BINARY, VARBINARY, BLOB) "binary"
        # (or, in an older binlog, none): bytes, so bytes that are no UTF-8 reach the mapping as such.
        text = getattr(column, "character_set_name", None) not in (None, BINARY_CHARSET)
        return SourceColumn(name, "string" if text else "bytes", optional)
    if kind == FIELD_TYPE.BIT:  # BIT(1) a boolean, a wider one Debezium's Bits (the mapping reads its number)
        return SourceColumn(name, "bits", optional, length=column.bits)
    return SourceColumn(name, "string", optional)  # GEOMETRY: as the decoder gives it
