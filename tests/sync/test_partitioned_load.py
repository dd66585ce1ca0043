"""A partitioned first load without Airflow: Base A on MariaDB, the API as a process, Base B on PostgreSQL.

Each partition is loaded as its mapped task would load it; one of them meets an unreachable API
(a real failure, no mock) and is retried alone. About 10 s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from base_sync import partitioned, sync
from base_sync.api_client import BaseBApi
from base_sync.demo import generate
from base_sync.errors import ApiUnavailable
from base_sync.key_ranges import KeyRange
from base_sync.reports import LoadReport, Partition, PartitionReport, VerifyResult
from base_sync.settings import SyncSettings
from base_sync.source import Cursor
from base_sync.state import MemoryStateStore, WatermarkAhead
from tests.sync.conftest import assert_in_sync

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=500, partitions=3, partition_min_rows=1000)
ROWS = 3000


def bulk_records_received(base_url: str, entity: str) -> float:
    """Records the API counted in bulk upserts of `entity` so far, every outcome and path (its /metrics)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    pattern = rf'^api_bulk_records_total\{{(?=[^}}]*entity="{entity}")(?=[^}}]*operation="upsert")[^}}]*\}} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, flags=re.MULTILINE))


def rows_between(base_a, low: int, high: int) -> int:
    return len(base_a.keys_between("employees", low, high))


def test_partitioned_first_load_retries_a_failed_partition_alone_and_commits_after_all(base_a, base_a_engine, base_b):
    generate.seed(base_a_engine, "employees", ROWS, seed_value=41)
    store, api = MemoryStateStore(), base_b.api()
    dead_api = BaseBApi("http://127.0.0.1:9", base_b.token, timeout=2, retries=0)

    plan = partitioned.plan("employees", base_a, store, SETTINGS)
    assert [p.index for p in plan] == [0, 1, 2] and all(p.of == 3 for p in plan)
    low, high, _ = base_a.key_span("employees")
    assert plan[0].keys.low <= low and plan[-1].keys.high >= high
    sizes = [rows_between(base_a, p.keys.low, p.keys.high) for p in plan]
    assert sum(sizes) == ROWS and min(sizes) > ROWS / 6, sizes

    reports = {p.index: partitioned.load_partition(p, base_a, api, SETTINGS) for p in plan if p.index != 1}
    with pytest.raises(ApiUnavailable):
        partitioned.load_partition(plan[1], base_a, dead_api, SETTINGS)
    for index, report in reports.items():
        assert report.counts["inserted"] == report.verified.rows == sizes[index]

    # The commit refuses while a partition is missing: the watermark stays unset.
    loaded = partitioned.left_to_partitions("employees", store, len(plan))
    with pytest.raises(partitioned.IncompletePartitionsError):
        partitioned.reports_of_plan("employees", plan, list(reports.values()))
    assert store.get("employees") is None

    # The failed partition alone, again: the API receives its rows and no other.
    received_before = bulk_records_received(base_b.url, "employees")
    assert received_before >= sizes[0] + sizes[2]
    reports[1] = partitioned.load_partition(plan[1], base_a, api, SETTINGS)
    assert bulk_records_received(base_b.url, "employees") - received_before == sizes[1]
    assert reports[1].counts["inserted"] == reports[1].verified.rows == sizes[1]

    report, verified = partitioned.combine(
        loaded, partitioned.reports_of_plan("employees", plan, [reports[i] for i in (2, 0, 1)])
    )
    assert report.counts["inserted"] == verified.rows == ROWS
    watermark = sync.commit("employees", store, report, {})
    highest = max(r.until for r in reports.values())
    assert watermark == (highest if highest.updated_at <= plan[0].clock else Cursor(plan[0].clock, 0))
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == ROWS

    # Incremental runs load in one piece; a full refresh is partitioned again.
    assert partitioned.plan("employees", base_a, store, SETTINGS) == []
    assert len(partitioned.plan("employees", base_a, store, SETTINGS, full_refresh=True)) == 3

    # A watermark set by hand past Base A's clock: a partitioned full refresh would commit it again.
    store.set("employees", Cursor(datetime(2030, 1, 1, tzinfo=UTC), 0), {})
    with pytest.raises(WatermarkAhead, match=r"holds the watermark 2030-01-01T00:00:00\+00:00 \(key 0\), after"):
        partitioned.plan("employees", base_a, store, SETTINGS, full_refresh=True)


def test_a_partition_verifies_its_own_key_range_only(base_a, base_a_engine, base_b):
    generate.seed(base_a_engine, "employees", 1500, seed_value=42)
    api = base_b.api()
    first, second = partitioned.plan(
        "employees", base_a, MemoryStateStore(), SETTINGS.model_copy(update={"partitions": 2})
    )
    report = partitioned.load_partition(first, base_a, api, SETTINGS)
    assert report.verified.rows == rows_between(
        base_a, first.keys.low, first.keys.high
    )  # the other half is not its business
    # The second range, not loaded yet, differs: with no repairs allowed its verification fails.
    window = LoadReport("employees", None, None, Cursor(first.clock, 2**62))
    no_repairs = SETTINGS.model_copy(update={"repair_limit": 0})
    with pytest.raises(sync.VerificationError, match="missing in Base B"):
        sync.verify("employees", base_a, api, window, no_repairs, second.keys)


def test_a_partition_logs_its_progress_one_line_per_chunk_as_the_one_piece_load_does(
    base_a, base_a_engine, base_b, caplog
):
    """Found from outside: a partition logged nothing until it ended (a 500k-row range: minutes of silence)."""
    generate.seed(base_a_engine, "employees", 1500, seed_value=43)
    first, _ = partitioned.plan("employees", base_a, MemoryStateStore(), SETTINGS.model_copy(update={"partitions": 2}))
    rows = rows_between(base_a, first.keys.low, first.keys.high)
    caplog.set_level("INFO", logger="base_sync")
    partitioned.load_partition(first, base_a, base_b.api(), SETTINGS)
    lines = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    assert lines[0].startswith("employees (partition 1/2): read 500 rows (500 so far), the window reaches "), lines
    assert len(lines) == -(-rows // 500) and f"({rows} so far)" in lines[-1], lines
    # The one-piece load's lines, from the same code.
    caplog.clear()
    sync.load("employees", base_a, base_b.api(), MemoryStateStore(), SETTINGS)
    lines = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    assert lines[0].startswith("employees: read 500 rows (500 so far), the window reaches "), lines
    assert len(lines) == 3 and "(1500 so far)" in lines[-1], lines


@pytest.mark.parametrize(
    ("push", "partitions", "at_once", "each"),
    [(2, 1, 0, 2), (2, 4, 0, 1), (8, 4, 0, 2), (8, 4, 2, 4), (8, 2, 4, 4), (3, 4, 2, 2)],
)
def test_partitions_share_the_push_concurrency_of_those_loading_together(push, partitions, at_once, each):
    settings = SyncSettings(push_concurrency=push, partitions_at_once=at_once)
    assert partitioned.partition_concurrency(settings, partitions) == each


def _planned(clock: datetime, *ranges: tuple[int, int]) -> list[Partition]:
    return [Partition("employees", i, len(ranges), KeyRange(*keys), clock) for i, keys in enumerate(ranges)]


def _reported(partition: Partition, rows: int) -> PartitionReport:
    """A partition's report as the commit receives it: through its XCom's JSON."""
    until = Cursor(partition.clock, partition.keys.high)
    report = PartitionReport(partition, until, {"extracted": rows, "inserted": rows}, VerifyResult(rows=rows), 1.0)
    return PartitionReport.from_json(report.to_json())


FIRST_PLAN = datetime(2026, 12, 6, 23, 0, 0, 123456, tzinfo=UTC)
SECOND_PLAN = datetime(2026, 12, 6, 23, 40, 0, 654321, tzinfo=UTC)


def test_a_run_replanned_with_fewer_partitions_commits_the_new_plans_reports_only(caplog):
    """Found from outside: 4 partitions, 3/4 failed, the run re-planned with SYNC_PARTITIONS=2 (plan_partitions
    cleared with its downstream tasks). Airflow marks map indexes 2 and 3 removed but keeps the result
    of index 3, and hands it to the commit with the new plan's two: the commit failed on every try."""
    old = _planned(FIRST_PLAN, (0, 15007), (15008, 30015), (30016, 45023), (45024, 60031))
    new = _planned(SECOND_PLAN, (0, 30015), (30016, 60031))
    # What Airflow gathers of the mapped task: map indexes 0 and 1 rerun, 3 left from the first plan.
    gathered = [_reported(new[0], 15000), _reported(new[1], 15000), _reported(old[3], 7500)]
    caplog.set_level("WARNING", logger="base_sync.partitioned")

    reports = partitioned.reports_of_plan("employees", [Partition.from_json(p.to_json()) for p in new], gathered)
    assert [r.partition for r in reports] == new
    assert "ignored 1 partition reports of an earlier plan of this run" in caplog.text
    assert "4/4: keys 45024..60031 planned at 2026-12-06T23:00:00.123456+00:00" in caplog.text
    loaded = LoadReport("employees", None, None, None)
    report, verified = partitioned.combine(loaded, reports)
    assert report.counts == {"extracted": 30000, "inserted": 30000} and verified.rows == 30000
    assert report.clock == SECOND_PLAN and report.until == Cursor(SECOND_PLAN, 60031)


def test_a_run_replanned_in_one_piece_commits_no_partition_report():
    """SYNC_PARTITION_MIN_ROWS raised before re-planning a run whose partitions all loaded: the load runs
    in one piece, and the earlier plan's reports (complete, 0..of-1) must not make the commit's counts."""
    old = _planned(FIRST_PLAN, (0, 15007), (15008, 30015))
    gathered = [_reported(p, 15000) for p in old]
    assert partitioned.reports_of_plan("employees", [], gathered) == []
    loaded = LoadReport("employees", None, None, Cursor(SECOND_PLAN, 7), SECOND_PLAN, {"inserted": 12})
    report, verified = partitioned.combine(loaded, [])
    assert report is loaded and verified == VerifyResult()


def test_a_partition_of_the_plan_without_its_own_report_stops_the_commit():
    """Marked success by hand, or re-planned to the same ranges: another plan's report of the same
    index and keys does not stand in for it (its clock differs)."""
    old = _planned(FIRST_PLAN, (0, 30015), (30016, 60031))
    new = _planned(SECOND_PLAN, (0, 30015), (30016, 60031))
    with pytest.raises(partitioned.IncompletePartitionsError, match="the watermark stays"):
        partitioned.reports_of_plan("employees", new, [_reported(new[0], 1), _reported(old[1], 1)])
    with pytest.raises(partitioned.IncompletePartitionsError):
        partitioned.reports_of_plan("employees", new, [_reported(new[1], 1)])


def test_the_commit_names_the_partitions_without_a_report_as_the_ui_does_and_what_to_do():
    """Found from outside: "partitions [0, 2, 3] reported" counted from 0 while the UI shows 1/4 .. 4/4."""
    plan = _planned(FIRST_PLAN, (0, 15007), (15008, 30015), (30016, 45023), (45024, 60031))
    with pytest.raises(partitioned.IncompletePartitionsError) as refused:
        partitioned.reports_of_plan("employees", plan, [_reported(plan[i], 1) for i in (0, 2, 3)])
    message = str(refused.value)
    assert message.startswith(
        "employees: no verified report of partition 2/4: keys 15008..30015 of this run's plan (3 of 4 reported; "
    ), message
    assert "the watermark stays" in message
    assert "Clear that employees.load_partition instance (the UI names it so) with its downstream tasks" in message
    assert "or the run's employees.plan_partitions with its downstream tasks to plan and load anew" in message
    with pytest.raises(partitioned.IncompletePartitionsError, match=r"partition 1/4: keys 0\.\.15007; 4/4: keys"):
        partitioned.reports_of_plan("employees", plan, [_reported(plan[i], 1) for i in (1, 2)])
