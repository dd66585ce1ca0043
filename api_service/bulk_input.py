"""Reading bulk bodies: parse (JSON array or NDJSON), validate, and settle duplicates in a request.

Every record ends up either in `Batch.records` (valid, to merge) or in `Batch.rejected` with its
index in the request and a reason per field: nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from api_service import json_body
from api_service.fastpath import FastDecoder
from api_service.problems import Problem, field_errors
from api_service.schemas import BULK_DELETE_RECORDS, RejectedRecord
from api_service.versions import VersionBounds
from baseab_contract.bulk_format import UNIQUE_TAKEN
from baseab_contract.entities import Entity

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass
class Batch:
    """Validated records of one request, with the rejections found so far."""

    received: int
    records: list[tuple[int, BaseModel]]  # (index in the request, record)
    rejected: list[RejectedRecord] = field(default_factory=list)
    superseded: int = 0  # same source_id again later in the request: counted stale

    def reject(self, index: int, source_id: int | None, reasons: list[dict[str, str]]) -> None:
        self.rejected.append(RejectedRecord(index=index, source_id=source_id, reasons=reasons))


def _is_ndjson(content_type: str) -> bool:
    """True for NDJSON, False for a JSON array; any other type is a 415."""
    if content_type in NDJSON_TYPES:
        return True
    if content_type == "application/json":
        return False
    raise Problem(415, "send application/json (an array of records) or application/x-ndjson")


def _check_count(count: int, max_records: int) -> None:
    if count > max_records:
        raise Problem(413, f"{count} records in one request; the limit is {max_records}: split the batch")


def ndjson_lines(body: bytes) -> list[tuple[int, bytes]]:
    """The records of an NDJSON body with their line numbers: lines end at LF (a CR before it is
    JSON whitespace), blank ones are skipped. The one framing rule of both validation passes (a CR
    or a Unicode line separator inside a record is no line end; two records on a line are an error)."""
    return [(number, line) for number, line in enumerate(body.split(b"\n"), start=1) if line.strip()]


def parse_body(body: bytes, content_type: str, max_records: int) -> tuple[list[Any], dict[int, str]]:
    """Items of a JSON-array or NDJSON body, and per-index parse errors (NDJSON lines)."""
    errors: dict[int, str] = {}
    if _is_ndjson(content_type):
        items: list[Any] = []
        for line_number, line in ndjson_lines(body):
            try:
                items.append(json_body.loads_last_key_wins(line))
            except json_body.JsonError as exc:
                errors[len(items)] = f"line {line_number} is not valid JSON: {exc}"
                items.append(None)
    else:
        try:
            items = json_body.loads_last_key_wins(body)
        except json_body.JsonError as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise Problem(422, "the body must be a JSON array of records (or NDJSON, one record a line)")
    _check_count(len(items), max_records)
    return items, errors


def read_upserts(body: bytes, content_type: str, max_records: int, adapter: TypeAdapter, fast: FastDecoder) -> Batch:
    """The validated records of a bulk upsert body: msgspec's fast pass, else pydantic's."""
    ndjson = _is_ndjson(content_type)
    lines = ndjson_lines(body) if ndjson else []
    # NDJSON as one array, framed as parse_body frames it, decoded in one call.
    records = fast.decode(b"[" + b",".join(line for _, line in lines) + b"]" if ndjson else body)
    if ndjson and records is not None and len(records) != len(lines):
        records = None  # a line held more than one record (`{...},{...}`): each line is told why
    if records is None:
        items, parse_errors = parse_body(body, content_type, max_records)
        return validate(items, parse_errors, adapter)
    _check_count(len(records), max_records)
    return Batch(received=len(records), records=list(enumerate(records)))


def _source_id_of(item: Any) -> int | None:
    value = item.get("source_id") if isinstance(item, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def validate(items: list[Any], parse_errors: dict[int, str], adapter: TypeAdapter) -> Batch:
    """Validate all items in one pass; on failure, split the good from the bad by index."""
    batch = Batch(received=len(items), records=[])
    candidates = [(i, item) for i, item in enumerate(items) if i not in parse_errors]
    for index, message in parse_errors.items():
        batch.reject(index, None, [{"field": "body", "message": message}])
    try:
        valid = adapter.validate_python([item for _, item in candidates])
        batch.records = [(index, record) for (index, _), record in zip(candidates, valid, strict=True)]
        return batch
    except ValidationError as exc:
        bad: dict[int, list[dict]] = {}
        for error in _record_errors(exc):
            position, _, name = error["field"].partition(".")
            bad.setdefault(int(position), []).append({"field": name or "record", "message": error["message"]})
    good = [pair for position, pair in enumerate(candidates) if position not in bad]
    for position, reasons in bad.items():
        index, item = candidates[position]
        batch.reject(index, _source_id_of(item), reasons)
    valid = adapter.validate_python([item for _, item in good])
    batch.records = [(index, record) for (index, _), record in zip(good, valid, strict=True)]
    return batch


def _record_errors(error: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as `{field, message}`, a null where a value is required said as such: a NULL
    source column met "Input should be a valid string", which hid the cause."""
    errors = field_errors(error)
    for item, details in zip(errors, error.errors(include_url=False), strict=True):
        if details["input"] is None and details["type"] != "missing" and len(details["loc"]) == 2:
            item["message"] = f"{details['loc'][1]} is NULL, but the field is required"
    return errors


def keep_latest_per_source_id(batch: Batch) -> None:
    """One record per source_id: the newest version wins, the last one on a tie."""
    if len({record.source_id for _, record in batch.records}) == len(batch.records):
        return  # the usual case, checked in one pass
    latest: dict[int, tuple[int, BaseModel]] = {}
    for index, record in batch.records:
        held = latest.get(record.source_id)
        if held is None or record.source_updated_at >= held[1].source_updated_at:
            latest[record.source_id] = (index, record)
    batch.superseded = len(batch.records) - len(latest)
    batch.records = sorted(latest.values(), key=lambda pair: pair[0])


def reject_duplicate_unique_values(batch: Batch, entity: Entity) -> None:
    """Two records of one request may not claim the same unique value (an email)."""
    for unique in entity.unique_fields:
        values = [getattr(record, unique.name) for _, record in batch.records]
        if len(set(values)) == len(values):
            continue  # the usual case, checked in one pass
        first_seen: dict[Any, tuple[int, int]] = {}
        kept = []
        for index, record in batch.records:
            value = getattr(record, unique.name)
            if value is not None and value in first_seen:
                other_index, other_key = first_seen[value]
                message = (
                    f"{unique.name} {value!r} is also claimed by source_id {other_key} "
                    f"(record {other_index} of this request)"
                )
                reason = {"field": unique.name, "message": message, "code": UNIQUE_TAKEN}
                batch.reject(index, record.source_id, [reason])
                continue
            if value is not None:
                first_seen[value] = (index, record.source_id)
            kept.append((index, record))
        batch.records = kept


def reject_versions_out_of_range(batch: Batch, bounds: VersionBounds) -> None:
    """A version outside the range the server admits is refused, with the value and the range."""
    versions = [record.source_updated_at for _, record in batch.records]
    if not versions or (bounds.low <= min(versions) and max(versions) <= bounds.high):
        return  # the usual case, checked in one pass
    kept = []
    for index, record in batch.records:
        version = record.source_updated_at
        if bounds.admits(version):
            kept.append((index, record))
            continue
        message = f"{version.isoformat()} is out of range: a version must lie {bounds.describe()}"
        batch.reject(index, record.source_id, [{"field": "source_updated_at", "message": message}])
    batch.records = kept


def parse_deletes(body: bytes, content_type: str, max_records: int) -> Batch:
    items, parse_errors = parse_body(body, content_type, max_records)
    return validate(items, parse_errors, BULK_DELETE_RECORDS)
