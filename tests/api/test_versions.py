"""Versions must lie in a range around the server's clock; rows stored with a version outside
it (before the range was enforced) are repaired by the next valid write of their key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api_service import create_app
from api_service.settings import ApiSettings
from tests.api.conftest import AUTH, make_settings, raw_rows

FAR_FUTURE = "7945-03-01T00:00:00Z"
FAR_PAST = "0021-03-01T00:00:00Z"


def _article(source_id: int, version: str, title: str = "t") -> dict:
    return {"source_id": source_id, "source_updated_at": version, "title": title}


def test_versions_out_of_range_are_rejected_naming_index_field_value_and_range(client, db):
    records = [_article(1, "2024-01-01T00:00:00Z"), _article(2, FAR_FUTURE), _article(3, FAR_PAST)]
    result = client.post("/articles/bulk", json=records, headers=AUTH).json
    assert (result["inserted"], result["rejected"]) == (1, 2)
    by_index = {error["index"]: error for error in result["errors"]}
    assert set(by_index) == {1, 2}
    for index, year in ((1, "7945"), (2, "0021")):
        (reason,) = by_index[index]["reasons"]
        assert reason["field"] == "source_updated_at"
        assert year in reason["message"] and "1970-01-01" in reason["message"]
    assert [row["source_id"] for row in raw_rows(db, "articles")] == [1]
    deletes = [{"source_id": 1, "source_updated_at": FAR_FUTURE}]  # a delete's version too
    result = client.post("/articles/bulk/delete", json=deletes, headers=AUTH).json
    assert (result["deleted"], result["rejected"]) == (0, 1)


def test_the_tolerance_ahead_of_the_clock_is_a_setting(database_url, monkeypatch):
    monkeypatch.setenv("API_VERSION_MAX_FUTURE_SECONDS", "60")
    settings = ApiSettings(database_url=database_url, tokens=("t",))
    assert settings.version_max_future_seconds == 60
    client = create_app(settings).test_client()
    now = datetime.now(UTC)
    soon, later = (now + timedelta(seconds=20)).isoformat(), (now + timedelta(seconds=300)).isoformat()
    records = [_article(901, soon), _article(902, later)]
    result = client.post("/articles/bulk", json=records, headers={"Authorization": "Bearer t"}).json
    assert (result["inserted"], result["rejected"]) == (1, 1)
    assert result["errors"][0]["index"] == 1


@pytest.fixture
def lax_client(database_url):
    """An API that admits any version, as the API did before the range was enforced: a tolerance of
    6,000 years, past what API_VERSION_MAX_FUTURE_SECONDS takes (a year), so set past the settings' check."""
    settings = make_settings(database_url, version_floor=datetime(1, 1, 1, tzinfo=UTC))
    settings = settings.model_copy(update={"version_max_future_seconds": 2 * 10**11})
    app = create_app(settings)
    yield app.test_client()
    app.extensions["base_b_engine"].dispose()


def test_a_full_refresh_rewrite_repairs_rows_with_versions_out_of_range(client, lax_client, db):
    stored = [_article(11, FAR_FUTURE, "wrong"), _article(12, FAR_PAST, "wrong"), _article(13, FAR_FUTURE, "gone")]
    assert lax_client.post("/articles/bulk", json=stored, headers=AUTH).json["inserted"] == 3
    gone = lax_client.post(
        "/articles/bulk/delete", json=[{"source_id": 13, "source_updated_at": FAR_FUTURE}], headers=AUTH
    )
    assert gone.json["deleted"] == 1, gone.json

    # What Base A really holds, sent again as a full_refresh does.
    rewrite = [_article(k, "2024-05-01T00:00:00Z", "right") for k in (11, 12, 13)]
    result = client.post("/articles/bulk", json=rewrite, headers=AUTH).json
    assert (result["updated"], result["stale"], result["rejected"]) == (3, 0, 0), result
    rows = {row["source_id"]: row for row in raw_rows(db, "articles")}
    for key in (11, 12, 13):
        assert rows[key]["title"] == "right" and rows[key]["deleted_at"] is None
        assert str(rows[key]["source_updated_at"]).startswith("2024-05-01")

    # A delete with a valid version repairs a far-future row too.
    assert lax_client.post("/articles/bulk", json=[_article(14, FAR_FUTURE)], headers=AUTH).json["inserted"] == 1
    result = client.post(
        "/articles/bulk/delete", json=[{"source_id": 14, "source_updated_at": "2024-05-01T00:00:00Z"}], headers=AUTH
    ).json
    assert result["deleted"] == 1, result
