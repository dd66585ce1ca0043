"""CRUD endpoints for clients: create, read, list with keyset pages and filters, replace, delete."""

from __future__ import annotations

import pytest

from tests.api.conftest import AUTH

ARTICLE = {"title": "Hello", "content": "Body", "author": "Ada"}
EMPLOYEE = {
    "first_name": "Grace",
    "last_name": "Hopper",
    "email": "grace@example.com",
    "department": "Engineering",
    "position": "Admiral",
    "salary": "123456.78",
    "hired_at": "1943-12-01",
}


def create(client, entity, body):
    response = client.post(f"/{entity}", json=body, headers=AUTH)
    assert response.status_code == 201, response.json
    return response


def test_create_answers_201_with_location_and_the_stored_row(client):
    response = create(client, "articles", ARTICLE)
    row = response.json
    assert response.headers["Location"] == f"/articles/{row['id']}"
    assert row["title"] == "Hello" and row["author"] == "Ada" and row["source_id"] is None
    assert row["created_at"] == row["updated_at"] and row["created_at"].endswith("+00:00")
    assert client.get(response.headers["Location"]).json == row


def test_employee_round_trip_keeps_decimal_and_date_exact(client):
    row = create(client, "employees", EMPLOYEE).json
    fetched = client.get(f"/employees/{row['id']}").json
    assert fetched["salary"] == "123456.78"
    assert fetched["hired_at"] == "1943-12-01"
    assert fetched["email"] == "grace@example.com"


def test_list_pages_by_id_with_next_after(client):
    ids = [create(client, "articles", {**ARTICLE, "title": f"t{i}"}).json["id"] for i in range(5)]
    first = client.get("/articles?limit=2").json
    assert [r["id"] for r in first["items"]] == ids[:2]
    assert first["next_after"] == ids[1]
    second = client.get(f"/articles?limit=2&after={first['next_after']}").json
    assert [r["id"] for r in second["items"]] == ids[2:4]
    last = client.get(f"/articles?limit=2&after={second['next_after']}").json
    assert [r["id"] for r in last["items"]] == ids[4:]
    assert last["next_after"] is None


def test_list_filters_by_declared_fields_and_source_id(client):
    create(client, "employees", EMPLOYEE)
    create(client, "employees", {**EMPLOYEE, "email": "x@example.com", "department": "Sales"})
    client.post(
        "/employees/bulk",
        json=[{**EMPLOYEE, "email": "s@example.com", "source_id": 42, "source_updated_at": "2024-01-01T00:00:00Z"}],
        headers=AUTH,
    )
    sales = client.get("/employees?department=Sales").json["items"]
    assert [r["email"] for r in sales] == ["x@example.com"]
    synced = client.get("/employees?source_id=42").json["items"]
    assert [r["email"] for r in synced] == ["s@example.com"]
    assert synced[0]["source_updated_at"] == "2024-01-01T00:00:00+00:00"
    assert client.get("/employees?email=grace@example.com").json["items"][0]["last_name"] == "Hopper"


def test_list_filters_by_updated_after(client):
    client.post(
        "/articles/bulk",
        json=[
            {"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", "title": "old"},
            {"source_id": 2, "source_updated_at": "2024-03-01T00:00:00Z", "title": "new"},
        ],
        headers=AUTH,
    )
    items = client.get("/articles?updated_after=2024-02-01T00:00:00Z").json["items"]
    assert [r["title"] for r in items] == ["new"]


def test_replace_changes_the_data_and_updated_at(client):
    row = create(client, "articles", ARTICLE).json
    response = client.put(f"/articles/{row['id']}", json={"title": "Changed"}, headers=AUTH)
    assert response.status_code == 200
    changed = response.json
    assert changed["title"] == "Changed" and changed["content"] is None  # replace, not patch
    assert changed["updated_at"] > row["updated_at"] and changed["created_at"] == row["created_at"]


def test_delete_answers_204_and_the_row_disappears_from_reads(client):
    row = create(client, "articles", ARTICLE).json
    response = client.delete(f"/articles/{row['id']}", headers=AUTH)
    assert response.status_code == 204 and response.data == b""
    assert "Content-Type" not in response.headers  # no body, so no type (Flask's default said text/html)
    assert client.get(f"/articles/{row['id']}").status_code == 404
    assert client.get("/articles").json["items"] == []
    assert client.delete(f"/articles/{row['id']}", headers=AUTH).status_code == 404


def test_email_of_a_deleted_employee_can_be_used_again(client):
    row = create(client, "employees", EMPLOYEE).json
    client.delete(f"/employees/{row['id']}", headers=AUTH)
    assert create(client, "employees", EMPLOYEE).json["id"] != row["id"]


@pytest.mark.parametrize("method", ["put", "delete"])
def test_synced_rows_are_read_only_through_crud(client, method):
    client.post(
        "/articles/bulk",
        json=[{"source_id": 7, "source_updated_at": "2024-01-01T00:00:00Z", "title": "synced"}],
        headers=AUTH,
    )
    row = client.get("/articles?source_id=7").json["items"][0]
    response = getattr(client, method)(f"/articles/{row['id']}", json={"title": "hijack"}, headers=AUTH)
    assert response.status_code == 409
    assert "Base A" in response.json["detail"]
    assert client.get(f"/articles/{row['id']}").json["title"] == "synced"


def test_answers_are_never_sniffed_and_an_empty_options_answer_has_no_type(client):
    options = client.options("/articles")
    assert options.status_code == 200 and options.data == b"" and "Content-Type" not in options.headers
    for response in (options, client.get("/articles"), client.get("/articles/999999"), client.get("/metrics")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
