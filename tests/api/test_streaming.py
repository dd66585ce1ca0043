"""Pages are written as their rows are read: a worker holds a batch of rows, never a whole page.

Found from outside: `GET /articles?limit=1000` over rows of 1 MB read the page whole, then encoded
it whole; the worker's peak went from 208 MB to 3.17 GB, and a few such requests took the machine
down. The answers keep their shape (`items`, `next_after`, up to `limit` items).
"""

from __future__ import annotations

import logging
import tracemalloc
from datetime import UTC, datetime

import orjson
import pytest
import sqlalchemy.exc
from sqlalchemy import text

from api_service.models import REJECTIONS, TABLES
from tests.api.conftest import AUTH

NOW = datetime(2024, 1, 1, tzinfo=UTC)
WIDE = 200 * 1024  # bytes of one wide row's text


def add_articles(db, count: int, content_bytes: int = 10, synced: bool = False) -> list[int]:
    """`count` articles straight into Base B (one content string, shared: the test holds one copy)."""
    content = "x" * content_bytes
    rows = [
        {
            "title": f"t{n}",
            "content": content,
            "source_id": n + 1 if synced else None,
            "source_updated_at": NOW if synced else None,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(count)
    ]
    table = TABLES["articles"]
    with db.begin():
        db.execute(table.insert(), rows)
        return list(db.execute(table.select().with_only_columns(table.c.id).order_by(table.c.id)).scalars())


def add_rejections(db, count: int, record_bytes: int) -> None:
    record = orjson.dumps({"title": "x" * record_bytes}).decode()
    rows = [
        {
            "entity": "articles",
            "source_id": n + 1,
            "source_updated_at": NOW,
            "record": record,
            "reasons": '[{"field": "title", "message": "too long"}]',
            "first_rejected_at": NOW,
            "last_rejected_at": NOW,
            "times": 1,
        }
        for n in range(count)
    ]
    with db.begin():
        db.execute(REJECTIONS.insert(), rows)


def read_counting(response) -> tuple[int, bytes, bytes]:
    """Read an answer to its end keeping none of it: its size, its first and last bytes."""
    size, head, tail = 0, b"", b""
    for chunk in response.response:
        head = (head + chunk)[:200] if len(head) < 200 else head
        tail = (tail + chunk)[-200:]
        size += len(chunk)
    response.close()
    return size, head, tail


@pytest.mark.parametrize("path", ["/articles?limit=200", "/articles/rejections?limit=200"])
def test_a_page_of_wide_rows_is_never_held_whole(client, db, path):
    """200 rows of 200 KB: a 40 MB page. Read whole it costs over twice that (the rows, then the
    JSON); streamed, the worker holds a batch."""
    if "rejections" in path:
        add_rejections(db, 200, WIDE)
    else:
        add_articles(db, 200, WIDE)
    read_counting(client.get(path.replace("200", "1"), headers=AUTH, buffered=False))  # warm the pool
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        size, head, tail = read_counting(client.get(path, headers=AUTH, buffered=False))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 200 * WIDE
    assert head.startswith(b'{"items":[{') and tail.endswith(b'],"next_after":null}')
    assert peak < 200 * WIDE / 4, f"peak {peak / 2**20:.1f} MB for a {size / 2**20:.1f} MB page"


def test_a_page_spanning_many_batches_keeps_its_shape_and_cursor(client, db):
    ids = add_articles(db, 2_345)
    with client.get("/articles?limit=1000") as response:
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert "Content-Length" not in response.headers  # chunked: the length is not known up front
    pages, after = [], 0
    while after is not None:
        page = client.get(f"/articles?limit=1000&after={after}").json
        assert set(page) == {"items", "next_after"}
        pages.append([item["id"] for item in page["items"]])
        after = page["next_after"]
        assert after is None or after == pages[-1][-1]
    assert [len(p) for p in pages] == [1000, 1000, 345]
    assert sum(pages, []) == ids


@pytest.mark.parametrize("limit", [1, 9, 10, 11, 20])
def test_a_page_holds_limit_items_and_next_after_says_whether_more_follow(client, db, limit):
    """Around the first batch (streaming.FIRST_BATCH rows): exactly `limit` items while the rows
    last, and `next_after` only when a row follows."""
    ids = add_articles(db, 10)
    page = client.get(f"/articles?limit={limit}").json
    assert [item["id"] for item in page["items"]] == ids[:limit]
    assert page["next_after"] == (ids[limit - 1] if limit < len(ids) else None)


def test_sync_versions_stream_their_pages_too(client, db):
    add_articles(db, 1_500, synced=True)
    first = client.get("/articles/sync/versions?limit=1200")
    assert "Content-Length" not in first.headers
    assert [item["source_id"] for item in first.json["items"]] == list(range(1, 1201))
    assert first.json["items"][0] == {"source_id": 1, "version": "2024-01-01T00:00:00+00:00"}
    assert first.json["next_after"] == 1200
    rest = client.get("/articles/sync/versions?limit=1200&after=1200").json
    assert [item["source_id"] for item in rest["items"]] == list(range(1201, 1501))
    assert rest["next_after"] is None


def test_a_page_gives_its_connection_back_read_or_not(app, client, db):
    add_articles(db, 30)
    pool = app.extensions["base_b_engine"].pool
    read_counting(client.get("/articles?limit=5", buffered=False))
    assert pool.checkedout() == 0
    client.head("/articles?limit=5").close()  # an answer never read
    assert pool.checkedout() == 0
    unread = client.get("/articles?limit=25", buffered=False)
    next(iter(unread.response))  # a client gone after the first bytes
    unread.close()
    assert pool.checkedout() == 0
    dropped = client.get("/articles?limit=5", buffered=False)  # neither read nor closed
    assert pool.checkedout() == 1
    del dropped
    assert pool.checkedout() == 0


@pytest.mark.parametrize("path", ["/articles", "/articles/rejections", "/articles/sync/versions"])
def test_a_database_error_before_the_answer_starts_is_still_a_problem_document(app, client, db, path):
    """The statement runs, and the first rows are read, before the status is sent."""
    tables = (REJECTIONS.name, "articles")
    with db.begin():
        for name in tables:
            db.execute(text(f"ALTER TABLE {name} RENAME TO {name}_away"))
    try:
        response = client.get(path, headers=AUTH)
    finally:
        with db.begin():
            for name in tables:
                db.execute(text(f"ALTER TABLE {name}_away RENAME TO {name}"))
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert "not migrated" in response.json["detail"] and response.headers["Retry-After"]


def test_a_first_row_that_cannot_be_written_is_still_a_problem_document(app, client, db):
    """Found in review: the answer began before the first row was encoded, so a row that fails to
    encode (corrupt stored reasons) was a 200 cut short, where it had been a 500 problem document."""
    add_rejections(db, 1, 10)
    with db.begin():
        db.execute(text("UPDATE sync_rejections SET reasons = 'not json'"))
    response = client.get("/articles/rejections", headers=AUTH)
    assert response.status_code == 500 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # pg_terminate_backend ends the session
def test_base_b_failing_mid_page_cuts_the_answer_short_and_frees_the_connection(app, client, db, caplog):
    """Once the status is sent, a failure can only end the answer early: the server closes the
    connection without the chunked body's end, and the client sees a truncated answer (README)."""
    add_articles(db, 100, WIDE)
    response = client.get("/articles?limit=100", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b'{"items":['
    assert next(chunks).startswith(b'{"id":')  # the first batch, read before the answer began
    db.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    db.commit()
    with caplog.at_level(logging.ERROR, logger="api_service.streaming"):
        with pytest.raises(sqlalchemy.exc.OperationalError):
            for _ in chunks:
                pass
    response.close()
    assert "cut short" in caplog.text
    metrics = client.get("/metrics").text
    assert 'api_pages_cut_short_total{url_rule="/articles"} 1.0' in metrics
    assert app.extensions["base_b_engine"].pool.checkedout() == 0
    assert client.get("/articles?limit=1").status_code == 200  # the pool opened a new connection
