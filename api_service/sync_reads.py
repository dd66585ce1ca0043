"""What the pipelines read to check their work: version windows, key buckets, key ranges.

Only synced, live rows count (`source_id` set, no tombstone): exactly the rows Base A still holds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Select, Table, func, select

from api_service.backends import backend_of
from api_service.db import begin_write
from api_service.models import SYNC_MARKS
from api_service.schemas import MAX_BIGINT
from baseab_contract.version_digest import bucket_digests, version_window, window_digest


def _window(table: Table, query) -> list:
    """Live synced rows with (since, since_id) < (source_updated_at, source_id) <= (until, until_id)
    and from_id <= source_id <= to_id, written so the (source_updated_at, source_id) index serves
    it as one range (a partitioned load verifies its own key range)."""
    key = table.c.source_id
    since = (query.since, query.since_id) if query.since is not None else None
    until = (query.until, query.until_id) if query.until is not None else None
    live = [key.is_not(None), table.c.deleted_at.is_(None)]
    keys = [key.between(query.from_id, query.to_id)] if (query.from_id, query.to_id) != (0, MAX_BIGINT) else []
    return live + keys + version_window(table.c.source_updated_at, key, since, until)


def sync_mark(conn: Connection, entity: str) -> dict:
    """The token the batch sync's last commit of `entity` wrote (None: none yet)."""
    token = conn.execute(select(SYNC_MARKS.c.token).where(SYNC_MARKS.c.entity == entity)).scalar()
    return {"token": token}


def set_sync_mark(conn: Connection, entity: str, token: str) -> dict:
    """Keep the batch sync's new token for `entity` (one row per entity, replaced)."""
    with begin_write(conn):
        values = {"entity": entity, "token": token, "marked_at": datetime.now(UTC)}
        insert = backend_of(conn).insert(SYNC_MARKS).values(values)
        conn.execute(insert.on_conflict_do_update(index_elements=[SYNC_MARKS.c.entity], set_=values))
    return {"token": token}


def digest(conn: Connection, table: Table, query) -> dict:
    """Count and checksum of the synced versions in the window (one aggregate on PostgreSQL)."""
    pair_hash = backend_of(conn).pair_hash
    return window_digest(conn, table.c.source_id, table.c.source_updated_at, _window(table, query), pair_hash).as_dict()


def versions(table: Table, query) -> Select:
    """The (source_id, version) pairs in the window and key range, by source_id."""
    statement = (
        select(table.c.source_id, table.c.source_updated_at.label("version"))
        .where(*_window(table, query), table.c.source_id > query.after)
        .order_by(table.c.source_id)
    )
    if query.upto_id is not None:
        statement = statement.where(table.c.source_id <= query.upto_id)
    return statement


_HALF = 2**32


def key_buckets(conn: Connection, table: Table, size: int, versions: bool = False) -> list[dict]:
    """(bucket, count, sum of keys) of the live synced keys, bucket = source_id // size, by bucket;
    with `versions`, each bucket's digest of its (source_id, version) pairs too (a second aggregate:
    it finds a row Base B holds at another version than Base A, which counts and sums cannot).

    The sum of keys near 2**63 overflows a 64-bit integer (SQLite raises), so the database adds
    the high and the low 32 bits of the keys apart and Python, whose integers do not overflow,
    puts them together: each partial sum fits in 64 bits for up to 2**31 keys in a bucket.

    Sorted here, not in SQL: PostgreSQL cannot estimate how few buckets there are, and an ORDER BY
    makes it sort every row (on disk, for a million) before grouping instead of hashing them.
    """
    key = table.c.source_id
    bucket = (key // size).label("bucket")
    statement = (
        select(bucket, func.count(), func.sum(key // _HALF), func.sum(key % _HALF))
        .where(key.is_not(None), table.c.deleted_at.is_(None))
        .group_by(bucket)
    )
    rows = sorted(conn.execute(statement))
    items = [
        {"bucket": int(b), "count": int(count), "key_sum": int(high) * _HALF + int(low)} for b, count, high, low in rows
    ]
    if versions:
        live = [key.is_not(None), table.c.deleted_at.is_(None)]
        digests = bucket_digests(conn, key, table.c.source_updated_at, live, size, backend_of(conn).pair_hash)
        for item in items:
            item["digest"] = digests[item["bucket"]].hexdigest
    return items
