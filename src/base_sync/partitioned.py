"""Partitioned first loads and full refreshes: plan key ranges, load and verify each, then reduce.

A first load (no watermark yet) or a full refresh of a table with at least SYNC_PARTITION_MIN_ROWS
rows is cut into SYNC_PARTITIONS key ranges of about equal rows (`key_ranges.split` over Base A's
key buckets, or equal widths of a nearly gapless key). The DAG maps one task per range, so the
executor spreads them over its workers; each streams its range, pushes it to the bulk endpoint
and verifies that range on both sides, and is retried alone when it fails (a re-sent row is a
no-op under the version guard). `combine` turns the partition reports into the one `LoadReport`
the commit takes: only the reports of the run's current plan (`reports_of_plan`), and only when
every partition of that plan reported, so the watermark moves only after all of them verified.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from base_sync import sync
from base_sync.api_client import BaseBApi
from base_sync.errors import TerminalError
from base_sync.key_ranges import bucket_size, even, nearly_gapless, split
from base_sync.load import concat_chunks, push_chunks
from base_sync.reports import LoadReport, Partition, PartitionReport, VerifyResult
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, Reach
from base_sync.state import StateStore, refuse_ahead

log = logging.getLogger(__name__)


class IncompletePartitionsError(TerminalError):
    """The commit got fewer (or other) partition reports than the plan made: the watermark stays."""


def plan(
    entity: str, base_a: BaseA, store: StateStore, settings: SyncSettings, full_refresh: bool = False
) -> list[Partition]:
    """The key ranges of this run's load; [] when it loads in one piece (incremental runs, small tables)."""
    previous = store.get(entity)
    if settings.partitions <= 1 or (previous is not None and not full_refresh):
        return []  # sync.load reads the watermark
    if not base_a.view(entity).has_cursor:  # read in one piece, its bucket checksums summed as it goes
        return []
    clock = base_a.now()  # before any partition reads: see Partition.clock
    refuse_ahead(store, entity, previous, clock)  # the commit would keep it
    low, high, rows = base_a.key_span(entity)
    if rows < max(settings.partition_min_rows, 1):
        log.info("%s: %d rows, below SYNC_PARTITION_MIN_ROWS: one piece", entity, rows)
        return []
    if nearly_gapless(low, high, rows, settings.partitions):
        ranges = even(low, high, settings.partitions)
    else:
        size = bucket_size(low, high, settings.partitions)
        buckets = base_a.key_buckets(entity, size)
        ranges = split({bucket: count for bucket, (count, _) in buckets.items()}, size, settings.partitions)
    log.info("%s: %d rows in %d partitions: %s", entity, rows, len(ranges), [(r.low, r.high) for r in ranges])
    return [Partition(entity, index, len(ranges), keys, clock) for index, keys in enumerate(ranges)]


def left_to_partitions(entity: str, store: StateStore, partitions: int) -> LoadReport:
    """The one-piece load's report when the partitions load everything: an empty window from the watermark."""
    log.info(
        "%s: the load is partitioned: %d load_partition tasks each read, send and verify one key range; "
        "this task reads nothing",
        entity,
        partitions,
    )
    return LoadReport(entity, store.get(entity), None, None)


def verified_by_partitions(entity: str, partitions: int) -> VerifyResult:
    """The one-piece verification's result when the partitions verified their ranges: nothing to compare."""
    log.info(
        "%s: the load was partitioned: each of the %d load_partition tasks verified its key range; "
        "commit_watermark adds up their rows",
        entity,
        partitions,
    )
    return VerifyResult()


def load_partition(partition: Partition, base_a: BaseA, api: BaseBApi, settings: SyncSettings) -> PartitionReport:
    """Stream one key range to the bulk endpoint, then verify that range on both sides (repairing as `verify` does)."""
    started = time.perf_counter()
    entity, keys = partition.entity, partition.keys
    reach = Reach()  # read in key order: the window's end is the highest (updated_at, id) seen

    chunks = base_a.extract(entity, None, settings.chunk_size, keys)
    if partition.index == 0:  # rows whose stamp is no time are in no key window: one partition quarantines them
        chunks = concat_chunks(base_a.unversioned(entity, settings.chunk_size, unreal=True), chunks)
    counts = push_chunks(
        api,
        entity,
        chunks,
        partition_concurrency(settings, partition.of),
        on_chunk=sync.progress(entity, reach, f" (partition {partition.index + 1}/{partition.of})"),
    )
    until = reach.cursor
    window = LoadReport(entity, None, None, until, partition.clock, counts)
    verified = sync.verify(entity, base_a, api, window, settings, keys)
    report = PartitionReport(partition, until, dict(counts), verified, time.perf_counter() - started)
    log.info(
        "%s: partition %d/%d [%d, %d]: %s, verified %d rows in %.2f s",
        entity,
        partition.index + 1,
        partition.of,
        keys.low,
        keys.high,
        dict(counts),
        verified.rows,
        report.seconds,
    )
    return report


def partition_concurrency(settings: SyncSettings, partitions: int) -> int:
    """Bulk requests in flight for one partition: SYNC_PUSH_CONCURRENCY shared by the partitions
    that load at the same time (at least one each), so a partitioned load keeps about as many
    requests at the API as one piece does. More in flight than the API has cores only queues them
    and makes the writers contend (measured: 4 partitions at 2 each were slower than one piece on
    2 cores); SYNC_PARTITIONS_AT_ONCE caps how many partitions run together."""
    return max(1, -(-settings.push_concurrency // loading_together(settings, partitions)))


def loading_together(settings: SyncSettings, partitions: int) -> int:
    """How many partitions of a plan load at the same time, at most (the DAG caps the mapped task so)."""
    return min(partitions, settings.partitions_at_once or partitions)


def reports_of_plan(entity: str, plan: list[Partition], reports: list[PartitionReport]) -> list[PartitionReport]:
    """The reports of the run's current plan (`plan_partitions`' result), in its order; the others ignored.

    A report belongs to the plan when it names one of its partitions: index, count, key range and
    clock (Base A's time at planning, new on every plan). Airflow keeps the result of a mapped task
    whose map index a new plan dropped (the instance is `removed`, and cannot be cleared): a run
    re-planned with fewer partitions, or in one piece, still hands the earlier plan's reports to the
    commit, and they must count for nothing. Raises when a partition of the plan has no report
    (marked success by hand): the watermark stays.
    """
    current = {partition: None for partition in plan}
    ignored = []
    for report in reports:
        if report.partition in current:
            current[report.partition] = report
        else:
            ignored.append(report.partition)
    if ignored:
        log.warning(
            "%s: ignored %d partition reports of an earlier plan of this run (re-planned since): %s",
            entity,
            len(ignored),
            ", ".join(f"{p.label} planned at {p.clock.isoformat()}" for p in ignored),
        )
    missing = [partition for partition, report in current.items() if report is None]
    if missing:  # named as the UI names the mapped instances: 1-based, with their keys
        raise IncompletePartitionsError(
            f"{entity}: no verified report of partition {'; '.join(p.label for p in missing)} of this run's plan "
            f"({len(plan) - len(missing)} of {len(plan)} reported; an instance marked success by hand leaves none): "
            f"the watermark stays. Clear that {entity}.load_partition instance (the UI names it so) with its "
            f"downstream tasks to load it again, or the run's {entity}.plan_partitions with its downstream tasks "
            "to plan and load anew"
        )
    return [report for report in current.values() if report is not None]


def combine(loaded: LoadReport, reports: list[PartitionReport]) -> tuple[LoadReport, VerifyResult]:
    """One load report and one verification over every partition of the plan (`reports_of_plan`), for the commit.

    The window ends at the highest row any partition read, but never after the plan's clock
    (`sync.commit` caps it): rows changed while the partitions ran are re-read by the next
    incremental run.
    """
    if not reports:
        return loaded, VerifyResult()
    counts: Counter = Counter()
    for r in reports:
        counts.update(r.counts)
    ends = [r.until for r in reports if r.until is not None]
    report = LoadReport(
        entity=loaded.entity,
        previous=loaded.previous,
        since=None,
        until=max(ends) if ends else None,
        clock=min(r.partition.clock for r in reports),
        counts=dict(counts),
        seconds=max(r.seconds for r in reports),
    )
    verified = VerifyResult(
        rows=sum(r.verified.rows for r in reports),
        repaired=sum(r.verified.repaired for r in reports),
        ahead=sum(r.verified.ahead for r in reports),
        moved_on=sum(r.verified.moved_on for r in reports),
        quarantined=sum(r.verified.quarantined for r in reports),
    )
    return report, verified
