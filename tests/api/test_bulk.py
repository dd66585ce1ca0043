"""Bulk upsert and delete for the pipelines: counts, the version guard, rejections, NDJSON."""

from __future__ import annotations

import threading
from datetime import datetime

import orjson
from sqlalchemy import create_engine, text

from tests.api.conftest import AUTH, raw_rows

V1, V2, V3 = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"


def article(source_id: int, version: str = V1, **fields) -> dict:
    return {"source_id": source_id, "source_updated_at": version, "title": f"title {source_id}", **fields}


def employee(source_id: int, version: str = V1, **fields) -> dict:
    return {
        "source_id": source_id,
        "source_updated_at": version,
        "first_name": "F",
        "last_name": f"L{source_id}",
        "email": f"e{source_id}@example.com",
        "salary": "1000.00",
        **fields,
    }


def upsert(client, entity, records, content_type="application/json"):
    body = orjson.dumps(records) if content_type == "application/json" else records
    response = client.post(f"/{entity}/bulk", data=body, headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 200, response.json
    return response.json


def counts(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("errors", "received") and v}


def test_insert_then_resend_changes_nothing(client, db):
    records = [article(i) for i in range(1, 51)]
    assert counts(upsert(client, "articles", records)) == {"inserted": 50}
    before = raw_rows(db, "articles")
    assert counts(upsert(client, "articles", records)) == {"unchanged": 50}
    assert raw_rows(db, "articles") == before  # not even synced_at moved


def test_newer_versions_update_and_older_ones_are_stale(client, db):
    upsert(client, "articles", [article(1, V2), article(2, V2)])
    result = upsert(client, "articles", [article(1, V3, title="newer"), article(2, V1, title="older")])
    assert counts(result) == {"updated": 1, "stale": 1}
    rows = {r["source_id"]: r for r in raw_rows(db, "articles")}
    assert rows[1]["title"] == "newer" and rows[2]["title"] == "title 2"


def test_same_version_with_different_content_is_applied(client, db):
    upsert(client, "articles", [article(1, V1)])
    assert counts(upsert(client, "articles", [article(1, V1, title="fixed")])) == {"updated": 1}
    assert raw_rows(db, "articles")[0]["title"] == "fixed"


def test_a_deleted_row_stays_deleted_against_older_writes(client, db):
    upsert(client, "articles", [article(1, V1)])
    deleted = client.post("/articles/bulk/delete", json=[{"source_id": 1, "source_updated_at": V2}], headers=AUTH)
    assert counts(deleted.json) == {"deleted": 1}
    for version in (V1, V2):  # older, and as old as the delete
        assert counts(upsert(client, "articles", [article(1, version, title="zombie")])) == {"stale": 1}
    assert client.get("/articles?source_id=1").json["items"] == []
    row = raw_rows(db, "articles")[0]
    assert row["deleted_at"] is not None and row["title"] == "title 1"


def test_a_newer_write_brings_a_deleted_row_back(client):
    upsert(client, "articles", [article(1, V1)])
    client.post("/articles/bulk/delete", json=[{"source_id": 1, "source_updated_at": V2}], headers=AUTH)
    assert counts(upsert(client, "articles", [article(1, V3, title="again")])) == {"updated": 1}
    assert client.get("/articles?source_id=1").json["items"][0]["title"] == "again"


def test_a_delete_before_the_row_arrived_keeps_older_writes_out(client, db):
    """A delete of a key Base B does not hold leaves a tombstone: a replay, another partition or
    an upsert that raced the delete cannot bring back, with an older version, a row Base A deleted."""
    gone = client.post("/employees/bulk/delete", json=[{"source_id": 7, "source_updated_at": V2}], headers=AUTH)
    assert counts(gone.json) == {"not_found": 1}
    for version in (V1, V2):
        assert counts(upsert(client, "employees", [employee(7, version)])) == {"stale": 1}
    assert client.get("/employees?source_id=7").json["items"] == []
    assert counts(upsert(client, "employees", [employee(7, V3)])) == {"updated": 1}  # newer: it lives
    assert client.get("/employees?source_id=7").json["items"][0]["email"] == "e7@example.com"
    again = client.post("/employees/bulk/delete", json=[{"source_id": 8, "source_updated_at": V2}] * 2, headers=AUTH)
    assert counts(again.json) == {"not_found": 1, "stale": 1}  # the same key twice: one tombstone


def test_bulk_delete_counts_every_outcome(client):
    upsert(client, "articles", [article(1, V1), article(2, V3), article(3, V1)])
    client.post("/articles/bulk/delete", json=[{"source_id": 3, "source_updated_at": V1}], headers=AUTH)
    response = client.post(
        "/articles/bulk/delete",
        json=[
            {"source_id": 1, "source_updated_at": V2},  # deleted
            {"source_id": 2, "source_updated_at": V2},  # the row is newer: stale
            {"source_id": 3, "source_updated_at": V2},  # already deleted
            {"source_id": 99, "source_updated_at": V2},  # never synced
            {"source_id": "x"},  # rejected
        ],
        headers=AUTH,
    )
    assert counts(response.json) == {"deleted": 1, "stale": 1, "unchanged": 1, "not_found": 1, "rejected": 1}
    assert response.json["errors"][0]["index"] == 4


def test_bulk_delete_never_touches_rows_created_through_the_api(client):
    created = client.post("/articles", json={"title": "mine"}, headers=AUTH).json
    response = client.post(
        "/articles/bulk/delete", json=[{"source_id": created["id"], "source_updated_at": V3}], headers=AUTH
    )
    assert counts(response.json) == {"not_found": 1}
    assert client.get(f"/articles/{created['id']}").status_code == 200


def test_valid_records_are_written_and_each_rejected_one_is_explained(client):
    records = [
        article(1),
        {"source_id": 2, "source_updated_at": V1, "title": ""},
        {"source_id": -3, "source_updated_at": "not a time", "title": "x" * 300, "extra": 1},
        "not an object",
        article(5),
    ]
    result = upsert(client, "articles", records)
    assert counts(result) == {"inserted": 2, "rejected": 3}
    errors = {e["index"]: e for e in result["errors"]}
    assert sorted(errors) == [1, 2, 3]
    assert errors[1]["source_id"] == 2 and errors[1]["reasons"][0]["field"] == "title"
    assert {r["field"] for r in errors[2]["reasons"]} == {"source_id", "source_updated_at", "title", "extra"}
    assert errors[3]["reasons"][0]["field"] == "record"
    assert [r["source_id"] for r in client.get("/articles").json["items"]] == [1, 5]


def test_a_null_in_a_required_field_is_said_to_be_null(client):
    """Found from outside: a NULL source column of a required field (a row of either sync path) was
    rejected with "Input should be a valid string", which did not say the value was missing."""
    result = upsert(client, "employees", [employee(1, email=None), employee(2, first_name="")])
    assert counts(result) == {"rejected": 2}
    errors = {e["index"]: e["reasons"] for e in result["errors"]}
    assert errors[0] == [{"field": "email", "message": "email is NULL, but the field is required"}]
    assert errors[1][0]["field"] == "first_name" and "NULL" not in errors[1][0]["message"]  # '' is no NULL


def test_ndjson_with_a_broken_line_rejects_only_that_line(client):
    body = b"\n".join([orjson.dumps(article(1)), b"{broken", b"", orjson.dumps(article(2))])
    result = upsert(client, "articles", body, "application/x-ndjson")
    assert counts(result) == {"inserted": 2, "rejected": 1}
    assert result["received"] == 3
    assert result["errors"][0]["index"] == 1 and "line 2" in result["errors"][0]["reasons"][0]["message"]


def test_the_same_source_id_twice_keeps_the_newest(client):
    result = upsert(client, "articles", [article(1, V2, title="newest"), article(1, V1, title="older")])
    assert counts(result) == {"inserted": 1, "stale": 1}
    assert client.get("/articles?source_id=1").json["items"][0]["title"] == "newest"


def test_created_and_updated_default_to_the_source_version(client):
    upsert(client, "articles", [article(1, V2), article(2, V2, created_at=V1, updated_at=V2)])
    rows = {r["source_id"]: r for r in client.get("/articles").json["items"]}
    assert rows[1]["created_at"] == rows[1]["updated_at"] == "2024-02-01T00:00:00+00:00"
    assert rows[2]["created_at"] == "2024-01-01T00:00:00+00:00"


def test_timestamps_with_offsets_compare_as_instants(client):
    upsert(client, "articles", [article(1, "2024-01-01T02:00:00+02:00")])
    assert counts(upsert(client, "articles", [article(1, "2024-01-01T00:00:00Z")])) == {"unchanged": 1}
    assert counts(upsert(client, "articles", [article(1, "2024-01-01T00:00:00")])) == {"unchanged": 1}  # naive = UTC


def test_email_taken_by_an_api_row_is_rejected_not_merged(client):
    mine = client.post(
        "/employees", json={"first_name": "A", "last_name": "B", "email": "taken@example.com"}, headers=AUTH
    ).json
    result = upsert(client, "employees", [employee(1, email="taken@example.com"), employee(2)])
    assert counts(result) == {"inserted": 1, "rejected": 1}
    reason = result["errors"][0]["reasons"][0]
    assert reason["field"] == "email" and f"id {mine['id']}" in reason["message"]
    assert client.get(f"/employees/{mine['id']}").json["source_id"] is None


def test_email_twice_in_one_request_rejects_the_second(client):
    result = upsert(client, "employees", [employee(1, email="dup@example.com"), employee(2, email="dup@example.com")])
    assert counts(result) == {"inserted": 1, "rejected": 1}
    message = result["errors"][0]["reasons"][0]["message"]
    assert result["errors"][0]["index"] == 1 and "claimed by source_id 1 (record 0 of this request)" in message


def test_an_email_given_up_and_taken_in_one_request_is_applied(client):
    upsert(client, "employees", [employee(1, email="move@example.com")])
    result = upsert(
        client, "employees", [employee(2, V2, email="move@example.com"), employee(1, V2, email="new@example.com")]
    )
    assert counts(result) == {"inserted": 1, "updated": 1}
    emails = {r["source_id"]: r["email"] for r in client.get("/employees").json["items"]}
    assert emails == {1: "new@example.com", 2: "move@example.com"}


def test_an_email_handed_on_along_a_chain_in_one_request_is_applied_whatever_the_key_order(client):
    """Row 1 takes row 2's address, row 2 takes row 3's, row 3 a new one: row 1 was refused when it
    came first (lower key), though row 2 gave the address up in the same request."""
    upsert(client, "employees", [employee(k, email=f"c{k}@example.com") for k in (1, 2, 3)])
    moved = [employee(1, V2, email="c2@example.com"), employee(2, V2, email="c3@example.com")]
    result = upsert(client, "employees", [*moved, employee(3, V2, email="c9@example.com")])
    assert counts(result) == {"updated": 3}, result
    emails = {r["source_id"]: r["email"] for r in client.get("/employees").json["items"]}
    assert emails == {1: "c2@example.com", 2: "c3@example.com", 3: "c9@example.com"}


def test_emails_swapped_or_passed_round_a_cycle_in_one_request_are_applied(client, db):
    """Base A swaps two rows' emails in one transaction (through a temporary value): both updates
    arrive in one request, and the unique index, checked row by row, refused each, so neither path
    could ever apply the swap (a soak probe). Both are written now, in one transaction."""
    upsert(client, "employees", [employee(k, email=f"{k}@example.com") for k in (1, 2, 3, 4, 5)])
    swapped = [employee(1, V2, email="2@example.com"), employee(2, V2, email="1@example.com")]
    cycle = [employee(k, V2, email=f"{k % 5 + 1 if k < 5 else 3}@example.com") for k in (3, 4, 5)]
    result = upsert(client, "employees", [*swapped, *cycle])
    assert counts(result) == {"updated": 5}, result
    emails = {r["source_id"]: r["email"] for r in client.get("/employees").json["items"]}
    assert emails == {
        1: "2@example.com",
        2: "1@example.com",
        3: "4@example.com",
        4: "5@example.com",
        5: "3@example.com",
    }
    # A record the version guard refuses passes nothing on: its row keeps its value, no placeholder.
    back = [employee(1, V3, email="1@example.com"), employee(2, V3, email="2@example.com")]
    result = upsert(client, "employees", [*back, employee(3, V1, email="zz@example.com")])
    assert counts(result) == {"updated": 2, "stale": 1}, result
    emails = {r["source_id"]: r["email"] for r in raw_rows(db, "employees")}
    assert emails == {
        1: "1@example.com",
        2: "2@example.com",
        3: "4@example.com",
        4: "5@example.com",
        5: "3@example.com",
    }


def test_five_thousand_records_in_one_request(client):
    records = [employee(i) for i in range(1, 5001)]
    assert counts(upsert(client, "employees", records)) == {"inserted": 5000}
    assert counts(upsert(client, "employees", records)) == {"unchanged": 5000}
    changed = [employee(i, V2, position="moved") for i in range(1, 5001, 2)]
    assert counts(upsert(client, "employees", changed)) == {"updated": 2500}


def test_an_empty_batch_answers_zero_counts(client):
    assert upsert(client, "articles", [])["received"] == 0


def test_a_held_key_between_new_ones_is_merged_not_copied(client, db, caplog):
    """A batch of mostly new keys goes to Base B by COPY; the keys it samples first (first, middle,
    last) are new here, so only the table's unique index can notice the held and the deleted ones."""
    upsert(client, "articles", [article(2, V2, title="held"), article(4, V1), article(6, V1)])
    client.post("/articles/bulk/delete", json=[{"source_id": 6, "source_updated_at": V2}], headers=AUTH)
    batch = [article(1), article(2, V1, title="older"), article(4, V2, title="newer"), article(3)]
    batch += [article(6, V1, title="zombie"), article(5), article(7)]
    with caplog.at_level("INFO", logger="api_service.merge"):
        assert counts(upsert(client, "articles", batch)) == {"inserted": 4, "updated": 1, "stale": 2}
    if db.dialect.name == "postgresql":
        assert "direct COPY into articles refused" in caplog.text  # the COPY was tried, and undone
    rows = {r["source_id"]: r for r in raw_rows(db, "articles")}
    assert len(rows) == 7 and [rows[k]["title"] for k in (2, 4)] == ["held", "newer"]
    assert rows[6]["deleted_at"] is not None and rows[6]["title"] == "title 6"


def _open_rejections(client, entity: str) -> dict[int, str]:
    """source_id -> version of each open rejection."""
    items = client.get(f"/{entity}/rejections", headers=AUTH).json["items"]
    return {item["source_id"]: item["source_updated_at"] for item in items}


def test_a_rejection_stays_open_until_base_b_holds_its_version_or_a_newer_one(client):
    upsert(client, "articles", [article(1, V2)])
    assert upsert(client, "articles", [article(1, V3, title="")])["rejected"] == 1  # the V3 change
    assert list(_open_rejections(client, "articles")) == [1]
    # An older write (stale) and a delete older than the rejected change leave it open:
    # Base B still lacks the rejected change.
    assert counts(upsert(client, "articles", [article(1, V1)])) == {"stale": 1}
    delete = client.post("/articles/bulk/delete", json=[{"source_id": 1, "source_updated_at": V2}], headers=AUTH)
    assert delete.status_code == 200, delete.json
    assert list(_open_rejections(client, "articles")) == [1]
    # The change itself, fixed, closes it.
    assert counts(upsert(client, "articles", [article(1, V3)])) == {"updated": 1}
    assert _open_rejections(client, "articles") == {}


def test_a_newer_write_than_the_rejected_change_closes_it(client):
    assert upsert(client, "articles", [article(2, V2, title="")])["rejected"] == 1
    assert counts(upsert(client, "articles", [article(2, V1)])) == {"inserted": 1}
    assert list(_open_rejections(client, "articles")) == [2]  # V1 is older than the rejected V2
    assert counts(upsert(client, "articles", [article(2, V3)])) == {"updated": 1}
    assert _open_rejections(client, "articles") == {}


def test_an_older_rejection_never_takes_a_newer_ones_place(client):
    assert upsert(client, "articles", [article(3, V3, title="")])["rejected"] == 1
    assert upsert(client, "articles", [article(3, V1, title="")])["rejected"] == 1
    items = client.get("/articles/rejections", headers=AUTH).json["items"]
    assert [(i["source_id"], i["source_updated_at"][:10], i["times"]) for i in items] == [(3, "2024-03-01", 2)]
    assert items[0]["record"]["source_updated_at"] == V3


def test_reviving_a_key_whose_unique_value_another_row_took_is_a_coded_rejection(client):
    """A tombstone holds no unique value: its key coming back with the value another live row took
    since is refused like any other record, the holder named, with the code the sync re-sends by."""
    upsert(client, "employees", [employee(1, V1, email="shared@example.com")])
    client.post("/employees/bulk/delete", json=[{"source_id": 1, "source_updated_at": V2}], headers=AUTH)
    holder = {"first_name": "C", "last_name": "C", "email": "shared@example.com"}
    created = client.post("/employees", json=holder, headers=AUTH)
    assert created.status_code == 201, created.json
    result = upsert(client, "employees", [employee(1, V3, email="shared@example.com"), employee(2, V3)])
    assert (result["inserted"], result["rejected"]) == (1, 1), result
    [reason] = result["errors"][0]["reasons"]
    assert reason["code"] == "unique_taken" and reason["field"] == "email"
    assert f"a row created through the API (id {created.json['id']})" in reason["message"]


def test_a_delete_plan_names_what_the_delete_would_do_and_writes_nothing(client, db):
    upsert(client, "articles", [article(1, V1), article(2, V3), article(3, V1)])
    client.post("/articles/bulk/delete", json=[{"source_id": 3, "source_updated_at": V1}], headers=AUTH)
    before = raw_rows(db, "articles")
    deletes = [{"source_id": key, "source_updated_at": V2} for key in (1, 2, 3, 4)]
    plan = client.post("/articles/bulk/delete/plan", json=deletes, headers=AUTH)
    assert plan.status_code == 200, plan.json
    assert plan.json["would_delete"] == [1]  # 2 is newer, 3 is deleted already, 4 was never held
    (newer,) = plan.json["held_newer"]  # with the version it holds: a caller whose stamps are cut can tell
    assert newer["source_id"] == 2 and datetime.fromisoformat(newer["version"]) == datetime.fromisoformat(V3)
    assert (plan.json["deleted"], plan.json["stale"], plan.json["unchanged"], plan.json["not_found"]) == (1, 1, 1, 1)
    assert raw_rows(db, "articles") == before
    real = client.post("/articles/bulk/delete", json=deletes, headers=AUTH).json
    assert (real["deleted"], real["stale"], real["unchanged"], real["not_found"]) == (1, 1, 1, 1)
    assert "would_delete" not in real


def test_a_repair_restores_a_tombstone_of_the_same_version_and_nothing_older(client, db):
    upsert(client, "articles", [article(1, V2), article(2, V2)])
    client.post("/articles/bulk/delete", json=[{"source_id": k, "source_updated_at": V2} for k in (1, 2)], headers=AUTH)
    assert counts(upsert(client, "articles", [article(1, V2)])) == {"stale": 1}  # the tombstone wins the tie
    response = client.post("/articles/bulk?restore_ties=true", json=[article(1, V2), article(2, V1)], headers=AUTH)
    assert counts(response.json) == {"updated": 1, "stale": 1}, response.json  # older stays stale
    rows = {r["source_id"]: r for r in raw_rows(db, "articles")}
    assert rows[1]["deleted_at"] is None and rows[2]["deleted_at"] is not None


def test_a_delete_plan_takes_no_lock_a_merge_would_wait_for(client, db, database_url):
    """The breakers ask for a plan before deletes, every chunk: it must not queue behind a merge (a
    row lock on PostgreSQL, the database's write lock on SQLite)."""
    upsert(client, "articles", [article(1, V1)])
    holder = create_engine(database_url)
    answers = []
    with holder.connect() as conn:
        conn.begin()
        conn.exec_driver_sql("UPDATE articles SET title = 'held' WHERE source_id = 1")  # an open merge
        record = [{"source_id": 1, "source_updated_at": V2}]
        asking = threading.Thread(
            target=lambda: answers.append(client.post("/articles/bulk/delete/plan", json=record, headers=AUTH))
        )
        asking.start()
        asking.join(30)
        answered_while_held = not asking.is_alive()
        conn.rollback()
    asking.join()
    holder.dispose()
    assert answered_while_held, "the plan waited for the merge's row lock"
    assert answers[0].status_code == 200 and answers[0].json["would_delete"] == [1], answers[0].json


def test_an_older_record_replaces_the_exact_version_it_names_and_nothing_else(client, db):
    """Base A's stamp went back (a later commit carrying an earlier stamp): the record names the
    version Base B holds, and replaces it although older. A compare-and-set: a row at any other
    version keeps it, by the version guard."""
    upsert(client, "articles", [article(1, V3), article(2, V3), article(3, V2)])
    records = [
        article(1, V1, title="truth", replaces_version=V3),  # Base B holds V3: replaced
        article(2, V1, title="late", replaces_version=V2),  # Base B holds V3, not V2: stale
        article(3, V3, title="newer", replaces_version=V1),  # newer anyway: the guard applies it
        article(4, V1, title="new", replaces_version=V2),  # no row: inserted
    ]
    assert counts(upsert(client, "articles", records)) == {"inserted": 1, "updated": 2, "stale": 1}
    rows = {r["source_id"]: r for r in raw_rows(db, "articles")}
    assert {k: (r["title"], str(r["source_updated_at"])[:7]) for k, r in rows.items()} == {
        1: ("truth", "2024-01"),
        2: ("title 2", "2024-03"),
        3: ("newer", "2024-03"),
        4: ("new", "2024-01"),
    }
    # Once replaced, the row holds the record's own version: the same record again changes nothing.
    assert counts(upsert(client, "articles", [records[0]])) == {"unchanged": 1}
    assert counts(upsert(client, "articles", [article(1, V2, title="later")])) == {"updated": 1}


def test_a_replacing_record_restores_a_tombstone_of_the_version_it_names(client, db):
    upsert(client, "articles", [article(1, V1)])
    client.post("/articles/bulk/delete", json=[{"source_id": 1, "source_updated_at": V3}], headers=AUTH)
    assert counts(upsert(client, "articles", [article(1, V2, title="put back", replaces_version=V3)])) == {"updated": 1}
    assert client.get("/articles?source_id=1").json["items"][0]["title"] == "put back"


def test_a_replacing_record_whose_email_another_row_holds_is_a_coded_rejection(client):
    upsert(client, "employees", [employee(1, V3), employee(2, V1)])
    taken = employee(1, V1, email="e2@example.com", replaces_version=V3)
    result = upsert(client, "employees", [taken])
    assert (result["rejected"], result["errors"][0]["reasons"][0]["code"]) == (1, "unique_taken"), result
    assert client.get("/employees?source_id=1").json["items"][0]["email"] == "e1@example.com"


def test_a_decimal_past_pythons_exponent_range_is_a_rejected_record_not_a_500(client):
    """An outside probe got a 500: 1E+1000000 overflows the decimal context (Overflow, which is no
    InvalidOperation), alone in a batch, where the fast pass decides."""
    for salary in ("1E+1000000", "-5E+1000001"):
        result = upsert(client, "employees", [employee(1, salary=salary)])
        assert (result["rejected"], result["errors"][0]["reasons"][0]["field"]) == (1, "salary"), result


def test_a_moved_value_whose_record_the_merge_does_not_write_leaves_no_placeholder(client, db):
    """A row the version guard cannot order (a NULL version, stored before versions were required)
    was given a placeholder and then not written: the review found the placeholder committed. Such
    a request rolls back and merges record by record."""
    upsert(client, "employees", [employee(k, email=f"{k}@example.com") for k in (1, 2, 3)])
    db.execute(text("UPDATE employees SET source_updated_at = NULL WHERE source_id = 3"))
    db.commit()
    swap = [employee(1, V2, email="2@example.com"), employee(2, V2, email="1@example.com")]
    upsert(client, "employees", [*swap, employee(3, V2, email="9@example.com")])
    emails = {r["source_id"]: r["email"] for r in raw_rows(db, "employees")}
    assert not any("passed on" in email for email in emails.values()), emails
