"""The change-event format: Debezium's MySQL connector envelopes, written by the relay, read by the events DAG.

Reading accepts what Debezium emits with its default settings, so Debezium can stand in front of
the platform instead of our relay: the JSON converter with or without the `schema`/`payload`
wrapper, dates as days since the epoch (`io.debezium.time.Date`), MySQL TIMESTAMP columns as ISO
strings in UTC (`ZonedTimestamp`), DATETIME as epoch milli- or microseconds (`Timestamp`,
`MicroTimestamp`), DECIMAL in `precise` mode (base64 of the unscaled two's-complement integer, the
scale in the schema; `string` and `double` modes are read too). Without the wrapper a value carries
no type, so the entity's declared fields say how to read it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import orjson

from base_sync.dirty import ZERO_DATE, is_zero_stamp, reason, valid_date_text
from baseab_contract.entities import ENTITIES, Entity, Kind

TOPIC_PREFIX = "base_a"
UPSERT_OPS = frozenset("cur")  # create, update, read (snapshot)
DELETE_OP = "d"
TIMESTAMPS = ("created_at", "updated_at")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DAY = date(1970, 1, 1)

DATE = "io.debezium.time.Date"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
TIMESTAMP_MS = "io.debezium.time.Timestamp"
TIMESTAMP_US = "io.debezium.time.MicroTimestamp"
TIMESTAMP_NS = "io.debezium.time.NanoTimestamp"
DECIMAL = "org.apache.kafka.connect.data.Decimal"


def topic_for(entity: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}.{entity}"


def entity_topics(prefix: str = TOPIC_PREFIX) -> list[str]:
    """The change topics, one per entity."""
    return [topic_for(entity, prefix) for entity in ENTITIES]


def entity_of(topic: str, prefix: str = TOPIC_PREFIX) -> str | None:
    name = topic.removeprefix(f"{prefix}.")
    return name if name != topic and name in ENTITIES else None


class BadEvent(ValueError):
    """A message that is not a change event this platform can apply; the reason goes to the dead letters."""


@dataclass(frozen=True)
class Change:
    """One decoded change: an upsert (`row` holds Base A's columns) or a delete, at a source version."""

    entity: str
    id: int
    op: str
    version: datetime  # Base A's updated_at the change carries (a delete: the deleted row's last one)
    row: dict | None  # id, the entity's fields, created_at, updated_at; None for a delete
    source_ms: int | None  # when Base A committed it (source.ts_ms), for the event lag
    problems: tuple = ()  # {field, message} of each invalid date (base_sync.dirty): quarantined, not applied

    @property
    def is_delete(self) -> bool:
        return self.op == DELETE_OP


# Reading


def decode(topic: str, value: bytes | None, prefix: str = TOPIC_PREFIX) -> Change | None:
    """The change a message carries; None for a tombstone. Raises BadEvent with the reason."""
    if value is None:
        return None
    entity = entity_of(topic, prefix)
    if entity is None:
        raise BadEvent(f"topic {topic!r} is not {prefix}.<entity> for a known entity")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"value is not JSON: {exc}") from None
    if document is None:
        return None  # a JSON null is Debezium's tombstone too
    if not isinstance(document, dict):
        raise BadEvent("value is not a JSON object")
    payload, types = _unwrap(document)
    op = payload.get("op")
    if op not in UPSERT_OPS and op != DELETE_OP:
        raise BadEvent(f"op {op!r} is not one of c, u, r, d")
    image_name = "before" if op == DELETE_OP else "after"
    image = payload.get(image_name)
    if not isinstance(image, dict):
        raise BadEvent(f"op {op!r} needs an object in `{image_name}`")
    source = payload.get("source") if isinstance(payload.get("source"), dict) else {}
    source_ms = source.get("ts_ms") if isinstance(source.get("ts_ms"), int) else None
    problems: list[dict] = []
    row = _row(ENTITIES[entity], image, types.get(image_name, {}), problems)
    key = row["id"]
    if not isinstance(key, int) or isinstance(key, bool):
        raise BadEvent(f"`{image_name}.id` must be an integer, got {key!r}")
    version = row.get("updated_at")
    if op == DELETE_OP:
        if version is None and source_ms is None:
            raise BadEvent("a delete needs `before.updated_at` or `source.ts_ms` for its version")
        if version is None or is_zero_stamp(version):  # no version (the zero timestamp): the commit time
            if source_ms is None:
                raise BadEvent("a delete of a row without a version needs `source.ts_ms`")
            version = EPOCH + timedelta(milliseconds=source_ms)
        return Change(entity, key, op, version, None, source_ms)
    return _upsert(entity, key, op, row, source_ms, problems)


def _upsert(entity: str, key: int, op: str, row: dict, source_ms: int | None, problems: list[dict]) -> Change:
    version = row.get("updated_at")
    if version is None:
        raise BadEvent("`after.updated_at` is missing: it is the version the API guards on")
    if row.get("created_at") is None:
        raise BadEvent("`after.created_at` is missing")
    # The zero timestamp arrives as the epoch (the binlog's reading, and Debezium's for NOT NULL).
    problems += [reason(name, None) for name in TIMESTAMPS if is_zero_stamp(row[name])]
    return Change(entity, key, op, version, row, source_ms, tuple(problems))


def _delete_version(version: datetime | None, source_ms: int | None) -> datetime:
    """A delete's version: the deleted row's last one; without one (or the zero timestamp), the commit time."""
    if version is not None and not is_zero_stamp(version):
        return version
    if source_ms is None:
        raise BadEvent("a delete needs `before.updated_at` or `source.ts_ms` for its version")
    return EPOCH + timedelta(milliseconds=source_ms)


def _unwrap(document: dict) -> tuple[dict, dict[str, dict[str, dict]]]:
    """The payload, and the schema of each column of `before`/`after` when the wrapper carries one."""
    if "payload" not in document or "schema" not in document:
        return document, {}
    payload, schema = document["payload"], document["schema"]
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


# A MySQL date's text (0000-00-00, 2024-00-10): an invalid one is a dirty value, anything else malformed.
_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}$")
_TEXT_KINDS = frozenset((Kind.STRING, Kind.TEXT, Kind.EMAIL))


def _row(entity: Entity, image: dict, types: dict[str, dict], problems: list[dict]) -> dict:
    row = {"id": image.get("id")}
    for field in entity.fields:
        value, schema = image.get(field.name), types.get(field.name)
        if (
            field.kind == Kind.DATE
            and isinstance(value, str)
            and _DATE_SHAPE.match(value)
            and not valid_date_text(value)
        ):
            row[field.name] = value  # an invalid date as its text (the relay writes the zero date so)
            problems.append(reason(field.name, value))
        elif value is None or (field.kind in _TEXT_KINDS and isinstance(value, str) and "name" not in (schema or ())):
            row[field.name] = value  # the common case, read as is
        else:
            row[field.name] = _value(field.name, value, schema, field.kind, field.scale)
    for name in TIMESTAMPS:
        row[name] = _value(name, image.get(name), types.get(name), "timestamp", None)
    return row


def _value(name: str, value, schema: dict | None, kind, scale: int | None):
    if value is None:
        return None
    semantic = (schema or {}).get("name")
    try:
        if kind == Kind.DECIMAL or semantic == DECIMAL:
            if semantic == DECIMAL:
                scale = int(((schema or {}).get("parameters") or {}).get("scale", scale or 0))
            return _decimal(value, scale or 0, precise=semantic == DECIMAL)
        if kind == Kind.DATE or semantic == DATE:
            return EPOCH_DAY + timedelta(days=value) if isinstance(value, int) else date.fromisoformat(value)
        if kind == "timestamp":
            return _timestamp(value, semantic)
    except (ValueError, TypeError, InvalidOperation, OverflowError, binascii.Error) as exc:
        raise BadEvent(f"`{name}`: cannot read {value!r} ({exc})") from None
    return value


def _decimal(value, scale: int, precise: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("a decimal is a number or a string")
    if isinstance(value, int | float):
        return Decimal(str(value))  # decimal.handling.mode=double
    # Without a schema, "string" mode writes the point whenever the scale has digits; base64 has none.
    if not precise and ("." in value or scale == 0):
        return Decimal(value)  # decimal.handling.mode=string
    unscaled = int.from_bytes(base64.b64decode(value, validate=True), "big", signed=True)
    return Decimal(unscaled).scaleb(-scale)  # precise (the default)


def _timestamp(value, semantic: str | None) -> datetime:
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a time is an ISO string or an epoch integer")
    if semantic == TIMESTAMP_NS:
        return EPOCH + timedelta(microseconds=value // 1000)
    # Without a schema an integer is ambiguous: today's epoch is ~1.8e12 in ms and ~1.8e15 in µs.
    if semantic == TIMESTAMP_US or (semantic is None and abs(value) >= 10**14):
        return EPOCH + timedelta(microseconds=value)
    return EPOCH + timedelta(milliseconds=value)


# Writing


class EnvelopeWriter:
    """Debezium envelopes for one entity, as the MySQL connector writes them by default.

    The schema part never changes for a table, so it is serialised once and spliced into every message.
    """

    def __init__(self, entity: str, server_name: str = TOPIC_PREFIX, database: str = "", with_schema: bool = True):
        self.entity = ENTITIES[entity]
        self.source = {"version": "base-sync-relay", "connector": "mysql", "name": server_name, "db": database}
        self.with_schema = with_schema
        self._schema = orjson.dumps(_envelope_schema(self.entity, server_name)) if with_schema else b""

    def row(self, row: dict, invalid: frozenset = frozenset()) -> dict:
        """A Base A row (driver types) in Debezium's encodings; the date columns named in `invalid`
        (ones the binlog held but could not read as a date) as the text of the zero date."""
        out = {"id": row["id"]}
        for field in self.entity.fields:
            value = row.get(field.name)
            if field.name in invalid and field.kind == Kind.DATE:
                value = ZERO_DATE  # Debezium would write null here: the row would change silently
            elif value is not None and field.kind == Kind.DECIMAL:
                value = _precise(value, field.scale or 0)
            elif value is not None and field.kind == Kind.DATE:
                value = (value - EPOCH_DAY).days
            out[field.name] = value
        for name in TIMESTAMPS:
            out[name] = _zoned(row.get(name))
        return out

    def envelope(
        self, op: str, before: dict | None, after: dict | None, source: dict, ts_ms: int, invalid: tuple = ((), ())
    ) -> bytes:
        """`invalid`: the names of the columns of `before` and of `after` holding no valid date."""
        payload = orjson.dumps(
            {
                "before": self.row(before, frozenset(invalid[0])) if before is not None else None,
                "after": self.row(after, frozenset(invalid[1])) if after is not None else None,
                "source": {**self.source, "table": self.entity.name, **source},
                "op": op,
                "ts_ms": ts_ms,
                "transaction": None,
            }
        )
        if not self.with_schema:
            return payload
        return b'{"schema":' + self._schema + b',"payload":' + payload + b"}"


def _precise(value: Decimal, scale: int) -> str:
    unscaled = int(Decimal(value).scaleb(scale).to_integral_value())
    length = max(1, (unscaled.bit_length() + 8) // 8)  # room for the sign bit
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


def _zoned(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _column_schema(name: str, kind, field=None, optional: bool = True) -> dict:
    if kind == Kind.DECIMAL:
        return {
            "type": "bytes",
            "optional": optional,
            "name": DECIMAL,
            "version": 1,
            "parameters": {"scale": str(field.scale or 0), "connect.decimal.precision": str(field.precision or 10)},
            "field": name,
        }
    if kind == Kind.DATE:
        return {"type": "int32", "optional": optional, "name": DATE, "version": 1, "field": name}
    if kind == "timestamp":
        return {"type": "string", "optional": optional, "name": ZONED_TIMESTAMP, "version": 1, "field": name}
    if kind == "id":
        return {"type": "int64", "optional": False, "field": name}
    return {"type": "string", "optional": optional, "field": name}


def _envelope_schema(entity: Entity, server_name: str) -> dict:
    columns = [_column_schema("id", "id")]
    columns += [_column_schema(f.name, f.kind, f, optional=not f.required) for f in entity.fields]
    columns += [_column_schema(name, "timestamp", optional=False) for name in TIMESTAMPS]
    value = f"{server_name}.{entity.name}.Value"
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
        "name": f"{server_name}.{entity.name}.Envelope",
        "version": 1,
        "fields": [
            {"type": "struct", "fields": columns, "optional": True, "name": value, "field": "before"},
            {"type": "struct", "fields": columns, "optional": True, "name": value, "field": "after"},
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
