"""Bulk bodies stay under the byte bound (records.bodies); a row too large alone is quarantined with
the reason, never sent to be refused (413) on every run."""

from __future__ import annotations

import pytest

from base_sync.api_client import BaseBApi
from base_sync.dirty import Quarantined
from base_sync.load import push_chunks
from base_sync.records import bodies, encode

pytestmark = pytest.mark.postgres


def article(key: int, content: str = "c") -> dict:
    stamp = "2025-01-01T00:00:00+00:00"
    return {
        "source_id": key,
        "source_updated_at": stamp,
        "created_at": stamp,
        "updated_at": stamp,
        "title": f"t{key}",
        "content": content,
        "author": "a",
    }


def test_bodies_halve_until_each_is_under_the_bound_and_keep_the_order():
    records = [article(key) for key in range(1, 101)]
    parts = list(bodies(records, 2_000))
    assert [r for part, _ in parts for r in part] == records
    assert all(len(body) <= 2_000 for _, body in parts) and len(parts) > 1
    assert list(bodies(records, 10**9)) == [(records, encode(records))]  # the usual case: one encoding


def test_a_record_too_large_alone_comes_alone_over_the_bound():
    records = [article(1), article(2, "x" * 5_000), article(3)]
    sizes = [(len(part), len(body) > 2_000) for part, body in bodies(records, 2_000)]
    assert sizes == [(1, False), (1, True), (1, False)]


def test_the_batch_path_quarantines_a_row_too_large_to_send_and_loads_the_rest(base_b):
    api = BaseBApi(base_b.url, base_b.token, max_body_bytes=4_000)
    chunk = [article(key) for key in range(1, 31)] + [article(31, "x" * 10_000)]
    counts = push_chunks(api, "articles", iter([chunk]), concurrency=2)
    assert (counts["inserted"], counts["quarantined"], counts["extracted"]) == (30, 1, 31)
    (rejection,) = api.open_rejections("articles")
    assert rejection["source_id"] == 31 and rejection["record"] == {
        "source_id": 31,
        "source_updated_at": "2025-01-01T00:00:00+00:00",
    }
    assert (
        "more than one bulk request may carry (4000 bytes, SYNC_MAX_BODY_BYTES)" in rejection["reasons"][0]["message"]
    )


def test_dirty_rows_are_quarantined_in_bodies_under_the_bound_and_one_too_large_by_its_key(base_b):
    """Quarantine requests are split like bulk ones: 300 dirty rows of long texts were one request the
    API refused (413) on every run, and the load with it."""
    api = BaseBApi(base_b.url, base_b.token, max_body_bytes=4_000)
    reason = [{"field": "created_at", "message": "created_at is the zero timestamp"}]
    dirty = [Quarantined(key, "2025-01-01T00:00:00+00:00", article(key, "x" * 900), reason) for key in range(1, 11)]
    dirty.append(Quarantined(11, "2025-01-01T00:00:00+00:00", article(11, "x" * 10_000), reason))
    counts = push_chunks(api, "articles", iter([[*dirty, article(12)]]), concurrency=2)
    assert (counts["inserted"], counts["quarantined"], counts["extracted"]) == (1, 11, 12)
    stored = {r["source_id"]: r for r in api.open_rejections("articles")}
    assert sorted(stored) == list(range(1, 12))
    assert all(stored[key]["record"]["content"] == "x" * 900 for key in range(1, 11))
    assert stored[11]["record"] == {"source_id": 11, "source_updated_at": "2025-01-01T00:00:00+00:00"}
    assert [r["message"] for r in stored[11]["reasons"]][0] == "created_at is the zero timestamp"
    assert "more than one request may carry (4000 bytes)" in stored[11]["reasons"][1]["message"]
