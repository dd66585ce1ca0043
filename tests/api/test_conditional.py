"""Conditional requests on one row (RFC 9110): ETag, If-Match, If-None-Match, If-Unmodified-Since,
and concurrent writers of one row, each request on its own connection."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.http import http_date

from tests.api.conftest import AUTH
from tests.api.test_crud import ARTICLE, create

SYNCED = {"source_id": 7, "source_updated_at": "2024-01-01T00:00:00Z", "title": "Synced", "content": "a"}


def test_get_post_and_put_carry_the_strong_etag_of_the_row_as_served(client):
    created = create(client, "articles", ARTICLE)
    row_id = created.json["id"]
    read = client.get(f"/articles/{row_id}")
    assert created.headers["ETag"] == read.headers["ETag"]
    assert read.headers["ETag"].startswith('"') and not read.headers["ETag"].startswith("W/")
    assert read.headers["Cache-Control"] == "no-cache"
    replaced = client.put(f"/articles/{row_id}", json={**ARTICLE, "title": "Two"}, headers=AUTH)
    assert replaced.headers["ETag"] != read.headers["ETag"]
    assert client.get(f"/articles/{row_id}").headers["ETag"] == replaced.headers["ETag"]


def test_a_put_the_same_data_again_is_a_new_etag(client):
    """Every write through the API sets updated_at, which the client reads: the tag follows."""
    row_id = create(client, "articles", ARTICLE).json["id"]
    first = client.put(f"/articles/{row_id}", json=ARTICLE, headers=AUTH).headers["ETag"]
    second = client.put(f"/articles/{row_id}", json=ARTICLE, headers=AUTH).headers["ETag"]
    assert first != second


def test_the_second_of_two_clients_that_read_the_same_version_gets_412(client):
    row_id = create(client, "articles", ARTICLE).json["id"]
    etag = client.get(f"/articles/{row_id}").headers["ETag"]
    first = client.put(f"/articles/{row_id}", json={**ARTICLE, "title": "A"}, headers={**AUTH, "If-Match": etag})
    assert first.status_code == 200
    second = client.put(f"/articles/{row_id}", json={**ARTICLE, "title": "B"}, headers={**AUTH, "If-Match": etag})
    assert second.status_code == 412
    assert second.mimetype == "application/problem+json" and second.json["status"] == 412
    assert client.get(f"/articles/{row_id}").json["title"] == "A"
    deleted = client.delete(f"/articles/{row_id}", headers={**AUTH, "If-Match": etag})
    assert deleted.status_code == 412
    assert client.get(f"/articles/{row_id}").status_code == 200


def test_if_match_lists_and_star(client):
    row_id = create(client, "articles", ARTICLE).json["id"]
    etag = client.get(f"/articles/{row_id}").headers["ETag"]
    for header in ('"stale"', "stale", f"W/{etag}", ""):
        answer = client.put(f"/articles/{row_id}", json=ARTICLE, headers={**AUTH, "If-Match": header})
        assert answer.status_code == 412, header
    listed = client.put(f"/articles/{row_id}", json=ARTICLE, headers={**AUTH, "If-Match": f'"stale", {etag}'})
    assert listed.status_code == 200
    assert client.put(f"/articles/{row_id}", json=ARTICLE, headers={**AUTH, "If-Match": "*"}).status_code == 200
    assert client.delete(f"/articles/{row_id}", headers={**AUTH, "If-Match": "*"}).status_code == 204
    # No live row: the answer without the condition (404), as RFC 9110 13.2.1 says.
    assert client.delete(f"/articles/{row_id}", headers={**AUTH, "If-Match": "*"}).status_code == 404
    assert client.put(f"/articles/{row_id}", json=ARTICLE, headers={**AUTH, "If-Match": "*"}).status_code == 404


def test_a_synced_row_is_409_whatever_the_precondition(client):
    client.post("/articles/bulk", json=[SYNCED], headers=AUTH)
    row = client.get("/articles?source_id=7").json["items"][0]
    answer = client.put(f"/articles/{row['id']}", json=ARTICLE, headers={**AUTH, "If-Match": '"stale"'})
    assert answer.status_code == 409


def test_if_none_match_on_get_is_304_while_the_row_is_unchanged(client):
    row_id = create(client, "articles", ARTICLE).json["id"]
    etag = client.get(f"/articles/{row_id}").headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = client.get(f"/articles/{row_id}", headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.headers["ETag"] == etag and cached.data == b""
    assert client.get(f"/articles/{row_id}", headers={"If-None-Match": '"other"'}).status_code == 200
    client.put(f"/articles/{row_id}", json={**ARTICLE, "title": "Two"}, headers=AUTH)
    assert client.get(f"/articles/{row_id}", headers={"If-None-Match": etag}).status_code == 200
    # On a write, a matching If-None-Match is a failed precondition.
    assert client.delete(f"/articles/{row_id}", headers={**AUTH, "If-None-Match": "*"}).status_code == 412


def test_if_match_on_get(client):
    row_id = create(client, "articles", ARTICLE).json["id"]
    assert client.get(f"/articles/{row_id}", headers={"If-Match": '"stale"'}).status_code == 412
    assert client.get(f"/articles/{row_id}", headers={"If-Match": "*"}).status_code == 200


def test_a_synced_row_changed_by_the_pipelines_under_the_same_updated_at_has_a_new_etag(client):
    """A record as new as the row applies when its content differs: Base A's updated_at stays."""
    client.post("/articles/bulk", json=[SYNCED], headers=AUTH)
    row = client.get("/articles?source_id=7").json["items"][0]
    before = client.get(f"/articles/{row['id']}")
    answer = client.post("/articles/bulk", json=[{**SYNCED, "content": "b"}], headers=AUTH)
    assert answer.json["updated"] == 1
    after = client.get(f"/articles/{row['id']}")
    assert after.json["updated_at"] == before.json["updated_at"]
    assert after.headers["ETag"] != before.headers["ETag"]
    assert client.get(f"/articles/{row['id']}", headers={"If-None-Match": before.headers["ETag"]}).status_code == 200


def test_if_unmodified_since_on_put_and_delete(client):
    row = create(client, "articles", ARTICLE).json
    stored = datetime.fromisoformat(row["updated_at"])
    before = http_date(stored - timedelta(seconds=5))
    answer = client.put(f"/articles/{row['id']}", json=ARTICLE, headers={**AUTH, "If-Unmodified-Since": before})
    assert answer.status_code == 412
    assert client.delete(f"/articles/{row['id']}", headers={**AUTH, "If-Unmodified-Since": before}).status_code == 412
    # The same second as the row's updated_at (an HTTP date has no fractions) is not modified since.
    same_second = {**AUTH, "If-Unmodified-Since": http_date(stored)}
    assert client.put(f"/articles/{row['id']}", json=ARTICLE, headers=same_second).status_code == 200
    later = http_date(datetime.now(UTC) + timedelta(seconds=5))
    assert client.delete(f"/articles/{row['id']}", headers={**AUTH, "If-Unmodified-Since": later}).status_code == 204


def test_if_match_wins_over_if_unmodified_since_and_a_bad_date_is_ignored(client):
    row_id = create(client, "articles", ARTICLE).json["id"]
    etag = client.get(f"/articles/{row_id}").headers["ETag"]
    old = "Sun, 06 Nov 1994 08:49:37 GMT"
    both = client.put(
        f"/articles/{row_id}", json=ARTICLE, headers={**AUTH, "If-Match": etag, "If-Unmodified-Since": old}
    )
    assert both.status_code == 200
    bad = client.put(f"/articles/{row_id}", json=ARTICLE, headers={**AUTH, "If-Unmodified-Since": "yesterday"})
    assert bad.status_code == 200


def _concurrently(app, count: int, call) -> list[int]:
    """`count` requests at once, each in its own thread with its own connection; their statuses."""
    start = threading.Barrier(count)
    statuses: list[int] = []

    def one(index: int) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(call(client, index).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_of_concurrent_deletes_of_one_row_exactly_one_wins(app, client, db):
    """The late deletes read the live row before the first committed: they must wait on its lock."""
    for _ in range(15):
        row_id = create(client, "articles", ARTICLE).json["id"]
        statuses = _concurrently(app, 4, lambda c, _i, row_id=row_id: c.delete(f"/articles/{row_id}", headers=AUTH))
        assert sorted(statuses) == [204, 404, 404, 404]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_of_concurrent_puts_with_the_same_if_match_exactly_one_wins(app, client):
    for _ in range(10):
        row_id = create(client, "articles", ARTICLE).json["id"]
        etag = client.get(f"/articles/{row_id}").headers["ETag"]

        def put(c, index, row_id=row_id, etag=etag):
            body = {**ARTICLE, "title": f"writer {index}"}
            return c.put(f"/articles/{row_id}", json=body, headers={**AUTH, "If-Match": etag})

        assert sorted(_concurrently(app, 4, put)) == [200, 412, 412, 412]
