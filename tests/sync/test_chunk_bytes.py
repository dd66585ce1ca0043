"""A batch read's chunk is bounded by bytes as well as rows: wide rows (long texts) make chunks of fewer
rows, so the load, the repairs and the key comparison's re-sends hold about SYNC_CHUNK_BYTES of rows
whatever SYNC_CHUNK_SIZE. Found from outside: 2,000 articles of 1 MB each were read as one chunk of
2 GB, then encoded into as much again twice over (an OOM at the defaults, on every retry)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import pytest
from sqlalchemy import text

from base_sync import sync
from base_sync.api_client import ApiRefused, BaseBApi
from base_sync.chunking import FETCH_ROWS, bounded_chunks, measure_of, text_bytes
from base_sync.load import push_chunks
from base_sync.records import bodies
from base_sync.settings import CHUNK_BYTES, SyncSettings
from base_sync.source import BaseA, source_engine
from base_sync.source_schema import create_schema
from base_sync.state import MemoryStateStore
from tests.sync.conftest import TOKEN, assert_in_sync

WIDE = 60_000  # bytes of content a row: under MariaDB's TEXT limit (the platform's articles.content)
ROWS = 300  # 18 MB of text: one chunk of 5,000 rows before
SETTINGS = SyncSettings(lookback_seconds=0, bucket_size=1000)  # SYNC_CHUNK_SIZE 5000: rows never cut a chunk


def seed_wide(engine, count: int = ROWS) -> list[int]:
    table = BaseA(engine).table("articles")
    with engine.begin() as conn:
        for start in range(1, count + 1, 50):
            rows = [
                {"title": f"t{key}", "content": chr(97 + key % 26) * WIDE, "author": "a"}
                for key in range(start, min(start + 50, count + 1))
            ]
            conn.execute(table.insert(), rows)
    return list(range(1, count + 1))


def peak_bytes(work: Callable[[], object]) -> int:
    """Peak bytes Python allocated while `work` ran, above what was held before."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def content_bytes(chunk: list) -> int:
    return sum(len(r["content"]) for r in chunk)


def assert_bounded(chunks: list[list], limit: int) -> None:
    assert len(chunks) > 1
    assert all(content_bytes(c) <= limit or len(c) == 1 for c in chunks), [content_bytes(c) for c in chunks]


# Without servers: the cut and the bodies


def test_chunks_are_cut_at_the_byte_budget_or_the_row_count_in_order():
    rows = [(key, "n" * 10) for key in range(1, 501)] + [(key, "w" * 5_000) for key in range(501, 601)]
    fetches: list[int] = []

    def fetch(n: int) -> list:
        fetches.append(n)
        taken = rows[sum(fetches[:-1]) : sum(fetches)]
        return taken

    chunks = list(bounded_chunks(fetch, 200, 40_000))
    assert [row for chunk in chunks for row in chunk] == rows
    assert all(len(c) <= 200 and text_bytes(c) <= 40_000 for c in chunks)
    # 500 narrow rows cut by count; the last 100 of them and 7 wide ones (36,000 bytes: an 8th passes 40,000)
    assert [len(c) for c in chunks[:4]] == [200, 200, 107, 8]
    assert max(fetches) <= FETCH_ROWS
    assert len(list(bounded_chunks(lambda n: [], 10, 10))) == 0


def test_a_row_larger_than_the_budget_comes_alone():
    rows = [(1, "a"), (2, "b" * 100), (3, "c")]
    source = iter(rows)
    chunks = list(bounded_chunks(lambda n: [r for _, r in zip(range(n), source, strict=False)], 10, 50))
    assert chunks == [[(1, "a")], [(2, "b" * 100)], [(3, "c")]]


def test_only_long_columns_are_measured_and_short_ones_cost_nothing():
    """Rows of numbers, stamps and short texts are read as before (no measure, a fetch per chunk):
    only TEXT, BLOB, JSON and long VARCHAR columns can make a chunk of rows wide."""
    short = [("id", 8, 1, 20, 20, 0, 0), ("email", 253, 9, 1020, 1020, 0, 0)]
    assert measure_of(short) is None
    measure = measure_of([*short, ("content", 252, 0, 4294967295, 4294967295, 0, 1)])
    assert measure([(1, "a@b.org", "x" * 500), (2, "c@d.org", None)]) == 500
    longtext = ("content", 252, 0, -1, -1, 0, 1)  # MySQLdb's LONGTEXT: 2^32-1 read as a signed -1
    assert measure_of([*short, longtext])([(1, "a@b.org", "x" * 700)]) == 700
    assert measure_of([("id", None, None, None, None, None, None)]) is text_bytes  # SQLite declares no types


def test_bodies_hold_one_body_of_wide_records_not_three():
    """Encoding 300 records of 100 KB into bodies of 1 MiB: the chunk's body was kept alive while its
    halves and quarters were encoded (peak 2x the bodies; 400 records of 1 MB: +771 MB for 381 MB)."""
    records = [{"source_id": k, "content": "x" * 100_000} for k in range(300)]
    total = [0]

    def encode_all() -> None:
        for _, body in bodies(records, 2**20):
            total[0] += len(body)

    peak = peak_bytes(encode_all)
    assert peak < 1.3 * total[0], (peak, total[0])


# On MariaDB: the reads


@pytest.mark.mariadb
def test_the_extract_cuts_wide_rows_into_chunks_of_the_byte_budget(base_a, base_a_engine):
    seed_wide(base_a_engine)
    chunks = list(base_a.extract("articles", None, 5000))
    assert [r["source_id"] for c in chunks for r in c] == list(range(1, ROWS + 1))
    assert_bounded(chunks, CHUNK_BYTES)
    small = BaseA(base_a_engine, chunk_bytes=2**20)
    assert_bounded(list(small.extract("articles", None, 5000)), 2**20)


@pytest.mark.mariadb
def test_a_longtext_column_is_measured_too(base_a_engine):
    """MySQLdb declares a LONGTEXT's width as -1: the legacy articles' body, the outside test's case."""
    with base_a_engine.begin() as conn:
        conn.execute(text("ALTER TABLE articles MODIFY content LONGTEXT"))
    seed_wide(base_a_engine, 60)
    assert_bounded(list(BaseA(base_a_engine, chunk_bytes=2**20).extract("articles", None, 5000)), 2**20)


def test_the_embedded_sqlite_base_a_is_bounded_too(tmp_path):
    """SQLite declares no column types to the driver: every text value is measured."""
    engine = source_engine(f"sqlite:///{tmp_path}/base_a.sqlite")
    create_schema(engine)
    keys = seed_wide(engine, 60)
    base_a = BaseA(engine, chunk_bytes=2**20)
    chunks = list(base_a.extract("articles", None, 5000))
    assert [r["source_id"] for c in chunks for r in c] == keys
    assert_bounded(chunks, 2**20)
    engine.dispose()


@pytest.mark.mariadb
def test_reads_by_key_are_bounded_as_the_extract(base_a_engine):
    keys = seed_wide(base_a_engine)
    base_a = BaseA(base_a_engine, chunk_bytes=2**20)
    records = list(base_a.records_by_keys("articles", keys, 5000))
    assert [r["source_id"] for c in records for r in c] == keys
    assert_bounded(records, 2**20)
    rows = list(base_a.rows_by_keys("articles", keys, 5000))
    assert [r["id"] for c in rows for r in c] == keys
    assert_bounded(rows, 2**20)


@pytest.mark.mariadb
def test_the_extract_holds_about_one_chunk_of_wide_rows(base_a_engine):
    seed_wide(base_a_engine)
    base_a = BaseA(base_a_engine, chunk_bytes=2**20)
    base_a.check()  # the catalogue read, not the extract
    peak = peak_bytes(lambda: sum(len(c) for c in base_a.extract("articles", None, 5000)))
    assert peak < 6 * 2**20, peak  # 18 MB of rows read, a chunk of 1 MiB (and its rows as read) held


@pytest.mark.mariadb
def test_a_load_and_a_repair_of_wide_rows_hold_a_few_chunks_not_the_window(base_a_engine, base_b):
    seed_wide(base_a_engine)
    base_a, api, store = BaseA(base_a_engine, chunk_bytes=2**20), base_b.api(), MemoryStateStore()
    base_a.check()
    reports = []
    peak = peak_bytes(lambda: reports.append(sync.load("articles", base_a, api, store, SETTINGS)))
    assert reports[0].counts["inserted"] == ROWS
    assert peak < 12 * 2**20, peak  # 18 MB of text; chunks of 1 MiB, two bodies in flight
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == ROWS

    base_b.empty()  # every row missing: the repair re-reads them all by key
    missing = list(range(1, ROWS + 1))
    repaired = []
    peak = peak_bytes(
        lambda: repaired.append(
            sync.repair("articles", base_a, api, SETTINGS, missing, lambda: [], "of the test", "nothing")
        )
    )
    assert repaired[0][0] == ROWS
    assert peak < 12 * 2**20, peak
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == ROWS


@pytest.mark.mariadb
def test_the_key_comparison_re_sends_wide_rows_a_few_chunks_at_a_time(base_a_engine, base_b):
    """The outside test's second case: a key comparison re-sending every row Base B lacks."""
    seed_wide(base_a_engine)
    base_a, api, store = BaseA(base_a_engine, chunk_bytes=2**20), base_b.api(), MemoryStateStore()
    base_a.check()
    deleted = []
    peak = peak_bytes(
        lambda: deleted.append(sync.propagate_deletes("articles", base_a, api, store, SETTINGS, compare_keys=True))
    )
    assert deleted[0].comparison.resent == ROWS
    assert peak < 12 * 2**20, peak
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == ROWS


# F4: a body limit above the API's


@pytest.mark.postgres
def test_a_413_from_the_api_names_the_settings_to_change(make_postgres_database, tmp_path):
    from api_service import migrate
    from testbed.servers import api_server

    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    with api_server(database_url, TOKEN, tmp_path / "api.log", env={"API_MAX_CONTENT_LENGTH": "65536"}) as url:
        api = BaseBApi(url, TOKEN, max_body_bytes=1_000_000)
        stamp = "2025-01-01T00:00:00+00:00"
        records = [
            {"source_id": k, "source_updated_at": stamp, "title": "t", "content": "x" * 1000} for k in range(1, 200)
        ]
        with pytest.raises(ApiRefused) as refused:
            push_chunks(api, "articles", iter([records]), concurrency=1)
    message = str(refused.value)
    assert refused.value.status == 413
    assert "refused a body of" in message
    assert "(1000000 bytes, SYNC_MAX_BODY_BYTES" in message and "below the API's API_MAX_CONTENT_LENGTH" in message
