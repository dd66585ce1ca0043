"""Tables without a cursor (`cursor: none` in the mapping): changes found by checksums of key buckets.

Nothing in such a table says which rows changed since the last run. Each run instead sums a
content hash of every live row per key bucket (bucket = key // SYNC_BUCKET_SIZE), in one aggregate
on Base A (MySQL/MariaDB hash in SQL; elsewhere the rows are streamed and hashed here), and
compares the sums with those the last committed run stored with its watermark. Only the buckets
whose checksum changed, or that are new, are read again and re-sent; a bucket that shrank or went
is also found by the key comparison of `sync.propagate_deletes`, which this kind of table gets on
every run (hard deletes and soft deletes alike). The first run, a full refresh, or a change of
SYNC_BUCKET_SIZE reads everything.

Versions: a row has no stamp, so every record of a run carries Base A's clock when the run's reads
began (`BaseA.now()`, UTC, microseconds), which is comparable with an event's commit time: a change
committed after the clock wins over the batch's copy, one committed before it is in what the batch
reads. An unchanged row in a changed bucket is re-sent with that newer version, so the API counts
it `updated` (its content comparison only answers `unchanged` for the same version).

The checksums the commit stores are those of the rows actually sent (summed from the re-read
itself, not from the aggregate before it), so they describe what Base B holds: a row changed
between the aggregate and the re-read is seen again by the next run, never skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from hashlib import md5

from sqlalchemy import Numeric, func, select, type_coerce

from base_sync.api_client import BaseBApi
from base_sync.dirty import Quarantined
from base_sync.key_ranges import KeyRange
from base_sync.load import concat_chunks, push_chunks
from base_sync.mapping import SourceView
from base_sync.reports import BucketScan, LoadReport, VerifyResult, checksums_of
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, Cursor
from base_sync.state import StateStore, refuse_ahead
from base_sync.sync import _both, repair
from baseab_contract.bulk_format import SOURCE_ID

log = logging.getLogger(__name__)

CHECKSUMS = "checksums"  # the key of the stored bucket checksums in the entity's stats
ROW_HASH = "_row_hash"
COMPARE_KEYS = 50_000  # keys verification lists of both sides at once
_MASK = (1 << 64) - 1
Checksums = dict[int, tuple[int, str]]


# --- content hashes -----------------------------------------------------------------------------


def row_hash(values: Iterable) -> int:
    """A 64-bit hash of a row's source values, where Base A cannot hash in SQL (SQLite)."""
    digest = md5(usedforsecurity=False)
    for value in values:
        if value is None:
            digest.update(b"~,")
            continue
        raw = value if isinstance(value, bytes) else (value.isoformat() if isinstance(value, datetime) else str(value))
        raw = raw if isinstance(raw, bytes) else raw.encode()
        digest.update(b"%d:%s," % (len(raw), raw))
    return int.from_bytes(digest.digest()[:8], "big")


class _Sums:
    """Rows and hash sum (mod 2**64) per bucket, added up as rows are read."""

    def __init__(self, size: int):
        self.size = size
        self.totals: dict[int, list[int]] = {}

    def add(self, key: int, hashed: int) -> None:
        total = self.totals.setdefault(key // self.size, [0, 0])
        total[0] += 1
        total[1] = (total[1] + hashed) & _MASK

    def checksums(self) -> Checksums:
        return {bucket: (rows, f"{total:016x}") for bucket, (rows, total) in self.totals.items()}


def _sql_hash(base_a: BaseA, view: SourceView):
    return base_a.backend.row_hash([view.c(name) for name in view.source_columns])


def bucket_checksums(base_a: BaseA, entity: str, size: int, chunk_size: int = 50_000) -> Checksums:
    """{bucket: (live rows, checksum)} of the whole table: one aggregate where Base A hashes in SQL."""
    view = base_a.view(entity)
    hashed = _sql_hash(base_a, view)
    if hashed is not None:
        bucket = (view.key // size).label("bucket")
        total = type_coerce(func.sum(hashed), Numeric(asdecimal=True))
        statement = select(bucket, func.count(), total).where(*view.live).group_by(bucket)
        with base_a.engine.connect() as conn:
            return {int(b): (int(rows), f"{int(t) & _MASK:016x}") for b, rows, t in conn.execute(statement)}
    sums = _Sums(size)
    names = view.source_columns
    statement = select(*(view.c(n) for n in names)).where(*view.live)
    for rows in base_a._stream(statement, chunk_size, base_a.chunk_bytes):
        for row in rows:
            sums.add(row[0], row_hash(row))  # the key is the first source column
    return sums.checksums()


def _read(
    base_a: BaseA, view: SourceView, keys: KeyRange | None, clock: datetime, chunk_size: int, sums: _Sums
) -> Iterator[list[dict | Quarantined]]:
    """The bulk records of the live rows in `keys` (all when None), versioned `clock`, in key order;
    each row's hash is added to `sums` from the same read."""
    where = [*view.live, *([view.key.between(keys.low, keys.high)] if keys else [])]
    hashed = _sql_hash(base_a, view)
    if base_a.backend.renders_records and hashed is not None:
        rendered = base_a.rendered(view)
        columns = [*rendered.columns(clock), hashed.label(ROW_HASH)]
        names = [c.name for c in columns]
        statement = select(*columns).select_from(view.table).where(*where).order_by(view.key)
        for rows in base_a._stream(statement, chunk_size, base_a.chunk_bytes):
            records = [dict(zip(names, row, strict=True)) for row in rows]
            for record in records:
                sums.add(record[SOURCE_ID], int(record.pop(ROW_HASH)))
            yield rendered.split(records)
        return
    names = view.source_columns
    extra = [hashed.label(ROW_HASH)] if hashed is not None else []
    statement = select(*(view.c(n) for n in names), *extra).where(*where).order_by(view.key)
    for rows in base_a._stream(statement, chunk_size, base_a.chunk_bytes):
        chunk = []
        for row in rows:
            source = dict(zip(names, row[: len(names)], strict=True))
            sums.add(row[0], int(row[-1]) if extra else row_hash(row))
            chunk.append(view.apply(source, version=clock))
        yield chunk


def bucket_ranges(buckets: Iterable[int], size: int, max_keys: int | None = None) -> list[KeyRange]:
    """The key ranges of the buckets, neighbours merged (into ranges of at most `max_keys` keys, or
    a single bucket's when it holds more): one read per run of adjacent buckets."""
    ranges: list[KeyRange] = []
    for bucket in sorted(buckets):
        low, high = bucket * size, bucket * size + size - 1
        fits = max_keys is None or high - (ranges[-1].low if ranges else low) < max_keys
        if ranges and ranges[-1].high + 1 == low and fits:
            ranges[-1] = KeyRange(ranges[-1].low, high)
        else:
            ranges.append(KeyRange(low, high))
    return ranges


def stored_checksums(store: StateStore, entity: str, size: int) -> Checksums | None:
    """The bucket checksums of the last committed run; None when there are none to compare with."""
    state = store.last_stats(entity).get(CHECKSUMS)
    if not state:
        return None
    if state.get("bucket_size") != size:
        log.warning("%s: SYNC_BUCKET_SIZE changed (%s -> %d): every bucket is read", entity, state["bucket_size"], size)
        return None
    return checksums_of(state)


# --- the batch steps ----------------------------------------------------------------------------


def load(
    entity: str, base_a: BaseA, api: BaseBApi, store: StateStore, settings: SyncSettings, full_refresh: bool = False
) -> LoadReport:
    """Re-send the live rows of the buckets whose checksum changed since the last committed run
    (every row on the first run or a full refresh), versioned by Base A's clock before the reads."""
    started = time.perf_counter()
    view, size = base_a.view(entity), settings.bucket_size
    previous = store.get(entity)
    stored = None if full_refresh else stored_checksums(store, entity, size)
    clock = base_a.now()  # before any read: the version of every record of this run
    refuse_ahead(store, entity, previous, clock)
    sums = _Sums(size)
    if stored is None:
        why = "full refresh" if full_refresh else "no stored checksums"
        log.info("%s: no cursor, %s: reading every row", entity, why)
        current, checksum_seconds, ranges = {}, 0.0, [None]
    else:
        current = bucket_checksums(base_a, entity, size)
        checksum_seconds = time.perf_counter() - started
        changed = sorted(b for b, checksum in current.items() if stored.get(b) != checksum)
        ranges = bucket_ranges(changed, size)
    reads = (_read(base_a, view, keys, clock, settings.chunk_size, sums) for keys in ranges)
    chunks = concat_chunks(base_a.unkeyed(entity, settings.chunk_size, clock), *reads)  # no key: in no bucket
    counts = push_chunks(api, entity, chunks, settings.push_concurrency)
    read = sums.checksums()
    if stored is None:
        checksums, compared, changed, gone = read, 0, sorted(read), []
    else:
        # Unchanged buckets keep the checksum Base B holds; re-read ones take what was sent.
        checksums = {b: c for b, c in current.items() if b not in changed} | read
        compared, gone = len(set(stored) | set(current)), sorted(set(stored) - set(current))
    scan = BucketScan(size, checksums, compared, changed, gone, sum(n for n, _ in read.values()), checksum_seconds)
    until = Cursor(clock, 0)  # Base B holds Base A as of the clock, once verified
    report = LoadReport(entity, previous, None, until, clock, counts, time.perf_counter() - started, scan)
    log.info(
        "%s: no cursor: %d buckets compared, %d changed, %d gone; %d rows re-read (checksums %.2f s, total %.2f s): %s",
        entity,
        scan.compared,
        len(scan.changed),
        len(scan.gone),
        scan.rows_reread,
        scan.checksum_seconds,
        report.seconds,
        dict(counts),
    )
    return report


def verify(entity: str, base_a: BaseA, api: BaseBApi, report: LoadReport, settings: SyncSettings) -> VerifyResult:
    """Base B against Base A in the re-sent buckets, and in any bucket whose (count, key sum) differs.

    Every live key of a re-sent bucket must be in Base B at the run's clock or later (later: the
    events path wrote a newer change); in the other buckets checked, every live key must be there.
    What is missing is re-sent (at most SYNC_REPAIR_LIMIT rows), unless it is an open rejection;
    keys Base B holds that Base A no longer has were deleted after `propagate_deletes` ran: the
    next run takes them.
    """
    scan, clock = report.scan, report.clock
    size = scan.bucket_size
    theirs, ours = _both(lambda: api.key_buckets(entity, size), lambda: base_a.key_buckets(entity, size))
    drifted = {b for b in set(theirs) | set(ours) if theirs.get(b) != ours.get(b)}
    resent = set(scan.changed)
    checked = sorted(resent | set(scan.gone) | drifted)
    missing, moved_on, rows = _compare(entity, base_a, api, checked, size, resent, clock)
    repaired, ahead, quarantined = repair(
        entity,
        base_a,
        api,
        settings,
        missing,
        lambda: _compare(entity, base_a, api, checked, size, resent, clock)[0],
        "of the re-sent buckets",
        "the checksums stay",
    )
    log.info(
        "%s: verified %d rows in %d buckets (%d re-sent, %d drifted): %d repaired, %d moved on",
        entity,
        rows,
        len(checked),
        len(resent),
        len(drifted - resent),
        repaired,
        moved_on,
    )
    return VerifyResult(rows=rows, repaired=repaired, ahead=ahead, moved_on=moved_on, quarantined=quarantined)


def _compare(
    entity: str, base_a: BaseA, api: BaseBApi, buckets: list[int], size: int, resent: set[int], clock: datetime
) -> tuple[list[int], int, int]:
    """(keys Base B lacks or holds older than the clock in a re-sent bucket, keys only Base B has,
    Base A's live rows) over the buckets. Base B is read before Base A, a range of buckets at a
    time: memory holds the keys of one range (COMPARE_KEYS keys, or one bucket), never the table."""
    missing: list[int] = []
    moved_on = rows = 0
    for keys in bucket_ranges(buckets, size, COMPARE_KEYS):
        held = dict(api.versions_between(entity, keys.low, keys.high))
        present = base_a.keys_between(entity, keys.low, keys.high)
        rows += len(present)
        moved_on += len(held.keys() - present)
        for key in sorted(present):
            version = held.get(key)
            if version is None or (key // size in resent and version < clock):
                missing.append(key)
    return missing, moved_on, rows


def commit_stats(report: LoadReport, stats: dict) -> dict:
    """The stats to store with the watermark: the bucket checksums the next run compares against
    (once, not again inside the load report the DAG passes along)."""
    load = stats.get("load")
    if isinstance(load, dict) and isinstance(load.get("scan"), dict):
        stats = {**stats, "load": {**load, "scan": report.scan.cost()}}
    return {**stats, CHECKSUMS: report.scan.state()}
