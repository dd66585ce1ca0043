"""The change-event format: Debezium's MySQL connector envelopes, written by the relay, read by the events DAG.

Topics are named as Debezium's MySQL connector names them, `<topic.prefix>.<database>.<table>`:
the prefix (EVENTS_TOPIC_PREFIX, RELAY_TOPIC_PREFIX), Base A's schema name (EVENTS_SOURCE_DATABASE;
the relay takes it from its URL) and the source table the mapping names (`base_sync.mapping`).
An event carries the source row in its own shape: every column of the table, as the binlog gives it.

Reading accepts what Debezium emits with its default settings, so Debezium can stand in front of
the platform instead of our relay: the JSON converter with or without the `schema`/`payload`
wrapper, dates as days since the epoch (`io.debezium.time.Date`), MySQL TIMESTAMP columns as ISO
strings in UTC (`ZonedTimestamp`), DATETIME as epoch milli- or microseconds of the wall time read as
if it were UTC (`Timestamp`, `MicroTimestamp`), DECIMAL in `precise` mode (base64 of the unscaled
two's-complement integer, the scale in the schema; `string` and `double` modes are read too), and
Kafka Connect's own types under `time.precision.mode=connect`.

Without the wrapper a value carries no type: the mapping says how to read the columns it reads
(its stamp columns are `datetime` or `timestamp`; a column feeding a date field is a date, one
feeding a decimal field a decimal); every other value is taken as the JSON gives it. A decimal must
then be its own number, `string` or `double` mode (our relay writes the exact text without the
wrapper): a `precise` base64 holds the unscaled digits only, its scale is in the schema, and the
field's scale is no stand-in for the column's (DECIMAL(10,4) 12.5 read at scale 2 was 1250.00), so
it is refused with the reason. Limits: an epoch integer of a DATETIME is taken as milliseconds below
10^14 and as microseconds above (today's instants are ~1.8e12 ms, ~1.8e15 µs); a text of digits
alone is read as a number, never as base64 (the base64 of a non-negative number never starts with a
digit, so only some negative ones could be taken so). The key is read by its schema type alone
(`_check_key_type`), the batch path's rule: an integer, else a dead letter; a text key is never
read as a number, base64 or digits, with a schema or without. A stamp column the event shows as
the other of DATETIME and TIMESTAMP than the mapping declares (the owners changed it) is refused
(`_check_stamp_types`), as the batch path refuses the entity: by its schema's logical type, and
without the wrapper by its form (ISO text with a zone a TIMESTAMP, an epoch integer a DATETIME: so
an epoch integer is no `timestamp` stamp). Not told, and read as declared: a schema field without a
logical type, a null, text without a zone.

Each change then goes through the entity's `SourceView` (`Topics.change`): an upsert becomes a bulk
record or a `Quarantined` with the reasons (the batch path's outcome for the same row), a row the
soft-delete rule marks deleted and a `d` become a bulk delete at the row's version. A version read
from a stamp written in whole milliseconds (`time.precision.mode=connect` writes a DATETIME(6) so)
is marked `coarse_version`: Base B may hold the same row state at its microseconds, and the drain
sends such a delete at Base B's version of the row when that is the same stamp (`events`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property

import orjson

from base_sync.backends import backend_named
from base_sync.dirty import FIRST_VERSION, ZERO_DATE, ZERO_TIMESTAMP, Quarantined, valid_date_text
from base_sync.mapping import SourceMapping, SourceView
from base_sync.mapping.check import KEY_EXPECTED, STAMP_TYPES
from base_sync.mapping.float_text import float32
from baseab_contract.bulk_format import REPLACES_VERSION, SOURCE_ID_RANGE
from baseab_contract.entities import ENTITIES, Kind

TOPIC_PREFIX = "base_a"
SOURCE_DATABASE = "base_a"
UPSERT_OPS = frozenset("cur")  # create, update, read (snapshot)
SNAPSHOT_OP = "r"
DELETE_OP = "d"
# `source.version` of our relay's events (EnvelopeWriter). It writes a date that is no date as its
# text ('0000-00-00', '2024-02-30'), so a date or DATETIME of 0 from it is the epoch itself; Debezium
# writes a zero date of a NOT NULL column as 0, the epoch's value (`_epoch_is_zero_date`).
RELAY_VERSION = "base-sync-relay"
# The payload field by which our relay marks a change it could not read whole (a partial row image,
# no column names): its value is the reason, and the change is never applied (a BadEvent with it).
INCOMPLETE = "incomplete"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
EPOCH_DAY = date(1970, 1, 1)
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant a datetime holds
# Without a schema an epoch integer is read as ms below this, as µs above (today: ~1.8e12 ms, ~1.8e15 µs).
MS_EPOCH_BELOW = 10**14

DATE = "io.debezium.time.Date"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
TIMESTAMP_MS = "io.debezium.time.Timestamp"
TIMESTAMP_US = "io.debezium.time.MicroTimestamp"
TIMESTAMP_NS = "io.debezium.time.NanoTimestamp"
TIME_MS = "io.debezium.time.Time"
TIME_US = "io.debezium.time.MicroTime"
TIME_NS = "io.debezium.time.NanoTime"
YEAR = "io.debezium.time.Year"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
# time.precision.mode=connect: Kafka Connect's own logical types (DATETIME as epoch ms of the wall time).
CONNECT_DATE = "org.apache.kafka.connect.data.Date"
CONNECT_TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
CONNECT_TIME = "org.apache.kafka.connect.data.Time"
# A FLOAT column's schema type: as the relay writes it, and as Kafka Connect's JsonConverter does.
FLOAT32_TYPES = ("float32", "float")
ENUM = "io.debezium.data.Enum"
# A BIT wider than one bit (BIT(1) is a boolean): its bytes little-endian, base64 in the JSON.
BITS = "io.debezium.data.Bits"
ENUM_SET = "io.debezium.data.EnumSet"
JSON = "io.debezium.data.Json"
WALL_TIMES = {TIMESTAMP_MS: 1000, TIMESTAMP_US: 1, TIMESTAMP_NS: None, CONNECT_TIMESTAMP: 1000}
TIMES_MS = (TIME_MS, CONNECT_TIME)
# What malformed input raises while it is read: a dead letter with the reason, never a stalled drain.
_MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, ArithmeticError)


# What Kafka allows in a topic name; Debezium writes any other character of a name as "_".
_NOT_IN_TOPIC_NAMES = re.compile(r"[^a-zA-Z0-9._-]")


def topic_for(table: str, prefix: str = TOPIC_PREFIX, database: str = SOURCE_DATABASE) -> str:
    """Debezium's MySQL topic of a table: `<topic.prefix>.<database>.<table>`, as Debezium's topic
    naming writes it (a table `emp$data` on the topic `...emp_data`)."""
    return _NOT_IN_TOPIC_NAMES.sub("_", f"{prefix}.{database}.{table}")


class BadEvent(ValueError):
    """A message that is not a change event this platform can apply; the reason goes to the dead letters."""


@dataclass(frozen=True)
class Change:
    """One decoded change of a source row, through the entity's mapping.

    `action` is what the drain does with it: `upsert` (`record` is the bulk record), `quarantine`
    (`quarantined` holds the mapping's reasons: the API's rejections, never Base B's table),
    `delete` (a `d`, or a row the soft-delete rule marks deleted) at `version`, or `skip` (a
    snapshot read of a table without a cursor, which has no commit time to version it by)."""

    entity: str
    id: int
    op: str  # the event's: c, u, r, d
    action: str  # upsert, quarantine, delete
    version: datetime | None  # the version Base B's guard compares; None when the row has no usable one
    row: dict  # the source row as decoded ({column: value}; the before image of a delete)
    source_ms: int | None  # when Base A committed it (source.ts_ms), for the event lag
    record: dict | None = None
    quarantined: Quarantined | None = None
    # The version is a stamp cut to whole milliseconds (Kafka Connect's Timestamp, Debezium's
    # Timestamp, a schemaless epoch in ms): Base B may hold the same row state at its microseconds.
    coarse_version: bool = False
    # An update's before image's version: the row state it replaced. Newer than `version` when Base
    # A's stamp went back (a later commit carrying an earlier stamp): see `replaces`.
    before_version: datetime | None = None

    @property
    def is_delete(self) -> bool:
        return self.action == "delete"

    @property
    def replaces(self) -> datetime | None:
        """The version this update replaces although older (its record's `replaces_version`)."""
        newer = self.before_version is not None and self.version is not None and self.before_version > self.version
        return self.before_version if newer else None


class Topics:
    """The change topics of the mapped entities, and how each topic's events become changes.

    An entity whose mapping has a row `filter` (SQL) is synced by the batch path alone: Python
    cannot evaluate the condition as Base A would, so the events path neither reads nor publishes
    its table (docs/architecture.md, "Events")."""

    def __init__(
        self, prefix: str = TOPIC_PREFIX, database: str = SOURCE_DATABASE, mapping: SourceMapping | None = None
    ):
        self.prefix = prefix
        self.database = database
        self.mapping = mapping or SourceMapping.from_settings()
        self.backend = backend_named("mysql")

    @classmethod
    def from_settings(cls, settings, mapping: SourceMapping | None = None) -> Topics:
        """From EventSettings (EVENTS_TOPIC_PREFIX, EVENTS_SOURCE_DATABASE) and the mapping file: no database."""
        return cls(settings.topic_prefix, settings.source_database, mapping)

    @cached_property
    def entities(self) -> tuple[str, ...]:
        """The entities the events path syncs: the mapped ones without a row filter."""
        return tuple(e for e in self.mapping.entities if not self.mapping.spec.entities[e].filter)

    @cached_property
    def by_topic(self) -> dict[str, str]:
        return {self.topic(e): e for e in self.entities}

    @property
    def names(self) -> list[str]:
        """The change topics, one per entity the events path syncs."""
        return list(self.by_topic)

    @property
    def tables(self) -> dict[str, str]:
        """{source table: entity} of the entities the events path syncs."""
        return {self.mapping.table_of(e): e for e in self.entities}

    def topic(self, entity: str) -> str:
        return topic_for(self.mapping.table_of(entity), self.prefix, self.database)

    def entity_of(self, topic: str) -> str | None:
        return self.by_topic.get(topic)

    def view(self, entity: str) -> SourceView:
        return self.mapping.view(entity, self.backend)

    @cached_property
    def hints(self) -> dict[str, dict[str, tuple]]:
        """{entity: {column: how to read it without a schema}} from the mapping."""
        return {e: _hints(self.view(e)) for e in self.entities}

    def decode(self, topic: str, value: bytes | None, key: bytes | None = None) -> Change | None:
        """The change a message carries; None for a tombstone. Raises BadEvent with the reason."""
        return decode(topic, value, self, key)


# Reading


def decode(
    topic: str, value: bytes | None, topics: Topics | None = None, message_key: bytes | None = None
) -> Change | None:
    """The change a message carries, through the mapping; None for a tombstone. Raises BadEvent with
    the reason. `message_key`, when given, must name the same row as the event."""
    try:
        return _decode(topic, value, topics, message_key)
    except BadEvent:
        raise
    except _MALFORMED as exc:  # a shape no check above foresaw: still the event's fault, not the drain's
        raise BadEvent(f"malformed event ({type(exc).__name__}: {exc})") from None


def _not_json_hint(value: bytes) -> str:
    """What a value that is no JSON likely is, for the two forms a connector's settings make (the probe:
    orjson's words alone sent operators searching)."""
    if len(value) >= 5 and value[0] == 0:  # magic byte 0, then a 4-byte schema id
        schema_id = int.from_bytes(value[1:5], "big")
        return (
            f" (it starts as a Schema Registry record does: magic byte 0, schema id {schema_id}: the connector "
            "writes Avro, Protobuf or JSON Schema through a registry; set its value.converter to "
            "org.apache.kafka.connect.json.JsonConverter)"
        )
    if value.startswith((b"\xff\xfe", b"\xfe\xff")):
        return " (it is UTF-16 text: the producer must write UTF-8 JSON)"
    return ""


def _decode(topic: str, value: bytes | None, topics: Topics | None, message_key: bytes | None) -> Change | None:
    if value is None:
        return None
    topics = topics or Topics()
    entity = topics.entity_of(topic)
    if entity is None:
        raise BadEvent(
            f"topic {topic!r} is not a change topic {topics.prefix}.{topics.database}.<table> of a mapped table"
        )
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"value is not JSON: {exc}{_not_json_hint(value)}") from None
    if document is None:
        return None  # a JSON null is Debezium's tombstone too
    if not isinstance(document, dict):
        raise BadEvent("value is not a JSON object")
    if set(document) <= {"schema", "payload"} and "payload" in document and document["payload"] is None:
        return None  # the JsonConverter's tombstone with schemas on
    payload, types = _unwrap(document)
    _check_source(payload.get("source"), topic, topics, entity)
    _check_complete(payload)
    op = _op(payload)
    image_name = "before" if op == DELETE_OP else "after"
    image = payload.get(image_name)
    if not isinstance(image, dict):
        raise BadEvent(f"op {op!r} needs an object in `{image_name}`")
    source_ms = _commit_ms(payload.get("source"))
    zero_dates_as_text = _writes_zero_dates_as_text(payload.get("source"))
    view = topics.view(entity)
    _check_key_type((types.get(image_name) or {}).get(view.spec.key), f"{image_name}.{view.spec.key}")
    _check_stamp_types(image, types.get(image_name, {}), view, entity, image_name)
    row, invalid = read_row(image, types.get(image_name, {}), topics.hints[entity], zero_dates_as_text)
    _binary_as_text(row, view.source_columns, view.field_columns)
    key = _key(row.get(view.spec.key), f"{image_name}.{view.spec.key}")
    row[view.spec.key] = key  # a precise-mode Decimal would reach the mapping, which takes only an int key
    _check_message_key(message_key, key, view.spec.key, image_name)
    if op == "u":
        _check_key_kept(payload.get("before"), types.get("before", {}), topics.hints[entity], view.spec.key, key)
    commit = EPOCH + timedelta(milliseconds=source_ms) if source_ms is not None else None
    coarse = _coarse_version(image, types.get(image_name, {}), row, view)
    if op == DELETE_OP:
        return _delete(entity, key, op, row, view, commit, source_ms, image_name, coarse)
    if op == SNAPSHOT_OP and not view.has_cursor:
        # Versioned by the commit time, a snapshot read has none: Debezium stamps it when it read the
        # row, after changes that committed during the snapshot and would lose to it. The batch
        # sync's checksums carry such a table's rows; the drain counts the read and skips it.
        return Change(entity, key, op, "skip", None, row, source_ms)
    _check_full_image(image, types.get(image_name, {}), view)
    change = _upsert(entity, key, op, image, row, invalid, view, commit, source_ms, coarse)
    if op == "u" and change.action == "upsert":
        before = payload.get("before")
        replaced = _version_replaced(before, types.get("before", {}), topics.hints[entity], view, zero_dates_as_text)
        change = replace(change, before_version=replaced)
        if change.replaces is not None:
            return replace(change, record={**change.record, REPLACES_VERSION: change.replaces})
    return change


def _check_source(source, topic: str, topics: Topics, entity: str) -> None:
    """The table and database an event's `source` names, when it names them, are its topic's
    (compared as the topic name writes them: `emp$data` is `emp_data` there): an event of another
    table on this topic would be applied as a row of this one. An event without them is not checked."""
    if not isinstance(source, dict):
        return
    ours = {"table": topics.mapping.table_of(entity), "db": topics.database}
    for field, name in ours.items():
        named = source.get(field)
        if named is not None and (not isinstance(named, str) or _in_topic_name(named) != _in_topic_name(name)):
            what = "table" if field == "table" else "database"
            raise BadEvent(
                f"`source.{field}` names the {what} {_excerpt(named)}, but its topic {topic} carries the {what} "
                f"{name!r}: not applied as a row of {name if field == 'table' else entity}"
            )


def _in_topic_name(name: str) -> str:
    return _NOT_IN_TOPIC_NAMES.sub("_", name)


def _check_key_kept(before, types: dict[str, dict], hints: dict[str, tuple], column: str, key: int) -> None:
    """An update's before image names the row its after image does. Applied as one update under the
    new key, a key change would leave the old key's row live; Debezium never writes one so (a key
    change is a delete and a create). A before image without a readable key is not checked."""
    if not isinstance(before, dict) or before.get(column) is None:
        return
    try:
        row, _ = read_row({column: before[column]}, types, hints)
        old = _key(row.get(column), f"before.{column}")
    except BadEvent:
        return
    if old != key:
        raise BadEvent(
            f"the key changed within one update (op u): before.{column} = {old}, after.{column} = {key}; applied "
            "as an update, the old key's row would stay live. Debezium emits a key change as a delete of the old "
            "key and a create of the new one"
        )


def _version_replaced(
    before, types: dict[str, dict], hints: dict[str, tuple], view: SourceView, zero_dates_as_text: bool
) -> datetime | None:
    """The version of the row state an update replaced (its before image, read by the same mapping);
    None without a usable one (no before image, a table without a cursor, a stamp no time). Only
    a guard's hint: an unreadable before image leaves the update as it is, never refused for it."""
    if not isinstance(before, dict) or not view.has_cursor:
        return None
    stamps = {s.column: before.get(s.column) for s in view.spec.cursor}  # only these: the hot path
    try:
        row, invalid = read_row(stamps, types, hints, zero_dates_as_text)
    except BadEvent:
        return None
    if any(stamp.column in invalid for stamp in view.spec.cursor):
        return None
    return view.version_of(row)


def _writes_zero_dates_as_text(source) -> bool:
    """Whether the event's producer writes a date that is no date as its text: our relay (its
    `source.version`), so that its 0 days or 0 ms is a real 1970-01-01. Any other producer is read
    as Debezium, whose 0 in a NOT NULL date column may be the zero date (`_epoch_is_zero_date`)."""
    return isinstance(source, dict) and source.get("version") == RELAY_VERSION


def _check_complete(payload: dict) -> None:
    """The relay's mark of a change it could not read whole: the reason, as the relay gives it."""
    problem = payload.get(INCOMPLETE)
    if problem is not None:
        reason = problem[:600] if isinstance(problem, str) else _excerpt(problem)
        raise BadEvent(f"incomplete change from the relay: {reason}")


def _op(payload: dict) -> str:
    op = payload.get("op")
    if isinstance(op, str) and (op in UPSERT_OPS or op == DELETE_OP):
        return op
    if op == "t":
        raise BadEvent(
            "op 't' (a TRUNCATE of the table) is not applied by the events path: the batch DAG's key "
            "comparison finds the rows gone (run it with compare_keys), through the mass-delete circuit breaker"
        )
    if op is None and "before" not in payload and "after" not in payload:
        raise BadEvent(
            "no `op`, `before` or `after`: not a change envelope. A record flattened by Debezium's "
            "ExtractNewRecordState transform cannot be applied (it drops deletes by default): configure "
            "the connector without it"
        )
    raise BadEvent(f"op {_excerpt(op)} is not one of c, u, r, d")


# A key column's schema types that are integers. A semantic name on one (io.debezium.time.Year,
# Date, a Timestamp) is no integer key: the batch path refuses YEAR, DATE and DATETIME keys.
INTEGER_TYPES = frozenset({"int8", "int16", "int32", "int64"})


def _check_key_type(schema: dict | None, where: str) -> None:
    """The key column's type, by the event's schema, is an integer, as the batch path requires
    (`mapping.check`, `base-a check`). A text, binary, DECIMAL, BIT or YEAR key is refused whatever
    its value looks like: read as an integer, 'SKU1' was row 4760885 and 'AAAB' and 'AAAAAAAB' one
    row. Without a schema the value alone decides (`_key`)."""
    if schema is None:
        return
    kind, name = schema.get("type"), schema.get("name")
    if kind in INTEGER_TYPES and name is None:
        return
    parameters = schema.get("parameters") or {}
    # Debezium's BIGINT UNSIGNED under bigint.unsigned.handling.mode=precise: a Decimal of scale 0
    # without the precision every DECIMAL column's schema carries (Decimal.builder(0) in Debezium).
    if name == DECIMAL and kind == "bytes" and str(parameters.get("scale")) == "0":
        if "connect.decimal.precision" not in parameters:
            return
    found = _told(kind) if name is None else f"{_told(name)} ({_told(kind)})"
    if name == DECIMAL:
        found += f" of precision {parameters.get('connect.decimal.precision')}, scale {parameters.get('scale')}"
    raise BadEvent(
        f"`{where}`: expected {KEY_EXPECTED}, found {found} by the event's schema: mapping keys must be integer "
        "columns (the batch path refuses this key too, `base-a check` names it)"
    )


# A TIMESTAMP as Debezium writes it without the schema wrapper (ZonedTimestamp: ISO 8601 with its
# zone, "Z" from Debezium and our relay); a DATETIME is never written so, but as an epoch integer.
_ZONED_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)\Z")


def _check_stamp_types(image: dict, types: dict[str, dict], view: SourceView, entity: str, image_name: str) -> None:
    """Each stamp column (cursor items, `created`) is the type the mapping declares, where the event
    tells it: a DATETIME read as a TIMESTAMP (or the other way) is an instant off by the zone's offset,
    so a later change was dropped as stale and another written hours early or late. The batch path
    refuses the entity then (`mapping.check`, SchemaDriftError); the drain refuses the change."""
    for stamp in view.stamps:
        if stamp.column not in image:
            continue  # `_upsert` names the missing columns
        found = _stamp_type(image[stamp.column], types.get(stamp.column))
        if found is None or found[0] == stamp.type:
            continue
        in_cursor = any(s.column == stamp.column for s in view.spec.cursor or [])
        is_created = view.spec.created is not None and view.spec.created.column == stamp.column
        named = " and ".join(role for role, held in (("cursor", in_cursor), ("created", is_created)) if held)
        zone = stamp.time_zone or view.default_zone
        declared = "UTC" if stamp.type == "timestamp" else zone
        raise BadEvent(
            f"`{image_name}.{stamp.column}`: {view.spec.table}.{stamp.column} ({named} of {entity}): expected "
            f"{STAMP_TYPES[stamp.type]} (declared `type: {stamp.type}`, {declared}), found {STAMP_TYPES[found[0]]} "
            f"({found[1]}): its type changed in Base A? Read as declared, the version would be off by the zone's "
            "offset (a DATETIME is wall time, a TIMESTAMP an instant in UTC): not applied. Write "
            f"`type: {found[0]}` for {stamp.column} in the mapping file (`base-a check` shows the live type); the "
            "batch sync refuses the entity until then and re-reads every row once the mapping changed"
        )


def _stamp_type(value, schema: dict | None) -> tuple[str, str] | None:
    """("timestamp" or "datetime", how the event tells it), or None where it does not: by the schema's
    logical type; without the wrapper by the value's form, as Debezium (a TIMESTAMP is a ZonedTimestamp
    in every time.precision.mode, a DATETIME an epoch integer in each) and our relay write them. Not
    told: a schema without a logical type, a null, a text without a zone."""
    if schema is not None:
        name = schema.get("name")
        if name == ZONED_TIMESTAMP:
            return "timestamp", f"{ZONED_TIMESTAMP} by the event's schema"
        if name in WALL_TIMES:
            return "datetime", f"{name} by the event's schema"
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return "datetime", "an epoch integer, as a DATETIME is written without the schema wrapper"
    if isinstance(value, str) and _ZONED_TEXT.match(value):
        return "timestamp", f"{_excerpt(value)}, as a TIMESTAMP is written without the schema wrapper"
    return None


def _told(text) -> str:
    """A schema's type or name as the reason writes it: a short text itself, anything else excerpted."""
    return text if isinstance(text, str) and len(text) <= 80 and text.isprintable() else _excerpt(text)


def _key(key, where: str) -> int:
    """The row's key (`where`: the image's column, for the reason): an integer in Base B's key range
    (a BIGINT UNSIGNED in `precise` mode arrives as a whole Decimal, its schema checked by
    `_check_key_type`). A text is never a key: without a schema, a text key's value could be read
    as a number (base64 or digits) only by guessing, and two keys could become one row."""
    if isinstance(key, Decimal) and key == key.to_integral_value():
        key = int(key)
    if isinstance(key, str):
        raise BadEvent(
            f"`{where}` must be an integer key, got {_excerpt(key)}: a text is no integer key (without the "
            "schema, a BIGINT UNSIGNED's precise-mode base64 cannot be told from a text key: write it as a "
            "number, bigint.unsigned.handling.mode=long, or with schemas on)"
        )
    if not isinstance(key, int) or isinstance(key, bool):
        raise BadEvent(f"`{where}` must be an integer key, got {_excerpt(key)}")
    low, high = SOURCE_ID_RANGE
    if not low <= key <= high:
        wrapped = " (a BIGINT UNSIGNED above 2^63-1 arrives negative under bigint.unsigned.handling.mode=long)"
        raise BadEvent(f"`{where}` = {key} is outside Base B's key range {low}..{high}{wrapped if key < 0 else ''}")
    return key


def _check_message_key(message_key: bytes | None, key: int, column: str, image_name: str) -> None:
    """The message key must name the event's row: Kafka keeps a row's events in order by their key,
    so a producer that keys them otherwise may have them applied out of order. Read as the relay
    writes it (`5`) or as Debezium does (`{"id": 5}`, or within `{"schema": ..., "payload": ...}`,
    read with the key's schema like the row); a key in none of these forms is not checked."""
    if message_key is None:
        return
    try:
        named = orjson.loads(message_key)
    except orjson.JSONDecodeError:
        return
    if isinstance(named, dict):
        named = _key_field(named, column)
    if not _names_row(named, key):
        raise BadEvent(
            f"the message key names row {_excerpt(named)} but `{image_name}.{column}` is {key}: the producer keyed "
            "the event for another row (Kafka orders a row's events by their key)"
        )


def _key_field(document: dict, column: str):
    """The key column's value in a Debezium message key, read with its schema when the key has one
    (a BIGINT UNSIGNED in precise mode is a base64 Decimal there too); as the JSON gives it otherwise."""
    if not isinstance(document.get("payload"), dict):
        return document.get(column)
    value = document["payload"].get(column)
    fields = (document.get("schema") or {}).get("fields") if isinstance(document.get("schema"), dict) else None
    schema = next((f for f in fields or () if isinstance(f, dict) and f.get("field") == column), None)
    if schema is None or value is None:
        return value
    try:
        return _value(value, schema, None)
    except (_Invalid, ValueError, TypeError, InvalidOperation, OverflowError, binascii.Error):
        return value  # compared as it is: a consistency check, not a reading


def _names_row(named, key: int) -> bool:
    """Whether a message key's value names the row `key`. A text without a schema names it as decimal
    digits or as precise-mode base64 (bigint.unsigned.handling.mode=precise, the key converter's
    schemas off); a value of another kind names no row (not checked). A comparison with the integer
    the event's row holds, never a reading of the key (`_key`)."""
    if isinstance(named, bool):
        return True
    if isinstance(named, int | Decimal):
        return named == key
    if not isinstance(named, str):
        return True
    if named == str(key):
        return True
    try:
        return _decimal(named, 0, precise=True) == key
    except (ValueError, TypeError, binascii.Error):
        return False


def _check_full_image(image: dict, types: dict[str, dict], view: SourceView) -> None:
    """A null the schema says a column cannot hold: the image is not the whole row (a MINIMAL row
    image leaves out the columns an UPDATE did not change); applying it would wipe them."""
    nulls = [c for c in view.source_columns if image.get(c) is None and (types.get(c) or {}).get("optional") is False]
    if nulls:
        raise BadEvent(
            f"`after` holds null in NOT NULL column(s) {', '.join(nulls)}: not the whole row; the connector "
            "needs Base A's binlog_row_image=FULL"
        )


def _upsert(entity, key, op, image, row, invalid, view: SourceView, commit, source_ms, coarse: bool) -> Change:
    """The mapping's bulk record of the row, its refusal with the reasons, or a soft delete."""
    missing = [c for c in view.source_columns if c not in image]
    if missing:
        raise BadEvent(
            f"`after` lacks columns the mapping reads: {', '.join(missing)} (renamed or dropped in "
            f"{view.spec.table}? `base-a check` names them, and the batch sync refuses the entity until the mapping "
            "follows)"
        )
    if view.is_deleted(row):
        return _delete(entity, key, op, row, view, commit, source_ms, "after", coarse)
    if not view.has_cursor and commit is None:
        raise BadEvent("a table without a cursor is versioned by the commit time: `source.ts_ms` is missing")
    applied = view.apply(row, invalid=frozenset(invalid), version=commit)
    if isinstance(applied, Quarantined):
        version = datetime.fromisoformat(applied.version) if applied.version else None
        return Change(entity, key, op, "quarantine", version, row, source_ms, quarantined=applied)
    return Change(entity, key, op, "upsert", applied["source_updated_at"], row, source_ms, record=applied)


def _delete(entity, key, op, row, view: SourceView, commit, source_ms, image_name, coarse: bool = False) -> Change:
    """A delete at the row's version (its cursor, by the batch path's rule); without a usable one,
    the commit time, which is after any version Base B can hold of the row. `coarse`: the cursor
    value was cut to milliseconds (the drain then asks Base B which microsecond it holds)."""
    version = view.version_of(row) if view.has_cursor else None
    if version is None:
        if commit is None:
            if not view.has_cursor:
                raise BadEvent("a table without a cursor is versioned by the commit time: `source.ts_ms` is missing")
            cursor = view.spec.cursor[0].column
            raise BadEvent(f"a delete needs `{image_name}.{cursor}` or `source.ts_ms` for its version")
        version, coarse = commit, False
    return Change(entity, key, op, "delete", version, row, source_ms, coarse_version=coarse)


def _coarse_version(image: dict, types: dict[str, dict], row: dict, view: SourceView) -> bool:
    """Whether the cursor column that gives the row's version (the first non-NULL) was written in
    whole milliseconds: time.precision.mode=connect writes every DATETIME so, a DATETIME(6) too."""
    column = next((s.column for s in view.spec.cursor or () if row.get(s.column) is not None), None)
    value = image.get(column) if column else None
    if isinstance(value, bool) or not isinstance(value, int):
        return False  # ISO text (a ZonedTimestamp) keeps its microseconds
    semantic = (types.get(column) or {}).get("name")
    return semantic in (TIMESTAMP_MS, CONNECT_TIMESTAMP) or (semantic is None and abs(value) < MS_EPOCH_BELOW)


def _binary_as_text(row: dict, mapped: Iterable[str], fields_read: Iterable[str]) -> None:
    """A binary column the mapping reads, as the text Base B holds: its bytes must be UTF-8, as the
    batch path reads them (unmapped binary columns are left as they are). Bytes that are no UTF-8
    in a column a field reads stay bytes: the mapping refuses the row with the batch path's reason
    (`SourceView.apply`); in another column (the key, the soft-delete flag) they make a dead letter."""
    for column in mapped:
        value = row.get(column)
        if isinstance(value, bytes):
            try:
                row[column] = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                if column in fields_read:
                    continue
                raise BadEvent(
                    f"`{column}`: its binary value is not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None


def _commit_ms(source) -> int | None:
    """`source.ts_ms`, the commit time in epoch milliseconds; None when the event has none."""
    value = source.get("ts_ms") if isinstance(source, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCH_MS:
        raise BadEvent(f"`source.ts_ms` must be the commit time in epoch milliseconds, got {_excerpt(value)}")
    return value


def _unwrap(document: dict) -> tuple[dict, dict[str, dict[str, dict]]]:
    """The payload, and the schema of each column of `before`/`after` when the wrapper carries one
    (the JsonConverter's `{"schema": ..., "payload": ...}`, `schema` null or left out)."""
    if "payload" not in document or not set(document) <= {"schema", "payload"}:
        return document, {}
    payload, schema = document["payload"], document.get("schema")
    if not isinstance(payload, dict):
        raise BadEvent("`payload` is not a JSON object")
    types: dict[str, dict[str, dict]] = {}
    for image in (schema or {}).get("fields", []) if isinstance(schema, dict) else []:
        if isinstance(image, dict) and image.get("field") in ("before", "after"):
            types[image["field"]] = {
                column["field"]: column
                for column in image.get("fields", [])
                if isinstance(column, dict) and "field" in column
            }
    return payload, types


def _hints(view: SourceView) -> dict[str, tuple]:
    """How to read a column without a schema: ("datetime",), ("timestamp",), ("date",), ("decimal",);
    a stamp column's hint adds "stamp" (the row's version or creation time: never the epoch itself)."""
    hints: dict[str, tuple] = {}
    for name, mapping in view.fields.items():
        field = view.declared[name]
        if mapping.column and field.kind == Kind.DATE:
            hints[mapping.column] = ("date",)
        elif mapping.column and field.kind == Kind.DECIMAL and mapping.cast != "integer":
            hints[mapping.column] = ("decimal",)  # cast integer: any column, text too
    for stamp in view.stamps:
        hints[stamp.column] = (stamp.type, "stamp")
    return hints


# A MySQL date's text (0000-00-00, 2024-00-10): an invalid one is a dirty value, anything else malformed.
_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}$")
_DATETIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?$")


def read_row(
    image: dict, types: dict[str, dict], hints: dict[str, tuple], zero_dates_as_text: bool = False
) -> tuple[dict, list[str]]:
    """The source row {column: Python value} of an image, and the columns holding no real date
    (each kept as its text, as Base A shows it: the batch path's reason names the same text).
    `zero_dates_as_text`: the producer writes those as text (our relay), so 0 is the epoch itself."""
    row, invalid = {}, []
    for name, value in image.items():
        schema = types.get(name)
        try:
            row[name] = _value(value, schema, hints.get(name), zero_dates_as_text)
        except _Invalid as exc:
            row[name] = exc.text
            invalid.append(name)
        except (ValueError, TypeError, InvalidOperation, OverflowError, binascii.Error) as exc:
            raise BadEvent(f"`{name}`: cannot read {_excerpt(value)} ({_why(exc)})") from None
    return row, invalid


def _excerpt(value, limit: int = 80) -> str:
    """The value for a reason: a dead letter's headers must stay far below the broker's message limit."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _why(exc: Exception, limit: int = 160) -> str:
    if isinstance(exc, InvalidOperation):  # its text is the list of the signals' classes
        return "not a decimal number"
    text = str(exc)  # a parser's message may quote the whole value
    return text if len(text) <= limit else f"{text[:limit]}…"


class _Invalid(Exception):
    """A date or time column holding no real date: its text."""

    def __init__(self, text: str):
        self.text = text


def _value(value, schema: dict | None, hint: tuple | None, zero_dates_as_text: bool = False):
    if value is None:
        return None
    semantic = (schema or {}).get("name")
    if semantic == BITS:  # the mapping reads a BIT as its unsigned number, as the batch path does
        return int.from_bytes(base64.b64decode(value, validate=True), "little")
    if semantic is None and schema is not None:
        if hint is None or schema.get("type") == "bytes":
            return _plain_typed(value, schema)
        if hint[0] == "decimal":  # decimal.handling.mode string or double: the number itself
            return _decimal(value, 0, precise=False, plain=True)
    kind = _kind(semantic, hint)
    if kind is None:
        return _year(value) if semantic == YEAR else value
    if kind == "decimal":
        if semantic == DECIMAL:
            scale = ((schema or {}).get("parameters") or {}).get("scale")
            if scale is None:  # Kafka Connect's Decimal always carries its scale: 0 would misread it
                raise ValueError(f"its {DECIMAL} schema has no `parameters.scale`")
            return _decimal(value, int(scale), precise=True)
        return _decimal(value, 0, precise=False)
    if kind == "time":
        return _duration(value, semantic)
    if semantic == ZONED_TIMESTAMP and not isinstance(value, str):  # its schema type is string
        raise TypeError(f"a {ZONED_TIMESTAMP} is ISO 8601 text")
    epoch_is_zero = not zero_dates_as_text and _epoch_is_zero_date(schema, hint)
    return _point_in_time(value, kind, semantic, epoch_is_zero)


def _epoch_is_zero_date(schema: dict | None, hint: tuple | None) -> bool:
    """Whether a Debezium date or DATETIME of 0 is read as the zero date. Debezium writes a zero date
    of a NOT NULL column as 0 and of a nullable one as null: so 0 is the zero date where the schema
    says NOT NULL, and without a schema in a stamp column (the row's version or creation time, which
    a legacy writer zeroes far more often than it means 1970). Ambiguous there: a real 1970-01-01
    (00:00:00) is read as the zero date too, and the row quarantined (README, "Dirty source values")."""
    if schema is not None:
        return _not_null(schema)
    return "stamp" in (hint or ())


def _point_in_time(value, kind: str, semantic: str | None, epoch_is_zero: bool):
    """A date, a DATETIME (wall time) or a TIMESTAMP (an instant); `_Invalid` for no real date.
    `epoch_is_zero`: a 0 is the zero date (`_epoch_is_zero_date`), else the epoch itself."""
    if isinstance(value, bool):
        raise TypeError(f"a {kind} is an epoch integer or ISO text")
    if isinstance(value, str):
        _check_date_text(value)
    elif value == 0 and epoch_is_zero and kind != "timestamp":
        raise _Invalid(ZERO_DATE if kind == "date" else ZERO_TIMESTAMP)
    if kind == "date":
        return EPOCH_DAY + timedelta(days=value) if isinstance(value, int) else date.fromisoformat(value)
    if kind == "datetime":
        return _wall_time(value, semantic)
    stamp = _timestamp(value, semantic)
    if stamp < FIRST_VERSION.replace(tzinfo=UTC):
        raise _Invalid(ZERO_TIMESTAMP)  # the zero TIMESTAMP, as the binlog and Debezium show it
    return stamp


def _not_null(schema: dict | None) -> bool:
    return schema is not None and schema.get("optional") is False


def _kind(semantic: str | None, hint: tuple | None) -> str | None:
    if semantic == DECIMAL:
        return "decimal"
    if semantic in (DATE, CONNECT_DATE):
        return "date"
    if semantic in WALL_TIMES:
        return "datetime"
    if semantic == ZONED_TIMESTAMP:
        return "timestamp"
    if semantic in (*TIMES_MS, TIME_US, TIME_NS):
        return "time"
    if semantic is not None:
        if hint is not None:  # the mapping reads a date, a stamp or a decimal from it: no guessing
            raise TypeError(f"its logical type {semantic} is not read as a {hint[0]}")
        return None  # Enum, EnumSet, Json, Year...: the JSON value itself
    return hint[0] if hint else None


def _year(value):
    """A YEAR as MariaDB writes it, four digits: YEAR 0000 is the number 0 (its text "0000", not "0")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a {YEAR} is an integer")
    return f"{value:04d}"


def _plain_typed(value, schema: dict):
    if schema.get("type") == "bytes" and isinstance(value, str):
        return base64.b64decode(value, validate=True)  # binary.handling.mode=bytes
    if schema.get("type") in FLOAT32_TYPES and isinstance(value, int | float) and not isinstance(value, bool):
        return float32(value)  # a FLOAT: its text has FLOAT's digits (mapping.float_text)
    return value


def _check_date_text(text: str) -> None:
    """A date or date-time text Base A holds but that is no date (the zero date, a zero part): invalid."""
    day = text[:10]
    if (_DATE_SHAPE.fullmatch(text) or _DATETIME_SHAPE.fullmatch(text)) and not valid_date_text(day):
        raise _Invalid(text)


def _decimal(value, scale: int, precise: bool, plain: bool = False) -> Decimal:
    """`precise`: the schema says base64 of the unscaled integer at `scale`; `plain`: the number
    itself (a string or a double). Neither (no schema): the number itself, and a text that is no
    number's is refused, since a base64 without its schema's scale is no amount."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("a decimal is a number or a string")
    if isinstance(value, int | float) or plain:
        return Decimal(str(value))  # decimal.handling.mode=double (or string)
    if not precise:
        return _decimal_text(value)
    digits = base64.b64decode(value, validate=True)
    if not digits:  # int.from_bytes(b"") is 0: an empty value would be stored as zero
        raise ValueError("an empty value is no number")
    unscaled = int.from_bytes(digits, "big", signed=True)
    return Decimal(unscaled).scaleb(-scale)  # precise (the default)


# Debezium's decimal.handling.mode=string writes BigDecimal.toPlainString(): digits, a point, a sign.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


def _decimal_text(value: str) -> Decimal:
    """A decimal without a schema: `string` mode's exact text. Base64 (`precise` mode) holds the
    unscaled digits alone; read at a guessed scale it would be an amount 10^n off, so it is refused."""
    if _DECIMAL_TEXT.match(value):
        return Decimal(value)
    if value and _BASE64.match(value):
        raise ValueError(
            "precise-mode base64 without the schema wrapper, whose scale it alone holds "
            "(write decimals as text, decimal.handling.mode=string, or with the schema)"
        )
    raise ValueError("not a decimal number")


def _wall_time(value, semantic: str | None) -> datetime:
    """A DATETIME: the wall time, naive (Debezium writes it as epoch units as if it were UTC)."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed.astimezone(UTC).replace(tzinfo=None)
    return _epoch(value, semantic).replace(tzinfo=None)


def _timestamp(value, semantic: str | None) -> datetime:
    """A TIMESTAMP: an instant, aware UTC."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return _epoch(value, semantic)


def _epoch(value, semantic: str | None) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a time is an ISO string or an epoch integer")
    if semantic == TIMESTAMP_NS:
        return EPOCH + timedelta(microseconds=value // 1000)
    # Without a schema an integer is ambiguous: today's epoch is ~1.8e12 in ms and ~1.8e15 in µs.
    if semantic == TIMESTAMP_US or (semantic not in WALL_TIMES and abs(value) >= MS_EPOCH_BELOW):
        return EPOCH + timedelta(microseconds=value)
    return EPOCH + timedelta(milliseconds=value)


def _duration(value, semantic: str | None) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a time of day is an integer")
    if semantic in TIMES_MS:
        return timedelta(milliseconds=value)
    if semantic == TIME_NS:
        return timedelta(microseconds=value // 1000)
    return timedelta(microseconds=value)


# Writing


@dataclass(frozen=True)
class SourceColumn:
    """A column of a source table as an envelope carries it (Debezium's MySQL type mapping).

    `type`: int16, int32, int64, float32, float64, boolean, string, bytes, decimal, decimal_text,
    date, datetime, timestamp, time, year, enum, set, json, bits (a BIT: BIT(1) a boolean, a wider
    one Bits). `decimal_text`: a DECIMAL as its exact text (Debezium's decimal.handling.mode=string)."""

    name: str
    type: str
    optional: bool = True
    scale: int = 0
    precision: int | None = None
    fsp: int = 0  # fractional digits of a DATETIME: up to 3 Debezium writes ms, above µs
    allowed: tuple[str, ...] = ()  # an ENUM's or SET's values
    length: int = 1  # a BIT's number of bits (type `bits`)

    def without_schema(self) -> SourceColumn:
        """The column as an event without the schema wrapper carries it: a DECIMAL as its exact text,
        since precise mode's base64 holds the unscaled digits and only the schema says the scale;
        binary as its text (base64 would be read as text: only the schema says it is bytes), so
        bytes that are no UTF-8 lose what they were (U+FFFD): the reason to keep the schema on."""
        if self.type in ("decimal", "bytes"):
            return replace(self, type="decimal_text" if self.type == "decimal" else "string")
        return self

    def schema(self) -> dict:
        base = {"optional": self.optional, "field": self.name}
        if self.type == "decimal_text":
            return {"type": "string", **base}
        if self.type == "decimal":
            parameters = {"scale": str(self.scale)}
            if self.precision is not None:
                parameters["connect.decimal.precision"] = str(self.precision)
            return {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": parameters, **base}
        if self.type == "date":
            return {"type": "int32", "name": DATE, "version": 1, **base}
        if self.type == "datetime":
            return {"type": "int64", "name": TIMESTAMP_US if self.fsp > 3 else TIMESTAMP_MS, "version": 1, **base}
        if self.type == "timestamp":
            return {"type": "string", "name": ZONED_TIMESTAMP, "version": 1, **base}
        if self.type == "time":
            return {"type": "int64", "name": TIME_US, "version": 1, **base}
        if self.type == "year":
            return {"type": "int32", "name": YEAR, "version": 1, **base}
        if self.type in ("enum", "set"):
            name = ENUM if self.type == "enum" else ENUM_SET
            parameters = {"allowed": ",".join(self.allowed)}
            return {"type": "string", "name": name, "version": 1, "parameters": parameters, **base}
        if self.type == "json":
            return {"type": "string", "name": JSON, "version": 1, **base}
        if self.type == "bits":
            if self.length == 1:
                return {"type": "boolean", **base}
            return {"type": "bytes", "name": BITS, "version": 1, "parameters": {"length": str(self.length)}, **base}
        return {"type": self.type, **base}

    def encode(self, value, invalid: bool = False):
        """A driver's value in Debezium's encoding. A date that is no date (`invalid`) as its text:
        the one the binlog gave (`2024-00-10`), else the zero date's."""
        if invalid and self.type in ("date", "datetime"):
            # Debezium would write null here: the row would change silently (base_sync.dirty).
            zero = ZERO_DATE if self.type == "date" else ZERO_TIMESTAMP
            return value if isinstance(value, str) else zero
        if value is None:
            return None
        if self.type in ("decimal", "decimal_text"):
            return _precise(value, self.scale) if self.type == "decimal" else _plain_decimal(value, self.scale)
        if self.type == "date":
            return (value - EPOCH_DAY).days
        if self.type == "datetime":
            wall = value.replace(tzinfo=None) if isinstance(value, datetime) else datetime.combine(value, time())
            unit = timedelta(microseconds=1) if self.fsp > 3 else timedelta(milliseconds=1)
            return (wall - EPOCH_NAIVE) // unit
        if self.type == "timestamp":
            return _zoned(value)
        if self.type == "time":
            return value // timedelta(microseconds=1) if isinstance(value, timedelta) else value
        if self.type == "set":
            return ",".join(v for v in self.allowed if v in value) if isinstance(value, set | frozenset) else value
        if self.type == "json":
            return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        if self.type == "bytes" and isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode()
        if self.type in ("boolean", "bits"):
            return bool(value) if self.type == "boolean" else _bits(value, self.length)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value


def _bits(value, length: int) -> bool | str:
    """A BIT as Debezium writes it: BIT(1) a boolean, a wider one its bytes little-endian (base64),
    from what a reader gives: its number (read as `col + 0`), the driver's bytes (big-endian), or
    mysql-replication's text of the bits ('01000001')."""
    if isinstance(value, bytes | bytearray):
        number = int.from_bytes(value, "big")
    else:
        number = int(value, 2) if isinstance(value, str) else int(value)
    if length == 1:
        return bool(number)
    return base64.b64encode(number.to_bytes((length + 7) // 8, "little")).decode()


def identity_columns(entity: str) -> list[SourceColumn]:
    """The columns of an entity's table as `base-a init` creates it (the demo's Base A)."""
    columns = [SourceColumn("id", "int64", optional=False)]
    for field in ENTITIES[entity].fields:
        optional = not field.required
        if field.kind == Kind.DECIMAL:
            columns.append(SourceColumn(field.name, "decimal", optional, field.scale or 0, field.precision))
        elif field.kind == Kind.DATE:
            columns.append(SourceColumn(field.name, "date", optional))
        else:
            columns.append(SourceColumn(field.name, "string", optional))
    columns += [SourceColumn(name, "timestamp", optional=False) for name in ("created_at", "updated_at")]
    return columns


class EnvelopeWriter:
    """Debezium envelopes for one source table, as the MySQL connector writes them by default.

    The schema part never changes for a table, so it is serialised once and spliced into every message.
    """

    def __init__(
        self,
        table: str,
        columns: list[SourceColumn],
        server_name: str = TOPIC_PREFIX,
        database: str = SOURCE_DATABASE,
        with_schema: bool = True,
    ):
        self.table = table
        self.columns = columns if with_schema else [c.without_schema() for c in columns]
        self.source = {"version": RELAY_VERSION, "connector": "mysql", "name": server_name, "db": database}
        self.with_schema = with_schema
        self._schema = orjson.dumps(_envelope_schema(columns, server_name, database, table)) if with_schema else b""

    @classmethod
    def identity(
        cls, entity: str, server_name: str = TOPIC_PREFIX, database: str = SOURCE_DATABASE, with_schema: bool = True
    ) -> EnvelopeWriter:
        """The writer of the platform's own Base A table of an entity."""
        return cls(entity, identity_columns(entity), server_name, database, with_schema)

    def row(self, row: dict, invalid: frozenset = frozenset(), partial: bool = False) -> dict:
        """A source row (driver types) in Debezium's encodings; the date columns named in `invalid`
        (ones the binlog held but could not read as a date) as their text, or the zero date's.
        `partial`: only the columns the row holds (an incomplete change's image)."""
        columns = [c for c in self.columns if c.name in row] if partial else self.columns
        return {c.name: c.encode(row.get(c.name), c.name in invalid) for c in columns}

    def envelope(
        self,
        op: str,
        before: dict | None,
        after: dict | None,
        source: dict,
        ts_ms: int,
        invalid: tuple = ((), ()),
        incomplete: str | None = None,
    ) -> bytes:
        """`invalid`: the names of the columns of `before` and of `after` holding no valid date.
        `incomplete`: why the change cannot be applied (the relay's reason); the images then hold
        only what the binlog gave, and the drain dead-letters the event with the reason."""
        partial = incomplete is not None
        body = {
            "before": self.row(before, frozenset(invalid[0]), partial) if before is not None else None,
            "after": self.row(after, frozenset(invalid[1]), partial) if after is not None else None,
            "source": {**self.source, "table": self.table, **source},
            "op": op,
            "ts_ms": ts_ms,
            "transaction": None,
        }
        if partial:
            body[INCOMPLETE] = incomplete
        payload = orjson.dumps(body)
        if not self.with_schema:
            return payload
        return b'{"schema":' + self._schema + b',"payload":' + payload + b"}"


def _precise(value: Decimal, scale: int) -> str:
    unscaled = int(Decimal(value).scaleb(scale).to_integral_value())
    length = max(1, (unscaled.bit_length() + 8) // 8)  # room for the sign bit
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


def _plain_decimal(value: Decimal, scale: int) -> str:
    """A DECIMAL's exact text at its column's scale, as MariaDB and BigDecimal.toPlainString() write
    it ('12.5000', never '1.25E+1'; no negative zero)."""
    value = Decimal(value)
    return f"{value.copy_abs() if value.is_zero() else value:.{scale}f}"


def _zoned(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _envelope_schema(columns: list[SourceColumn], server_name: str, database: str, table: str) -> dict:
    fields = [c.schema() for c in columns]
    value = f"{server_name}.{database}.{table}.Value"
    source_fields = [
        {"type": "string", "optional": False, "field": "version"},
        {"type": "string", "optional": False, "field": "connector"},
        {"type": "string", "optional": False, "field": "name"},
        {"type": "int64", "optional": False, "field": "ts_ms"},
        {"type": "string", "optional": True, "field": "db"},
        {"type": "string", "optional": True, "field": "table"},
        {"type": "int64", "optional": False, "field": "server_id"},
        {"type": "string", "optional": True, "field": "gtid"},
        {"type": "string", "optional": False, "field": "file"},
        {"type": "int64", "optional": False, "field": "pos"},
        {"type": "int32", "optional": False, "field": "row"},
    ]
    return {
        "type": "struct",
        "optional": False,
        "name": f"{server_name}.{database}.{table}.Envelope",
        "version": 1,
        "fields": [
            {"type": "struct", "fields": fields, "optional": True, "name": value, "field": "before"},
            {"type": "struct", "fields": fields, "optional": True, "name": value, "field": "after"},
            {
                "type": "struct",
                "fields": source_fields,
                "optional": False,
                "name": "io.debezium.connector.mysql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
            {"type": "struct", "optional": True, "field": "transaction", "fields": []},
        ],
    }
