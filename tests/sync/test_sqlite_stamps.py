"""A SQLite Base A's stamps with fractions of a second: the versions the verification computes in
SQL are the versions the load sends.

Found from outside: SQLite's date functions keep milliseconds, so a stamp written with microseconds
(`.617950`, as Python's `datetime.now()` writes it) was `.618000` in the window's versions and
`.617950` in the rows sent: every verification of its window failed and the watermark never moved."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from base_sync.mapping import SourceMapping
from base_sync.source import BaseA, Cursor

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
            conn.execute(text("INSERT INTO staff VALUES (:k, 'n', :m, :c)"), {"k": key, "m": f"{key}@x", "c": stamp})
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
