"""The reads of a converted cursor on the real MariaDB: which rows have a version, and the window
verification checks, around daylight-saving changes and dirty stamps.

Verification tests the raw wall time first and converts only the rows near a bound (`quick`); these
tests hold that read to the exact one (every row's version converted and compared), so a wrong
offset, sign or bound in the shortcut shows up as a different digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from base_sync.dirty import Quarantined
from base_sync.mapping import SourceMapping
from base_sync.source import BaseA, Cursor, Reach, source_engine
from baseab_contract.version_digest import VersionDigest

MAPPING = """
source: {time_zone: Europe/Berlin}
entities:
  employees:
    table: staff
    key: nr
    cursor: [{column: changed}, {column: made}]
    created: {column: made}
    soft_delete: {column: active, deleted_when: 0}
    fields:
      first_name: {column: name}
      last_name: {column: name}
      email: {column: mail}
"""
DDL = """CREATE TABLE staff (
    nr INT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL, mail VARCHAR(100) NOT NULL,
    changed DATETIME NULL, made DATETIME NULL, active TINYINT NULL,
    KEY ix_changed_made (changed, made)
)"""
# Wall times every 10 minutes through the two nights clocks change in 2024 (Europe/Berlin: back on
# 27 October 03:00 CEST, forward on 31 March 02:00 CET), in either cursor column.
NIGHTS = (datetime(2024, 10, 26, 22, 0), datetime(2024, 3, 30, 22, 0))
DIRTY = {
    # (changed, made): first non-NULL holds no time -> no version, whatever the other column holds
    9001: ("0000-00-00 00:00:00", "2024-05-01 10:00:00"),
    9002: (None, "0000-00-00 00:00:00"),
    9003: (None, None),
    9004: ("2024-02-30 10:00:00", "2024-05-01 10:00:00"),  # impossible date (ALLOW_INVALID_DATES)
    # the first non-NULL column is sane: versioned by it, the zero date in the other one aside
    9005: ("2024-05-02 10:00:00", "0000-00-00 00:00:00"),
}


@pytest.fixture
def staff(make_mariadb_database, tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    engine = source_engine(make_mariadb_database())
    rows, key = [], 0
    for night in NIGHTS:
        for step in range(60):
            key += 1
            wall = (night + timedelta(minutes=10 * step)).isoformat(" ")
            rows.append((key, wall, None) if key % 2 else (key, None, wall))
    rows += [(key, *stamps) for key, stamps in DIRTY.items()]
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"))
        conn.execute(text(DDL))
        for key, changed, made in rows:
            conn.execute(
                text("INSERT INTO staff VALUES (:k, 'n', 'm', :c, :m, :a)"),
                {"k": key, "c": changed, "m": made, "a": None if key % 7 == 0 else 1},
            )
    yield BaseA(engine, SourceMapping.from_file(mapping))
    engine.dispose()


def _exact_digest(base_a: BaseA, since: Cursor | None, until: Cursor) -> VersionDigest:
    digest = VersionDigest()
    for key, version in base_a.window_versions("employees", since, until):
        digest.add(key, version)
    return digest


def test_the_quick_window_check_equals_the_exact_one_at_every_bound(staff):
    versions = dict(staff.window_versions("employees", None, Cursor(datetime(2100, 1, 1, tzinfo=UTC), 0)))
    assert len(versions) == 120 + 1  # every night's row, and 9005 by its sane first column
    instants = sorted(set(versions.values()))
    # Bounds on the rows' own versions (with the key tie-break), just before and after them, and
    # several hours off: every offset the zone had is crossed by some bound.
    bounds = [Cursor(v, k) for k, v in list(versions.items())[::7]]
    bounds += [Cursor(v + timedelta(seconds=s), 0) for v in instants[::11] for s in (-7200, -3601, 1, 3600, 7201)]
    compared = 0
    for since in [None, *bounds[::3]]:
        for until in bounds:
            if since is not None and until <= since:
                continue
            quick = staff.window_digest("employees", since, until)
            exact = _exact_digest(staff, since, until)
            assert (quick.count, quick.hexdigest) == (exact.count, exact.hexdigest), (since, until)
            compared += 1
    assert compared > 500


def test_windows_reaching_the_ends_of_datetime_are_read_and_verified(staff):
    """An "open end" sentinel (9999-12-31 23:59:59, 22:59:59 UTC in Berlin) ends a window: its bounds
    plus the zone's offsets lie past datetime's end, and are held there instead of overflowing.
    DATETIME's first day, less the offset, lies before it: a version too."""
    with staff.engine.begin() as conn:
        conn.execute(text("INSERT INTO staff VALUES (9201, 'n', 'm', '9999-12-31 23:59:59', NULL, 1)"))
        conn.execute(text("INSERT INTO staff VALUES (9202, 'n', 'm', '1000-01-01 00:00:00', NULL, 1)"))
    top, bottom = datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC), datetime(999, 12, 31, 23, 0, tzinfo=UTC)
    end = Cursor(top, 9201)
    versions = dict(staff.window_versions("employees", None, end))
    assert (versions[9201], versions[9202]) == (top, bottom)
    for since in (None, Cursor(bottom - timedelta(seconds=1), 0), Cursor(bottom, 9202), Cursor(top, 0)):
        for until in (end, Cursor(datetime.max.replace(tzinfo=UTC), 0)):
            quick = staff.window_digest("employees", since, until)
            assert quick.as_dict() == _exact_digest(staff, since, until).as_dict(), (since, until)
    assert staff.window_digest("employees", Cursor(top, 0), end).count == 1
    assert [r["source_id"] for chunk in list(staff.extract("employees", Cursor(top, 0), 10)) for r in chunk] == [9201]


def test_a_windowed_read_converts_with_the_zone_rule_from_its_bound_on(staff):
    """After `since` the rule starts at the window's wall-time bound (a short CASE): every version
    read there equals the full rule's, Python's `version_of`, across both nights."""
    view = staff.view("employees")
    rows = {row["nr"]: row for chunk in list(staff.rows_by_keys("employees", list(range(1, 121)), 50)) for row in chunk}
    expected = {key: view.version_of(row) for key, row in rows.items()}
    end = Cursor(datetime(2100, 1, 1, tzinfo=UTC), 0)
    checked = 0
    for since in sorted(set(expected.values()))[::5]:
        bound = Cursor(since - timedelta(seconds=1), 0)
        # the nights' rows (9005, of May, is in every window too: refused for its zero `made`)
        read = {key: v for key, v in staff.window_versions("employees", bound, end) if key <= 120}
        assert read == {key: v for key, v in expected.items() if v >= since}, since
        extracted = [r for chunk in list(staff.extract("employees", bound, 50)) for r in chunk]
        assert {r["source_id"]: r["source_updated_at"] for r in extracted if isinstance(r, dict)} == {
            key: v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for key, v in read.items()
        }
        checked += len(read)
    assert checked > 600


def test_a_row_has_a_version_exactly_when_its_first_non_null_stamp_is_a_time(staff):
    unversioned = [r for chunk in list(staff.unversioned("employees", 100)) for r in chunk]
    assert all(isinstance(r, Quarantined) and r.version is None for r in unversioned)
    assert {r.source_id for r in unversioned} == {9001, 9002, 9003}  # 9004 (2024-02-30) is unreal: read apart
    assert unversioned[2].reasons == [
        {"field": "changed", "message": "every cursor column is NULL: the row has no version"}
    ]
    extracted = {
        (r.source_id if isinstance(r, Quarantined) else r["source_id"]): r
        for chunk in list(staff.extract("employees", None, 100))
        for r in chunk
    }
    live = set(range(1, 121)) | {9005}  # a NULL `active` (every 7th) is no deletion
    assert set(extracted) == live
    view = staff.view("employees")
    ((row_9005,),) = list(staff.rows_by_keys("employees", [9005], 10))
    assert view.version_of(row_9005) == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)  # CEST, from `changed`


def test_a_stamp_with_a_zero_part_written_after_the_watermark_is_refused_by_the_read_of_unreal_stamps(staff):
    """A zero day or month (no NO_ZERO_IN_DATE in the sql_mode) sorts among real times: the raw
    range of a window after the watermark holds '2026-12-00' but its version is NULL, and
    '2026-00-05' sorts before the year. Neither may vanish: the periodic read of unreal stamps has them."""
    with staff.engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(text("INSERT INTO staff VALUES (9101, 'n', 'm', '2026-12-00 10:00:00', NULL, 1)"))
        conn.execute(text("INSERT INTO staff VALUES (9102, 'n', 'm', NULL, '2026-00-05 11:00:00', 1)"))
    watermark = Cursor(datetime(2026, 6, 1, tzinfo=UTC), 0)
    assert not {9101, 9102} & {r.source_id for chunk in staff.unversioned("employees", 100) for r in chunk}
    for _ in range(2):  # a later comparison reads them again: they are in no window
        refused = {r.source_id: r for chunk in list(staff.unversioned("employees", 100, unreal=True)) for r in chunk}
        assert set(refused) == {9101, 9102, 9001, 9002, 9003, 9004}
        assert refused[9101].version is None and refused[9101].reasons == [
            {
                "field": "changed",
                "message": "changed is not a valid timestamp: 2026-12-00 10:00:00: the row has no usable version",
            }
        ]
        assert refused[9102].reasons[0]["field"] == "made" and "2026-00-05" in refused[9102].reasons[0]["message"]
        windowed = [r for chunk in list(staff.extract("employees", watermark, 100)) for r in chunk]
        assert windowed == []  # read only by the read of the unreal stamps


def test_the_pushed_down_read_and_python_agree_on_every_stamp(staff):
    """Created and version on both paths: a NULL creation stamp takes the version, a row never
    updated has its creation stamp as both (the server converts it once), dirty stamps are refused alike."""
    view = staff.view("employees")
    pushed = [r for chunk in list(staff.unversioned("employees", 50, unreal=True)) for r in chunk]
    pushed += [r for chunk in list(staff.extract("employees", None, 50)) for r in chunk]
    by_key = {(r.source_id if isinstance(r, Quarantined) else r["source_id"]): r for r in pushed}
    rows = {row["nr"]: row for chunk in list(staff.rows_by_keys("employees", sorted(by_key), 50)) for row in chunk}
    invalid = {9001: {"changed"}, 9002: {"made"}, 9004: {"changed"}, 9005: {"made"}}
    for key, record in by_key.items():
        python = view.apply(rows[key], frozenset(invalid.get(key, ())))
        if isinstance(record, Quarantined):
            assert isinstance(python, Quarantined), key
            assert record.version == python.version, key
            # The driver reads 2024-02-30 as None: Python has no text for it, the server has.
            same = (lambda reasons: [r["field"] for r in reasons]) if key == 9004 else (lambda reasons: reasons)
            assert same(record.reasons) == same(python.reasons), key
            continue
        assert not isinstance(python, Quarantined), key
        stamps = [python[name].strftime("%Y-%m-%dT%H:%M:%S.%fZ") for name in ("source_updated_at", "created_at")]
        assert [record["source_updated_at"], record["created_at"]] == stamps, key
    assert by_key[1]["created_at"] == by_key[1]["source_updated_at"]  # `made` NULL: the version stands in


def test_a_full_read_in_key_order_reaches_the_highest_version(staff):
    reach = Reach()
    chunks = list(staff.extract("employees", None, 7))  # list(): a failed assert leaves no read open
    keys = [r.source_id if isinstance(r, Quarantined) else r["source_id"] for chunk in chunks for r in chunk]
    assert keys == sorted(keys)  # a first load scans the key, no sort of the table
    for chunk in chunks:
        reach.add(chunk)
    top = max(
        staff.window_versions("employees", None, Cursor(datetime(2100, 1, 1, tzinfo=UTC), 0)),
        key=lambda kv: (kv[1], kv[0]),
    )
    assert reach.cursor == Cursor(top[1], top[0])


def test_the_highest_position_of_a_chunk_counts_quarantined_rows_with_a_version():
    records = [
        {"source_id": 5, "source_updated_at": "2024-05-01T10:00:00.000000Z"},
        {"source_id": 2, "source_updated_at": "2024-05-01T10:00:00.000000Z"},
        Quarantined(9, None, {}, []),
        {"source_id": 3, "source_updated_at": "2023-12-31T23:59:59.999999Z"},
    ]
    assert Cursor.highest_of(records) == Cursor(datetime(2024, 5, 1, 10, tzinfo=UTC), 5)
    records.append(Quarantined(1, "2024-05-01T10:00:00.000001Z", {}, []))
    assert Cursor.highest_of(records) == Cursor(datetime(2024, 5, 1, 10, 0, 0, 1, tzinfo=UTC), 1)
    assert Cursor.highest_of([Quarantined(9, None, {}, [])]) is None


def test_a_timestamp_first_in_the_cursor_is_never_read_as_an_unreal_stamp(make_mariadb_database, tmp_path):
    """Only a DATETIME can hold a zero part: a row whose first cursor column is a TIMESTAMP holding a
    time is versioned by it, not refused (the read of unreal stamps took every such row)."""
    engine = source_engine(make_mariadb_database())
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE beitrag (nr INT PRIMARY KEY, titel VARCHAR(50) NOT NULL, "
                "geaendert TIMESTAMP(6) NULL, angelegt DATETIME NOT NULL)"
            )
        )
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(
            text(
                "INSERT INTO beitrag VALUES (1, 'ts', '2026-05-01 10:00:00', '2026-01-01 10:00:00'),"
                " (2, 'no ts', NULL, '2026-02-01 10:00:00'), (3, 'no ts, zero day', NULL, '2026-02-00 10:00:00')"
            )
        )
    (tmp_path / "mapping.yaml").write_text(
        "source: {time_zone: Europe/Berlin}\nentities:\n  articles:\n    table: beitrag\n    key: nr\n"
        "    cursor: [{column: geaendert, type: timestamp}, {column: angelegt, type: datetime}]\n"
        "    fields:\n      title: {column: titel}\n"
    )
    base_a = BaseA(engine, SourceMapping.from_file(tmp_path / "mapping.yaml"))
    refused = [r.source_id for chunk in base_a.unversioned("articles", 100, unreal=True) for r in chunk]
    assert refused == [3]
    assert [r["source_id"] for chunk in base_a.extract("articles", None, 100) for r in chunk] == [1, 2]
    engine.dispose()


def test_an_open_end_sentinel_west_of_utc_is_versioned_at_the_end_of_time(make_mariadb_database, tmp_path):
    """9999-12-31 23:59:59 in New York lies past datetime's end in UTC: the row is versioned at that
    end (not quarantined for "no version", which the NULL of the overflowed conversion looked like),
    the same on the extract, the window reads and the checksum."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.replace("Europe/Berlin", "America/New_York"))
    engine = source_engine(make_mariadb_database())
    with engine.begin() as conn:
        conn.execute(text(DDL))
        conn.execute(text("INSERT INTO staff VALUES (1, 'n', 'm', '2024-06-01 12:00:00', NULL, 1)"))
        conn.execute(text("INSERT INTO staff VALUES (2, 'n', 'm', '9999-12-31 23:59:59', NULL, 1)"))
        conn.execute(text("INSERT INTO staff VALUES (3, 'n', 'm', NULL, '9999-12-31 20:00:00', 1)"))
    base_a = BaseA(engine, SourceMapping.from_file(mapping))
    end = datetime.max.replace(tzinfo=UTC)
    records = [r for chunk in base_a.extract("employees", None, 10) for r in chunk]
    assert [(r["source_id"], r["source_updated_at"]) for r in records] == [
        (1, "2024-06-01T16:00:00.000000Z"),
        (2, "9999-12-31T23:59:59.999999Z"),
        (3, "9999-12-31T23:59:59.999999Z"),
    ]
    assert dict(base_a.versions_between("employees", 1, 3)) == {1: datetime(2024, 6, 1, 16, tzinfo=UTC), 2: end, 3: end}
    for since in (None, Cursor(datetime(2025, 1, 1, tzinfo=UTC), 0), Cursor(end, 2)):
        until = Cursor(end, 3)
        assert (
            base_a.window_digest("employees", since, until).as_dict() == _exact_digest(base_a, since, until).as_dict()
        )
    assert [k for k, _ in base_a.window_versions("employees", Cursor(end, 2), Cursor(end, 3))] == [3]
    engine.dispose()
