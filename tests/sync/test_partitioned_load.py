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
from base_sync.reports import LoadReport
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
        partitioned.combine(loaded, list(reports.values()))
    assert store.get("employees") is None

    # The failed partition alone, again: the API receives its rows and no other.
    received_before = bulk_records_received(base_b.url, "employees")
    assert received_before >= sizes[0] + sizes[2]
    reports[1] = partitioned.load_partition(plan[1], base_a, api, SETTINGS)
    assert bulk_records_received(base_b.url, "employees") - received_before == sizes[1]
    assert reports[1].counts["inserted"] == reports[1].verified.rows == sizes[1]

    report, verified = partitioned.combine(loaded, [reports[i] for i in (2, 0, 1)])
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


@pytest.mark.parametrize(
    ("push", "partitions", "at_once", "each"),
    [(2, 1, 0, 2), (2, 4, 0, 1), (8, 4, 0, 2), (8, 4, 2, 4), (8, 2, 4, 4), (3, 4, 2, 2)],
)
def test_partitions_share_the_push_concurrency_of_those_loading_together(push, partitions, at_once, each):
    settings = SyncSettings(push_concurrency=push, partitions_at_once=at_once)
    assert partitioned.partition_concurrency(settings, partitions) == each
