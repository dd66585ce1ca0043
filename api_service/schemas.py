"""Request and response models, derived from the entity declarations.

pydantic validates in its Rust core, so a 5,000-record bulk request is checked in a few
milliseconds; the same models give the OpenAPI document its JSON schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    create_model,
)

from baseab_contract.bulk_format import REPLACES_VERSION, SOURCE_ID_RANGE
from baseab_contract.entities import ENTITIES, Entity, Field, Kind

if TYPE_CHECKING:
    from api_service.fastpath import FastDecoder

MAX_BIGINT = SOURCE_ID_RANGE[1]
MIN_BIGINT = -(2**63)
# PostgreSQL text cannot hold NUL; refusing it here keeps such input a 422 instead of a 500.
NO_NUL = r"^[^\x00]*$"
# No `\s`: Python's and ECMAScript's (a client's schema validator) are different sets of characters.
# ASCII controls and space are refused, as by either; anything else is left to the address's owner.
EMAIL_PATTERN = r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$"


def _to_utc(value: datetime) -> datetime:
    """Normalise to an aware UTC datetime (naive input is taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00
        raise ValueError("timestamp out of range") from exc


def _iso_only(value: object) -> object:
    """pydantic would read numbers as Unix time; the API takes ISO 8601 text, as documented."""
    if isinstance(value, bool | int | float | Decimal) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("use ISO 8601, e.g. 2024-01-31 or 2024-01-31T12:00:00Z")
    return value


def _date_only(value: object) -> object:
    """A date is YYYY-MM-DD: pydantic would also take a timestamp at midnight ("2024-01-05T00:00:00+05:00",
    its offset dropped) and one whose time only rounds to zero (nanoseconds, cut)."""
    if isinstance(value, str) and not _DATE_TEXT.fullmatch(value):
        raise ValueError("use a date as YYYY-MM-DD, e.g. 2024-01-31, without a time")
    return _iso_only(value)


def _timestamp(value: object, handler: ValidatorFunctionWrapHandler) -> datetime:
    """ISO 8601 text to the microsecond, as the database keeps it: further digits round, as
    msgspec's fast pass and PostgreSQL round them (pydantic alone would cut them off, so one
    record's version would depend on the others in its request)."""
    value = _iso_only(value)
    carry = False
    if isinstance(value, str) and (extra := _SUB_MICROSECONDS.search(value)):
        carry = extra.group(2) >= "5"
        value = value[: extra.end(1)] + value[extra.end() :]
    parsed = _to_utc(handler(value))
    try:
        return parsed + timedelta(microseconds=1) if carry else parsed
    except OverflowError as exc:
        raise ValueError("timestamp out of range") from exc


def _json_integer(value: object) -> object:
    """An integer as JSON Schema means one: 5 and 5.0 (a Decimal here), not `true` and not "5"."""
    finite = isinstance(value, float) or (isinstance(value, Decimal) and value.is_finite())  # NaN < 1 raises
    if finite and MIN_BIGINT <= value <= MAX_BIGINT and value == int(value):
        return int(value)  # bounded first: int() of 1E+999999999 would build a billion digits
    return value


def _decimal_text(value: object) -> object:
    """Decimal text must read as a JSON number: Python would also take "1_000", " 12", ".5", "+1"
    and digits of any script, none of which a JSON client means as a number."""
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise ValueError(f'write the number as JSON does, e.g. 1234.50 or "1234.50" (got {value!r})')
    return value


_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d*)?\s*$")
_DATE_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# The seventh fractional digit of a timestamp: what rounds the microseconds.
_SUB_MICROSECONDS = re.compile(r"(\.[0-9]{6})([0-9])[0-9]*")
# A JSON number's grammar (leading zeros allowed), ASCII digits only; fullmatch: Python's `$` also
# matches before a final newline, so '12.50\n' passed (Decimal reads it).
DECIMAL_TEXT = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
_DECIMAL_TEXT = re.compile(DECIMAL_TEXT)


def _naive_date_time_pattern() -> str:
    """The offset-less date-times the API reads (as UTC), with the calendar exact: a day the month
    has (29 February of leap years only), year 0001 to 9999, 24-hour time, seconds optional. Year
    9999 keeps to the microsecond: further digits round, and past its last one off the calendar."""
    common = r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
    year = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    leap = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
    hour_minute = r"[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]"
    return (
        rf"^(({year}-{common}|{leap}-02-29){hour_minute}(:[0-5][0-9](\.[0-9]+)?)?"
        rf"|9999-{common}{hour_minute}(:[0-5][0-9](\.[0-9]{{1,6}})?)?)$"
    )


NAIVE_DATE_TIME = _naive_date_time_pattern()
# RFC 3339's date-time needs an offset; the API also reads one without (as UTC), which a validator
# must then admit: a pattern, calendar-exact, for that form (a plain one would admit 2024-02-30).
REQUEST_DATE_TIME = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": NAIVE_DATE_TIME, "description": "without an offset: read as UTC"},
    ]
}
UtcDateTime = Annotated[datetime, WrapValidator(_timestamp), WithJsonSchema(REQUEST_DATE_TIME)]
JsonInteger = Annotated[int, pydantic.Strict(), BeforeValidator(_json_integer)]
IsoDate = Annotated[date, BeforeValidator(_date_only)]
SourceId = Annotated[int, pydantic.Field(ge=1, le=MAX_BIGINT, description="Base A's key")]
# In a JSON record the key must be a JSON integer: not `true`, not "7".
RecordSourceId = Annotated[int, pydantic.Field(strict=True, ge=1, le=MAX_BIGINT, description="Base A's key")]


def _python_type(field: Field) -> Any:
    """The validated Python type of a declared field."""
    match field.kind:
        case Kind.STRING | Kind.TEXT:
            return Annotated[
                str,
                StringConstraints(
                    min_length=1 if field.required else None, max_length=field.max_length, pattern=NO_NUL
                ),
            ]
        case Kind.EMAIL:
            return Annotated[str, StringConstraints(max_length=field.max_length, pattern=EMAIL_PATTERN)]
        case Kind.DECIMAL:
            return Annotated[
                Decimal,
                BeforeValidator(_decimal_text),
                pydantic.Field(
                    max_digits=field.precision, decimal_places=field.scale, ge=field.minimum, allow_inf_nan=False
                ),
                AfterValidator(_plain_zero),
                WithJsonSchema(_decimal_schema(field)),
            ]
        case Kind.DATE:
            return IsoDate
    raise ValueError(f"no Python type for {field.kind}")


def _decimal_schema(field: Field) -> dict[str, Any]:
    """A JSON integer, or decimal text (what the pipelines send: exact, where a float would round).
    A JSON number with a fraction is read exactly too, but no multipleOf: a validator computing it in
    binary floats refuses valid values (0.07 'not a multiple of 0.01'); fractions are admitted as text."""
    bound = 10 ** (field.precision - field.scale)
    number: dict[str, Any] = {"type": "integer", "exclusiveMaximum": bound}
    if field.minimum is None:
        number["exclusiveMinimum"] = -bound
    else:
        number["minimum"] = int(field.minimum) if field.minimum == int(field.minimum) else float(field.minimum)
    return {
        "anyOf": [number, {"type": "string", "pattern": _decimal_text_pattern(field)}],
        "description": f"at most {field.precision} digits, {field.scale} after the point: a fraction as text "
        f'("4.35"), which a validator checks exactly; the API also reads a JSON number with a fraction exactly '
        f"(at most {field.scale} places), which float validators cannot check",
    }


def _decimal_text_pattern(field: Field) -> str:
    """The decimal texts without an exponent that the field takes, exactly: at most precision-scale
    digits before the point once leading zeros are left out, at most scale after it once trailing
    zeros are, a sign only where negatives are allowed (a negative zero is no negative); and those
    with a one-digit exponent (see _exponent_forms). A client that writes what this admits is never
    refused."""
    before, after = field.precision - field.scale, field.scale
    whole = f"0*[0-9]{{1,{before}}}" if before else "0+"
    fraction = rf"(\.[0-9]{{1,{after}}}0*)?" if after else r"(\.0+)?"
    exponents = "|".join(_exponent_forms(before, after))
    if field.minimum is None:
        return f"^-?({whole}{fraction}|{exponents})$"
    if field.minimum != 0:
        raise ValueError(f"{field.name}: a decimal pattern is written for a minimum of 0 or none")
    return rf"^({whole}{fraction}|-0+(\.0+)?([eE][-+]?0*[0-9])?|{exponents})$"


def _exponent_forms(before: int, after: int) -> list[str]:
    """The exponent forms (JSON's number grammar: "1E2", "1.5E+3", as Python's str(Decimal) writes
    them) the field takes, exactly, for a one-digit exponent (leading zeros allowed): moving the
    point by e must leave at most `before` digits before it and `after` after it. A longer exponent
    can be offset by as many zeros, which no regular expression counts: those are read, not admitted."""

    def places(n: int) -> str:
        return rf"(\.[0-9]{{1,{n}}}0*)?" if n else r"(\.0+)?"

    forms = [r"0+(\.0+)?[eE][-+]?0*[0-9]"]  # a zero, whatever its exponent
    for e in range(min(9, before) + 1):  # the point moves right: the fraction's first e digits move before it
        whole = f"0*[0-9]{{1,{before - e}}}" if before > e else "0+"
        forms.append(rf"{whole}{places(after + e)}[eE]{'[-+]' if e == 0 else '[+]'}?0*{e}")
    for k in range(1, 10):  # left: the whole part's last k digits move after it, beyond `after` only zeros
        if k <= after:
            forms.append(rf"0*[0-9]{{1,{before + k}}}{places(after - k)}[eE]-0*{k}")
        else:
            forms.append(rf"0*[0-9]{{1,{before + after}}}0{{{k - after}}}(\.0+)?[eE]-0*{k}")
    return forms


def _plain_zero(value: Decimal) -> Decimal:
    """A zero keeps any exponent (0E-16384 passes every digit check), which the database refuses."""
    return value if value else Decimal(0)


def _data_fields(entity: Entity) -> dict[str, Any]:
    """pydantic field definitions for an entity's data columns."""
    definitions: dict[str, Any] = {}
    for field in entity.fields:
        annotation = _python_type(field)
        info = pydantic.Field(description=field.description or None)
        if field.required:
            definitions[field.name] = (annotation, info)
        else:
            definitions[field.name] = (annotation | None, pydantic.Field(None, description=field.description or None))
    return definitions


_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=False)


@dataclass(frozen=True)
class EntitySchemas:
    """All models of one entity."""

    entity: Entity

    @cached_property
    def write(self) -> type[BaseModel]:
        """Body of POST and PUT: the data fields a client owns."""
        return create_model(f"{self.entity.title}Write", __config__=_STRICT, **_data_fields(self.entity))

    @cached_property
    def read(self) -> type[BaseModel]:
        """A row as the API returns it."""
        return create_model(
            self.entity.title,
            id=(int, ...),
            source_id=(int | None, pydantic.Field(description="Base A's key; empty for rows created here")),
            **{name: (annotation, pydantic.Field(...)) for name, (annotation, _) in _data_fields(self.entity).items()},
            created_at=(datetime, ...),
            updated_at=(datetime, ...),
            source_updated_at=(datetime | None, pydantic.Field(description="Base A version held")),
        )

    @cached_property
    def bulk_record(self) -> type[BaseModel]:
        """One record of a pipeline's bulk upsert: Base A's key, its version, and the data."""
        return create_model(
            f"{self.entity.title}BulkRecord",
            __config__=_STRICT,
            source_id=(RecordSourceId, ...),
            source_updated_at=(UtcDateTime, pydantic.Field(description="Base A's updated_at: the version")),
            created_at=(UtcDateTime | None, pydantic.Field(None, description="defaults to source_updated_at")),
            updated_at=(UtcDateTime | None, pydantic.Field(None, description="defaults to source_updated_at")),
            **{REPLACES_VERSION: (UtcDateTime | None, pydantic.Field(None, description=REPLACES_DESCRIPTION))},
            **_data_fields(self.entity),
        )

    @cached_property
    def bulk_records(self) -> TypeAdapter:
        return TypeAdapter(list[self.bulk_record])

    @cached_property
    def fast(self) -> FastDecoder:
        """msgspec's fast first pass over bulk bodies (see fastpath.py)."""
        from api_service.fastpath import FastDecoder  # noqa: PLC0415  (fastpath imports this module)

        return FastDecoder(self.entity)

    @cached_property
    def list_query(self) -> type[BaseModel]:
        """Query string of a list read: keyset page and equality filters."""
        filters = {
            f.name: (_python_type(f) | None, pydantic.Field(None, description=f"only rows with this {f.name}"))
            for f in self.entity.filterable_fields
        }
        return create_model(
            f"{self.entity.title}ListQuery",
            __config__=_STRICT,
            limit=(int, pydantic.Field(50, ge=1, le=1000, description="page size")),
            after=(int, pydantic.Field(0, ge=0, le=MAX_BIGINT, description="the last id of the previous page")),
            source_id=(SourceId | None, pydantic.Field(None, description="only the row synced from this Base A key")),
            updated_after=(UtcDateTime | None, pydantic.Field(None, description="only rows updated after this")),
            **filters,
        )

    @cached_property
    def page(self) -> type[BaseModel]:
        return create_model(
            f"{self.entity.title}Page",
            items=(list[self.read], ...),
            next_after=(int | None, pydantic.Field(description="pass as `after` for the next page; empty at the end")),
        )


REPLACES_DESCRIPTION = (
    "the version Base B holds of the row that this record replaces, although its own is older: Base A's "
    "change stamp went back (a later commit carrying an earlier stamp, a statement that waited for a lock). "
    "Applied only while Base B holds the row at exactly this version; otherwise the version guard decides"
)


class BulkDeleteRecord(BaseModel):
    """One record of a pipeline's bulk delete: Base A's key and the version of the delete."""

    model_config = _STRICT
    # Any BIGINT: Base B holds no row keyed 0 or below (not_found), but deleting one closes its quarantine.
    source_id: int = pydantic.Field(strict=True, ge=MIN_BIGINT, le=MAX_BIGINT, description="Base A's key")
    source_updated_at: UtcDateTime = pydantic.Field(description="when the row was deleted in Base A")


BULK_DELETE_RECORDS = TypeAdapter(list[BulkDeleteRecord])


class RejectedRecord(BaseModel):
    index: int = pydantic.Field(description="position of the record in the request (0-based)")
    source_id: int | None
    reasons: list[dict[str, str]] = pydantic.Field(
        description="{field, message} for each problem; `code: unique_taken` when another row holds a unique value"
    )


class BulkResult(BaseModel):
    """Counts of a bulk request; every record is counted exactly once."""

    received: int
    inserted: int
    updated: int
    unchanged: int
    stale: int = pydantic.Field(description="older than the version Base B holds: not applied")
    deleted: int = 0
    not_found: int = 0
    rejected: int
    errors: list[RejectedRecord]


class SyncVersion(BaseModel):
    source_id: int
    version: datetime = pydantic.Field(description="source_updated_at")


class BulkDeletePlan(BulkResult):
    """What a bulk delete would do (`POST /{entity}/bulk/delete/plan`): the same counts, nothing written."""

    would_delete: list[int] = pydantic.Field(
        description="the source_ids of the live rows the request would delete, in order"
    )
    held_newer: list[SyncVersion] = pydantic.Field(
        description="the live rows the request would not delete because Base B holds them newer, with that "
        "version, in order (a pipeline whose stamps are cut to milliseconds tells the same row state)"
    )


class NoQuery(BaseModel):
    """The query string of a write that takes none: any name in it is refused, never ignored (a flag
    an older API does not know, such as a dry run, must not be read as a plain write)."""

    model_config = _STRICT


class BulkUpsertQuery(BaseModel):
    model_config = _STRICT
    restore_ties: bool = pydantic.Field(
        False,
        description="the records were made after Base B's tombstones of their version: a repair re-reading Base "
        "A, or change events in each key's order. As new as a tombstone, a record then restores the row (a row "
        "deleted and restored in Base A under one change stamp). Otherwise the tombstone wins the tie",
    )


class SyncWindowQuery(BaseModel):
    """A window of Base A versions, (since, since_id) < (version, source_id) <= (until, until_id).

    Its key bounds are Base A's: any BIGINT (a row Base B cannot hold, key 0 or below, may end a window)."""

    model_config = _STRICT
    since: UtcDateTime | None = pydantic.Field(None, description="lower bound (exclusive); empty: from the start")
    since_id: int = pydantic.Field(0, ge=MIN_BIGINT, le=MAX_BIGINT, description="key tie-break of the lower bound")
    until: UtcDateTime | None = pydantic.Field(None, description="upper bound (inclusive); empty: to the end")
    until_id: int = pydantic.Field(
        MAX_BIGINT, ge=MIN_BIGINT, le=MAX_BIGINT, description="key tie-break of the upper bound"
    )
    from_id: int = pydantic.Field(
        0, ge=MIN_BIGINT, le=MAX_BIGINT, description="only source ids from this (a partition's keys)"
    )
    to_id: int = pydantic.Field(
        MAX_BIGINT, ge=MIN_BIGINT, le=MAX_BIGINT, description="only source ids up to this, inclusive"
    )


class SyncVersionsQuery(SyncWindowQuery):
    after: int = pydantic.Field(0, ge=0, le=MAX_BIGINT, description="the last source_id of the previous page")
    upto_id: int | None = pydantic.Field(None, ge=MIN_BIGINT, le=MAX_BIGINT, description="only source ids up to this")
    limit: int = pydantic.Field(10_000, ge=1, le=50_000, description="page size")


class SyncBucketsQuery(BaseModel):
    model_config = _STRICT
    size: int = pydantic.Field(10_000, ge=1, le=MAX_BIGINT, description="keys per bucket (bucket = source_id // size)")
    versions: bool = pydantic.Field(False, description="add each bucket's digest of its (source_id, version) pairs")


class SyncMarkQuery(BaseModel):
    model_config = _STRICT


class RejectionsQuery(BaseModel):
    model_config = _STRICT
    # A quarantined source row may have a key Base B cannot hold (0, negative): the list starts below them.
    after: int | None = pydantic.Field(
        None, ge=MIN_BIGINT, le=MAX_BIGINT, description="the last source_id of the previous page; empty: the first page"
    )
    limit: int = pydantic.Field(100, ge=1, le=1000, description="page size")


class Reason(BaseModel):
    """Why a value is refused; `code` names a kind a pipeline acts on (baseab_contract.bulk_format)."""

    model_config = ConfigDict(extra="forbid")
    field: str = pydantic.Field(min_length=1)
    message: str = pydantic.Field(min_length=1)
    code: str | None = None


class QuarantineItem(BaseModel):
    """A source row the pipeline refuses itself (a date Base A cannot stand behind: base_sync.dirty)."""

    model_config = _STRICT
    # Any BIGINT: a key outside Base B's 1..2^63-1 is one of the reasons a source row is refused.
    source_id: JsonInteger = pydantic.Field(ge=MIN_BIGINT, le=MAX_BIGINT)
    source_updated_at: UtcDateTime | None = pydantic.Field(None, description="its version, when it has a usable one")
    record: dict[str, Any] = pydantic.Field(description="the source row as read")
    reasons: list[Reason] = pydantic.Field(min_length=1, description="{field, message} for each problem")


QUARANTINE_ITEMS = TypeAdapter(list[QuarantineItem])


class SyncDigest(BaseModel):
    count: int = pydantic.Field(description="synced live rows in the window")
    digest: str = pydantic.Field(description="checksum of their (source_id, version) pairs; see version_digest.py")


class SyncMark(BaseModel):
    token: str | None = pydantic.Field(
        description="the token the batch sync's last commit wrote, or a run's mark written over it since; another "
        "(or none) where Base B was restored"
    )


class SyncMarkWrite(BaseModel):
    model_config = _STRICT
    token: str = pydantic.Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the batch sync's new token")


class SyncVersions(BaseModel):
    items: list[SyncVersion]
    next_after: int | None


class SyncBucket(BaseModel):
    bucket: int = pydantic.Field(description="source_id // size")
    count: int
    key_sum: int = pydantic.Field(
        description="sum of the source ids in the bucket: an integer of any size, past 64 bits for a bucket of "
        "large keys (2 keys near 2^63 already): read it into an arbitrary-precision integer, not an int64"
    )
    digest: str | None = pydantic.Field(
        None, description="with versions=true: the sync digest of the bucket's (source_id, version) pairs"
    )


class SyncBuckets(BaseModel):
    items: list[SyncBucket]


class Rejection(BaseModel):
    source_id: int
    source_updated_at: datetime | None
    record: Any = pydantic.Field(description="the record as the pipeline sent it")
    reasons: list[dict[str, str]]
    first_rejected_at: datetime
    last_rejected_at: datetime
    times: int


class RejectionsPage(BaseModel):
    items: list[Rejection]
    next_after: int | None


SCHEMAS: dict[str, EntitySchemas] = {name: EntitySchemas(entity) for name, entity in ENTITIES.items()}
