"""A SQLite Base A's stamps with fractions of a second: the versions the verification computes in
SQL are the versions the load sends.

Found from outside: SQLite's date functions keep milliseconds, so a stamp written with microseconds
(`.617950`, as Python's `datetime.now()` writes it) was `.618000` in the window's versions and
`.617950` in the rows sent: every verification of its window failed and the watermark never moved.
And stamps in the other forms SQLite keeps as written ('T', a short fraction, none) are compared
as times by every read of a window, not as text (below)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from base_sync.mapping import SourceMapping
from base_sync.mapping.time_zones import zone_rule
from base_sync.source import BaseA, Cursor, source_engine
from base_sync.state import MemoryStateStore
from tests.sync.conftest import synced_rows
from tests.sync.test_sync_steps import SETTINGS, run_once

MAPPING = """
source: {time_zone: Europe/Berlin}
entities:
  employees:
    table: staff
    key: nr
    cursor: [{column: changed}]
    fields:
      first_name: {column: name}
      last_name: {column: name}
      email: {column: mail}
"""
STAMPS = {
    1: "2026-12-07 22:16:37.617950",  # rounds up to the millisecond
    2: "2026-12-07 22:16:37.577296",  # rounds down
    3: "2026-12-31 23:59:59.999999",  # rounds into the next second, minute, day and year
    4: "2026-07-01 12:00:00.5",  # fewer digits than six
    5: "2026-07-01 12:00:00",  # none
    6: "2026-07-01 12:00:00.1234567",  # a seventh digit, which DateTime drops
    7: "2026-07-01 12:00:00.000001",
}


def test_the_window_versions_keep_the_microseconds_the_load_sends(tmp_path):
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    engine = create_engine(f"sqlite:///{tmp_path / 'base_a.sqlite'}")
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE staff (nr INTEGER PRIMARY KEY, name TEXT, mail TEXT, changed DATETIME NOT NULL)")
        )
        for key, stamp in STAMPS.items():
            conn.execute(text("INSERT INTO staff VALUES (:k, 'n', :m, :c)"), {"k": key, "m": f"{key}@x.de", "c": stamp})
    base_a = BaseA(engine, SourceMapping.from_file(tmp_path / "mapping.yaml"))
    sent = {
        record["source_id"]: record["source_updated_at"]
        for chunk in base_a.extract("employees", None, 100)
        for record in chunk
    }
    until = Cursor(datetime(2100, 1, 1, tzinfo=UTC), 0)
    verified = dict(base_a.window_versions("employees", None, until))
    assert verified == sent
    assert sent[1] == datetime(2026, 12, 7, 21, 16, 37, 617950, tzinfo=UTC)
    assert sent[3] == datetime(2026, 12, 31, 22, 59, 59, 999999, tzinfo=UTC)
    # The window's digest, which verify compares with Base B's, is made of those versions too.
    digest = base_a.window_digest("employees", None, until)
    assert digest.count == len(STAMPS)
    engine.dispose()


# Stamps another program wrote: SQLite keeps the text as it came. SQLAlchemy binds a window's bounds
# as `YYYY-MM-DD HH:MM:SS.ffffff`, and a stored text compared with it as text sorted wrongly: 'T' >
# ' ' (a 'T' stamp of the bound's day was after it, whatever its hour) and '12:00:00' < '12:00:00.000000'.
WRITTEN = {
    1: "2024-05-01 21:00:00",  # the newest of the first run: the watermark, written without a fraction
    2: "2024-05-01T10:00:00",  # earlier, by its 'T' separator after every stamp of its day
    3: "2024-05-01T09:00:00.5",
    4: "2024-03-31T01:30:00",  # Berlin's spring-forward night: before the change at 02:00
    5: "2024-05-01 12:00:00.25",
}
LATER = {
    6: "2024-05-01 21:00:00",  # the watermark's second, a higher key: after it
    7: "2024-05-01T21:00:00.5",
    8: "2024-05-02 00:00:00.000001",
}


def _staff(tmp_path, zone: str) -> tuple:
    (tmp_path / "mapping.yaml").write_text(MAPPING.replace("Europe/Berlin", zone))
    engine = source_engine(f"sqlite:///{tmp_path / 'base_a.sqlite'}")
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE staff (nr INTEGER PRIMARY KEY, name TEXT, mail TEXT, changed DATETIME NOT NULL)")
        )
        conn.execute(text("CREATE INDEX staff_changed ON staff (changed, nr)"))
    return engine, BaseA(engine, SourceMapping.from_file(tmp_path / "mapping.yaml"))


def _write(engine, stamps: dict) -> None:
    with engine.begin() as conn:
        for key, stamp in stamps.items():
            conn.execute(text("INSERT INTO staff VALUES (:k, 'n', :m, :c)"), {"k": key, "m": f"{key}@x.de", "c": stamp})


def _agreed(verified: dict) -> int:
    """The rows a verification counted, asserting that both sides' windows agreed at once."""
    assert not any(verified[count] for count in ("repaired", "moved_on", "ahead", "quarantined")), verified
    return verified["rows"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_an_incremental_sync_reads_each_written_stamp_once(tmp_path, base_b, zone):
    """Through the batch's own path (load, deletes, verify, commit): every row is read once, the
    rows of the watermark's second with a higher key are not missed, and the verification counts
    every row Base B holds."""
    engine, base_a = _staff(tmp_path, zone)
    rule = zone_rule(zone)
    api, store = base_b.api(), MemoryStateStore()
    _write(engine, WRITTEN)
    first = run_once("employees", base_a, api, store, SETTINGS)
    assert first["load"]["inserted"] == len(WRITTEN), first
    assert _agreed(first["verify"]) == len(WRITTEN), first

    _write(engine, LATER)
    second = run_once("employees", base_a, api, store, SETTINGS)
    # Only the new rows: on the old code the 'T' rows 2 and 3 came again, and row 6 was missed.
    assert second["load"] == {**second["load"], "inserted": len(LATER), "unchanged": 0}, second
    assert _agreed(second["verify"]) == len(LATER), second
    third = run_once("employees", base_a, api, store, SETTINGS)
    assert not any(third["load"].get(count) for count in ("inserted", "updated", "unchanged")), third

    held = synced_rows(base_b.database_url, "employees")
    assert sorted(held) == sorted({**WRITTEN, **LATER})
    for key, stamp in {**WRITTEN, **LATER}.items():
        assert held[key][0] == rule.to_utc(datetime.fromisoformat(stamp)), key
    # The versions the verification reads are those: the zone's clock change found for a 'T' stamp too.
    until = Cursor(datetime(2100, 1, 1, tzinfo=UTC), 0)
    assert dict(base_a.window_versions("employees", None, until)) == {key: row[0] for key, row in held.items()}
    engine.dispose()


def test_a_row_of_the_watermarks_second_written_without_a_fraction_is_not_missed(tmp_path, base_b):
    """The watermark is bound as '2024-05-01 21:00:00.000000', which the stored '2024-05-01 21:00:00'
    is before as text: a row of that second with a higher key, committed after the run, was never read."""
    engine, base_a = _staff(tmp_path, "UTC")
    api, store = base_b.api(), MemoryStateStore()
    _write(engine, {1: "2024-05-01 21:00:00", 2: "2024-05-01 12:00:00.5"})
    run_once("employees", base_a, api, store, SETTINGS)
    _write(engine, {3: "2024-05-01 21:00:00"})
    second = run_once("employees", base_a, api, store, SETTINGS)
    assert second["load"].get("inserted") == 1, second
    assert sorted(synced_rows(base_b.database_url, "employees")) == [1, 2, 3]
    engine.dispose()
