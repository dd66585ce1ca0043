"""A fast first pass over bulk bodies: msgspec decodes and checks a whole batch in C.

pydantic stays the authority (its models make the error messages and the OpenAPI document). A
batch that this pass accepts in full goes straight to the merge; any doubt (a malformed record,
a value this pass does not check as precisely) returns None, and the caller validates the batch
with pydantic, which explains each rejected record. The types here are derived from the same
entity declarations, never laxer than pydantic's: `test_fastpath.py` holds them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, DecimalException
from functools import cached_property, partial
from itertools import repeat
from operator import attrgetter, is_not
from typing import Annotated, Any

import msgspec

from api_service.schemas import EMAIL_PATTERN, MAX_BIGINT
from baseab_contract.entities import Entity, Field, Kind

_TIMESTAMPS = ("source_updated_at", "created_at", "updated_at", "replaces_version")
# msgspec searches with Python's re, whose `$` also matches before a final newline ('a@b.c\n'
# passed); pydantic's and a client's (ECMAScript) `$` end the text. \Z ends it here too.
_EMAIL = EMAIL_PATTERN.removesuffix("$") + r"\Z"


def _msgspec_type(field: Field) -> Any:
    match field.kind:
        case Kind.STRING | Kind.TEXT:
            # NUL is refused for the whole body at once (see decode), not by a regex per value.
            return Annotated[str, msgspec.Meta(min_length=1 if field.required else None, max_length=field.max_length)]
        case Kind.EMAIL:
            return Annotated[str, msgspec.Meta(max_length=field.max_length, pattern=_EMAIL)]
        case Kind.DECIMAL:
            # Text or an integer (a JSON fraction would arrive as a float), read into Decimals after
            # decoding (see _to_decimals), then digits, scale and minimum checked. Anything else: pydantic.
            return str | int
        case Kind.DATE:
            return date
    raise ValueError(f"no msgspec type for {field.kind}")


# The checks below look at a whole column at once: map, filter, min and max iterate in C, so a
# 5,000-record batch costs a fraction of a per-record Python loop. Only a batch that fails the
# quick test (a timestamp not in UTC) goes record by record.

_present = partial(is_not, None)
_tzinfo = attrgetter("tzinfo")


def _column(records: list, name: str) -> list:
    return list(filter(_present, map(attrgetter(name), records)))


def _decimals_fit(records: list, field: Field) -> bool:
    values = _column(records, field.name)
    if not values:
        return True
    low, high = min(values), max(values)  # a NaN among several raises InvalidOperation (a DecimalException)
    if not (low.is_finite() and high.is_finite()):
        return False
    if field.minimum is not None and low < field.minimum:
        return False
    if max(high, -low) >= Decimal(10) ** (field.precision - field.scale):
        return False
    # Rounding to the scale changes a value only if it has more places ("1.500" does not).
    step = Decimal(1).scaleb(-field.scale)
    if list(map(Decimal.quantize, values, repeat(step))) != values:
        return False
    # A zero with an exponent the database cannot take (0E-16384) equals its rounding: pydantic's path.
    return all(-field.scale <= zero.as_tuple().exponent <= 0 for zero in values if not zero)


def _to_decimals(records: list, name: str) -> bool:
    """The column's text as Decimals, in place; False if any text is not written as Python writes
    the number back. That refuses in one C-speed comparison what Decimal() would also read ("1_000",
    " 12", ".5", "+1", any script's digits) and leaves the rarer spellings JSON allows ("0.50e1",
    leading zeros) to pydantic: a regular expression per value cost more than the rest of the pass."""
    read = attrgetter(name)
    holders = [record for record in records if read(record) is not None]
    texts = list(map(read, holders))
    numbers = list(map(Decimal, texts))
    if list(map(str, numbers)) != list(map(str, texts)):
        return False
    list(map(setattr, holders, repeat(name), numbers))
    return True


def _to_utc(records: list, name: str) -> None:
    """Naive means UTC; other offsets are converted (one near year 1 can fall off the calendar)."""
    if set(map(_tzinfo, _column(records, name))) <= {UTC}:
        return
    for record in records:
        value = getattr(record, name)
        if value is not None and value.tzinfo is not UTC:
            setattr(record, name, value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))


@dataclass(frozen=True)
class FastDecoder:
    """Decodes a bulk body of one entity into records, or answers None when in doubt."""

    entity: Entity

    @cached_property
    def record_type(self) -> type[msgspec.Struct]:
        fields: list[tuple] = [
            ("source_id", Annotated[int, msgspec.Meta(ge=1, le=MAX_BIGINT)]),
            ("source_updated_at", datetime),
        ]
        for field in self.entity.fields:
            kind = _msgspec_type(field)
            fields.append((field.name, kind) if field.required else (field.name, kind | None, None))
        fields += [("created_at", datetime | None, None), ("updated_at", datetime | None, None)]
        fields.append(("replaces_version", datetime | None, None))
        # gc=False: records hold only scalars, so they can never be in a cycle, and 5,000 of them
        # would otherwise set off the cyclic collector during every decode.
        return msgspec.defstruct(f"{self.entity.title}FastRecord", fields, forbid_unknown_fields=True, gc=False)

    @cached_property
    def _decoder(self) -> msgspec.json.Decoder:
        return msgspec.json.Decoder(list[self.record_type])

    @cached_property
    def _decimals(self) -> tuple[Field, ...]:
        return tuple(f for f in self.entity.fields if f.kind is Kind.DECIMAL)

    def decode(self, body: bytes) -> list[msgspec.Struct] | None:
        """All records of the body, timestamps in UTC; None if any record needs a closer look."""
        if b"\\u0000" in body:  # JSON can only carry NUL escaped; PostgreSQL text cannot hold it
            return None
        try:
            records = self._decoder.decode(body)
            for name in _TIMESTAMPS:
                _to_utc(records, name)
            for field in self._decimals:
                if not (_to_decimals(records, field.name) and _decimals_fit(records, field)):
                    return None
        # DecimalException: InvalidOperation, and Overflow of an exponent past the context's (1E+1000000)
        except (msgspec.DecodeError, OverflowError, ValueError, DecimalException, RecursionError):
            return None
        return records
