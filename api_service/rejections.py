"""Rejected pipeline records, kept until a later write of the same key goes through.

The bulk endpoints answer every rejection in their response; this store keeps them beyond it, so
an operator can list them (GET /{entity}/rejections) and replay them after fixing the cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, Select, Table, case, exists, or_, select, update

from api_service import json_body
from api_service.backends import backend_of
from api_service.db import begin_write
from api_service.models import REJECTIONS
from api_service.schemas import MAX_BIGINT, BulkResult


def _version(item: Any) -> datetime | None:
    """The record's version when it is a usable timestamp; a rejected record may hold anything."""
    raw = item.get("source_updated_at") if isinstance(item, dict) else None
    try:
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        return value.astimezone(UTC) if value and value.tzinfo else value
    except (ValueError, OverflowError):
        return None


def remember(conn: Connection, target: Table, result: BulkResult, items: list[Any], touched: Iterable[int]) -> None:
    """Store this request's rejections; resolve earlier ones this request's writes superseded."""
    entity = target.name
    now = datetime.now(UTC)
    rejected = {e.source_id for e in result.errors}
    resolved = set(touched) - rejected
    with begin_write(conn):
        if result.errors:
            rows = [
                {
                    "entity": entity,
                    "source_id": error.source_id,
                    "source_updated_at": _version(items[error.index]),
                    "record": json_body.dumps(items[error.index]),
                    "reasons": orjson.dumps(error.reasons).decode(),
                    "first_rejected_at": now,
                    "last_rejected_at": now,
                    "times": 1,
                    "resolved_at": None,
                }
                for error in result.errors
                # Without a usable key there is nothing to match a fix to: the response still lists it.
                if error.source_id is not None and 1 <= error.source_id <= MAX_BIGINT
            ]
            _store(conn, rows)
        fixed = _open_among(conn, entity, resolved) if resolved else []
        if fixed:
            conn.execute(
                update(REJECTIONS)
                .where(REJECTIONS.c.entity == entity, REJECTIONS.c.source_id.in_(fixed), _superseded(target))
                .values(resolved_at=now)
            )


def _superseded(target: Table):
    """Base B now holds the key at the rejected record's version or a newer one (live or deleted).
    A write that was stale, or older than the rejected change, leaves the rejection open: the
    rejected change is still not in Base B. Without a usable version, any row of the key will do."""
    held = target.c.source_id == REJECTIONS.c.source_id
    at_least_as_new = or_(
        REJECTIONS.c.source_updated_at.is_(None), target.c.source_updated_at >= REJECTIONS.c.source_updated_at
    )
    return exists().where(held, at_least_as_new)


def quarantine(conn: Connection, entity: str, items: list) -> int:
    """Store source rows the pipeline refused itself (`QuarantineItem`s: dirty dates, see
    base_sync.dirty) as open rejections, like the bulk endpoints' own; how many were stored."""
    now = datetime.now(UTC)
    rows = [
        {
            "entity": entity,
            "source_id": item.source_id,
            "source_updated_at": item.source_updated_at,
            "record": json_body.dumps(item.record),
            "reasons": orjson.dumps([reason.model_dump(exclude_none=True) for reason in item.reasons]).decode(),
            "first_rejected_at": now,
            "last_rejected_at": now,
            "times": 1,
            "resolved_at": None,
        }
        for item in items
    ]
    with begin_write(conn):
        _store(conn, rows)
    return len(rows)


def _store(conn: Connection, rows: list[dict]) -> None:
    """Insert rejections; one already held for the key is counted again and reopened, and keeps
    the newer of the two records (an older one arriving later must not take the newer's place)."""
    if not rows:
        return
    insert = backend_of(conn).insert(REJECTIONS)
    held_is_newer = REJECTIONS.c.source_updated_at > insert.excluded.source_updated_at  # NULL: no

    def newer(name: str):
        return case((held_is_newer, REJECTIONS.c[name]), else_=insert.excluded[name])

    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[REJECTIONS.c.entity, REJECTIONS.c.source_id],
            set_={
                "source_updated_at": newer("source_updated_at"),
                "record": newer("record"),
                "reasons": newer("reasons"),
                "last_rejected_at": insert.excluded.last_rejected_at,
                "times": REJECTIONS.c.times + 1,
                "resolved_at": None,
            },
        ),
        rows,
    )


def _open_among(conn: Connection, entity: str, keys: set[int]) -> list[int]:
    """The keys that have an open rejection: one range read, almost always empty."""
    statement = select(REJECTIONS.c.source_id).where(
        REJECTIONS.c.entity == entity,
        REJECTIONS.c.resolved_at.is_(None),
        REJECTIONS.c.source_id.between(min(keys), max(keys)),
    )
    return [key for (key,) in conn.execute(statement) if key in keys]


def open_rejections(entity: str, after: int | None) -> Select:
    """The unresolved rejections, by source_id (after `after`; None: from the first)."""
    page = [REJECTIONS.c.source_id > after] if after is not None else []
    return (
        select(REJECTIONS)
        .where(REJECTIONS.c.entity == entity, REJECTIONS.c.resolved_at.is_(None), *page)
        .order_by(REJECTIONS.c.source_id)
    )


def rejection_item(row: Row) -> dict[str, Any]:
    """A rejection as listed: the record as stored (parsed and written again, a number could lose
    digits or pass orjson's range), the reasons as JSON."""
    item = row._asdict()
    item.pop("entity")
    item.pop("resolved_at")
    item["record"] = orjson.Fragment(item["record"]) if item["record"] else None
    item["reasons"] = orjson.loads(item["reasons"])
    return item
