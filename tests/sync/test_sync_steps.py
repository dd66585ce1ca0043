"""The sync steps, without Airflow: Base A on MariaDB, the API as a process, Base B on PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import create_engine, event, text

from api_service.schemas import SCHEMAS
from base_sync import shared_keys, sync
from base_sync.delete_guard import DELETE_LOG, MassDeleteBlocked
from base_sync.demo import generate
from base_sync.dirty import Quarantined
from base_sync.errors import TerminalError
from base_sync.mapping import IDENTITY, SourceMapping, identity_entity, parse_mapping
from base_sync.records import encode, to_record
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, Cursor, source_engine
from base_sync.source_schema import create_schema, install_delete_log
from base_sync.state import MemoryStateStore, WatermarkAhead
from baseab_contract.entities import ENTITIES
from tests.sync.conftest import assert_in_sync, source_rows, synced_rows

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=500, bucket_size=1000)


def run_once(entity, base_a, api, store, settings=SETTINGS, full_refresh=False) -> dict:
    """One batch run: load, deletes, verify, commit, as the DAG orders them."""
    report = sync.load(entity, base_a, api, store, settings, full_refresh)
    deleted = sync.propagate_deletes(entity, base_a, api, store, settings, compare_keys=full_refresh)
    verified = sync.verify(entity, base_a, api, report, settings)
    sync.commit(entity, store, report, {"deletes": deleted.to_json()})
    return {"load": dict(report.counts), "deletes": deleted.to_json(), "verify": verified.to_json()}


def test_a_record_keeps_exact_values():
    row = {
        "id": 7,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "department": None,
        "position": "Engineer",
        "salary": Decimal("1234567890.12"),
        "hired_at": date(2020, 2, 29),
        "created_at": datetime(2020, 1, 1, 12, 0, 0, 1),
        "updated_at": datetime(2026, 11, 23, 10, 0, 0, 123456),
    }
    (decoded,) = orjson.loads(encode([to_record("employees", row)]))
    assert decoded["salary"] == "1234567890.12"  # never through a float
    assert decoded["hired_at"] == "2020-02-29"
    assert decoded["source_id"] == 7
    assert decoded["source_updated_at"] == "2026-11-23T10:00:00.123456+00:00"
    assert decoded["created_at"] == "2020-01-01T12:00:00.000001+00:00"


def test_mysql_renders_the_same_records_as_python(base_a, base_a_engine):
    """The extract reads MySQL's text of each value; the repairs convert rows in Python. The API
    must read both as the same record, edge values included."""
    edges = [
        {"salary": None, "hired_at": None, "department": None, "created_at": "2020-01-01 00:00:00"},
        {"salary": "9999999999.99", "hired_at": "2020-02-29", "created_at": "1970-01-01 00:00:01.000001"},
        {"salary": "0.00", "hired_at": "1900-01-01", "created_at": "2038-01-19 03:14:07.999999"},
    ]
    table = base_a.table("employees")
    with base_a_engine.begin() as conn:
        for index, edge in enumerate(edges, start=1):
            values = {"first_name": "Zoë", "last_name": 'O\'Brien \\ "q"', "email": f"e{index}@example.com"}
            conn.execute(table.insert().values({"department": "Ops", "position": None, **values, **edge}))
    (rendered,) = base_a.extract("employees", None, 100)
    assert not [r for r in rendered if isinstance(r, Quarantined)]
    (rows,) = base_a.rows_by_keys("employees", [1, 2, 3], 100)
    converted = [to_record("employees", row) for row in rows]
    mapped = [base_a.view("employees").apply(row) for row in rows]  # the events path's way
    fast = SCHEMAS["employees"].fast  # what the API reads a bulk body into
    as_read = fast.decode(encode(rendered))
    assert as_read is not None and as_read == fast.decode(encode(converted))
    assert as_read == fast.decode(encode(mapped))
    assert rendered[1]["salary"] == "9999999999.99" and rendered[1]["hired_at"] == "2020-02-29"


def test_initial_then_incremental_sync_moves_only_the_changes(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 3000, seed_value=1)

    first = run_once("employees", base_a, api, store)
    assert first["load"]["extracted"] == first["load"]["inserted"] == 3000
    assert first["verify"]["rows"] == 3000
    assert first["deletes"]["buckets"] == 4  # the first run compares every key
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 3000

    nothing = run_once("employees", base_a, api, store)
    assert nothing["load"].get("extracted", 0) == 0

    changes = generate.churn(base_a_engine, "employees", updates=120, inserts=30, deletes=15, seed_value=2)
    second = run_once("employees", base_a, api, store)
    assert second["load"]["extracted"] == changes["updated"] + changes["inserted"] == 150
    assert second["load"]["updated"] == 120 and second["load"]["inserted"] == 30
    assert second["deletes"]["deleted"] == second["deletes"]["from_log"] == 15
    assert "buckets" not in second["deletes"], "the deletes came from the log: no key comparison"
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 3015


def test_deletes_the_log_misses_are_found_by_the_periodic_key_comparison(base_a, base_a_engine, base_b):
    """Rows deleted while the trigger was away (or before it existed) leave no log entry."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 500, seed_value=30)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER articles_log_delete"))
        conn.execute(text("DELETE FROM articles WHERE id IN (7, 300)"))
    unlogged = run_once("articles", base_a, api, store)  # no trigger: every run compares keys
    assert unlogged["deletes"]["deleted"] == 2 and unlogged["deletes"]["suspect_buckets"] == 1
    assert unlogged["deletes"]["log_position"] is None

    create_schema(base_a_engine)  # puts the trigger back; the next run compares keys once more
    assert run_once("articles", base_a, api, store)["deletes"]["buckets"] == 1
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id = 8"))
        conn.execute(text("DELETE FROM delete_log"))  # as if the entry had been lost
    due_tomorrow = run_once("articles", base_a, api, store)
    assert due_tomorrow["deletes"]["deleted"] == 0 and "buckets" not in due_tomorrow["deletes"]
    every_run = SETTINGS.model_copy(update={"key_check_hours": 0})
    due = run_once("articles", base_a, api, store, every_run)
    assert due["deletes"]["deleted"] == 1 and due["deletes"]["suspect_buckets"] == 1
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 497


def test_late_commits_behind_the_window_are_re_sent_by_the_periodic_comparison_of_versions(
    base_a, base_a_engine, base_b
):
    """A long transaction commits rows stamped before the watermark: no window reads them again.
    The periodic key comparison compares the versions too and re-sends what Base B lacks or holds
    older; a live row whose stamp went back (Base B newer) is written as Base A holds it, replacing
    Base B's version; a tombstone newer than a row put back cannot be taken back and is counted."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 500, seed_value=31)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE articles SET updated_at = NOW(6) - INTERVAL 3 HOUR WHERE id IN (10, 20)"))
    first = run_once("articles", base_a, api, store)
    assert first["deletes"]["buckets"] == 1 and "resent_behind" not in first["deletes"]  # the window verified all
    with base_a_engine.begin() as conn:  # committed now, stamped an hour ago: behind the watermark
        conn.execute(text("UPDATE articles SET title = 'late', updated_at = NOW(6) - INTERVAL 1 HOUR WHERE id = 10"))
        conn.execute(
            text(
                "INSERT INTO articles (id, title, content, author, created_at, updated_at) "
                "SELECT 9999, 'late insert', NULL, NULL, NOW(6) - INTERVAL 1 HOUR, NOW(6) - INTERVAL 1 HOUR"
            )
        )
        conn.execute(text("UPDATE articles SET updated_at = updated_at - INTERVAL 1 DAY WHERE id = 20"))
        conn.execute(text("DELETE FROM articles WHERE id = 30"))
    unseen = run_once("articles", base_a, api, store)
    assert unseen["load"] == {} or not any(unseen["load"].values())
    assert unseen["deletes"]["deleted"] == 1 and 9999 not in synced_rows(base_b.database_url, "articles")
    with base_a_engine.begin() as conn:  # put back with a stamp older than its delete: the tombstone wins
        conn.execute(
            text(
                "INSERT INTO articles (id, title, content, author, created_at, updated_at) "
                "SELECT 30, 'restored', NULL, NULL, NOW(6) - INTERVAL 2 DAY, NOW(6) - INTERVAL 2 DAY"
            )
        )
    every_run = SETTINGS.model_copy(update={"key_check_hours": 0})
    due = run_once("articles", base_a, api, store, every_run)
    deletes = due["deletes"]
    assert (deletes["resent_behind"], deletes["replaced_ahead"], deletes["ahead"]) == (2, 1, 1)  # 10, 9999; 20; 30
    ours, theirs = source_rows(base_a_engine, "articles"), synced_rows(base_b.database_url, "articles")
    assert theirs[10] == ours[10] and theirs[9999] == ours[9999] and theirs[10][1] == "late"
    assert theirs[20] == ours[20], "Base A's state replaces the version Base B held"
    assert [key for key in ours if key != 30 and ours[key] != theirs.get(key)] == []
    again = run_once("articles", base_a, api, store, every_run)["deletes"]
    assert (again.get("resent_behind", 0), again.get("replaced_ahead", 0), again["ahead"]) == (0, 0, 1)


BERLIN_ARTICLES = """
source: {time_zone: Europe/Berlin}
entities:
  articles:
    table: beitrag
    key: nr
    cursor: {column: geaendert_am, type: datetime}
    fields:
      title: {column: titel}
"""


def test_rows_written_in_the_second_pass_of_a_repeated_hour_or_with_a_zero_day_are_not_lost(
    make_mariadb_database, base_b, tmp_path
):
    """Clocks go back at 03:00 CEST: wall times 02:00-03:00 come twice, and a row of the second pass
    is read as the first (an hour earlier), behind a watermark set in the first pass. While the
    watermark lies in that hour (or its second pass), a run reads from the hour's start. A stamp
    with a zero day sorts among real times: the comparison of every key (every run without a delete
    log) finds the key Base B lacks and refuses it with its reason."""
    (tmp_path / "mapping.yaml").write_text(BERLIN_ARTICLES)
    engine = source_engine(make_mariadb_database())
    base_a = BaseA(engine, SourceMapping.from_file(tmp_path / "mapping.yaml"))
    api, store = base_b.api(), MemoryStateStore()
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE beitrag (nr INT UNSIGNED PRIMARY KEY, titel VARCHAR(255) NOT NULL, "
                "geaendert_am DATETIME NOT NULL, KEY ix (geaendert_am))"
            )
        )
        conn.execute(text("INSERT INTO beitrag VALUES (1, 'at 02:30 CEST', '2026-10-25 02:30:00')"))
        conn.execute(text("INSERT INTO beitrag VALUES (2, 'at 02:45 CEST', '2026-10-25 02:45:00')"))
    run_once("articles", base_a, api, store)
    assert store.get("articles").updated_at == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
    with engine.begin() as conn:  # the second pass, CET
        conn.execute(text("INSERT INTO beitrag VALUES (3, 'at 02:10 CET', '2026-10-25 02:10:00')"))
    second = run_once("articles", base_a, api, store)
    assert second["load"]["inserted"] == 1 and 3 in synced_rows(base_b.database_url, "articles")
    with engine.begin() as conn:  # past the second pass: the usual look-back again
        conn.execute(text("INSERT INTO beitrag VALUES (4, 'at 03:05 CET', '2026-10-25 03:05:00')"))
    run_once("articles", base_a, api, store)
    assert store.get("articles").updated_at == datetime(2026, 10, 25, 2, 5, tzinfo=UTC)
    assert sync._looking_back(store.get("articles"), SETTINGS, base_a.view("articles")) == store.get("articles")

    with engine.begin() as conn:  # a zero day the sql_mode lets in: no window or index range reads it
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(text("INSERT INTO beitrag VALUES (5, 'zero day', '2026-12-00 10:00:00')"))
    compared = run_once("articles", base_a, api, store)
    assert compared["load"].get("quarantined", 0) == 0
    assert compared["deletes"]["resent_behind"] == 1, "no delete log: every run compares keys, Base B lacks it"
    (refused,) = api.open_rejections("articles")
    assert refused["source_id"] == 5 and "2026-12-00 10:00:00" in refused["reasons"][0]["message"]
    engine.dispose()


BERLIN_ARTICLES_SOFT_DELETED = """
source: {time_zone: Europe/Berlin}
entities:
  articles:
    table: beitrag
    key: nr
    cursor: {column: geaendert_am, type: datetime}
    soft_delete: {column: geloescht, deleted_when: 1}
    fields:
      title: {column: titel}
"""


def _berlin_articles_with_a_delete_log(url: str, tmp_path) -> tuple:
    """A legacy table of local (Europe/Berlin) DATETIME stamps and a soft-delete flag, with the delete
    log installed (so no run compares every key unless due): its engine and Base A."""
    (tmp_path / "mapping.yaml").write_text(BERLIN_ARTICLES_SOFT_DELETED)
    engine = source_engine(url)
    mapping = SourceMapping.from_file(tmp_path / "mapping.yaml")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE beitrag (nr INT UNSIGNED PRIMARY KEY, titel VARCHAR(255) NOT NULL, "
                "geaendert_am DATETIME NOT NULL, geloescht TINYINT NOT NULL DEFAULT 0, KEY ix (geaendert_am))"
            )
        )
    install_delete_log(engine, mapping, ["articles"])
    return engine, BaseA(engine, mapping)


def test_a_late_commit_stamped_at_the_end_of_a_repeated_hour_is_caught_by_the_look_back(
    make_mariadb_database, base_b, tmp_path
):
    """The watermark has passed the second pass of the repeated hour (03:00:05 CET, 02:00:05Z); a
    row stamped 02:59:30 CET commits 35 s late. Its wall time is read as the summer-time instant
    00:59:30Z, an hour behind the look-back's plain reach (01:59:05Z): the look-back reaches into
    the second pass, so the next run reads from the hour's start and takes the row, and a row
    soft-deleted as late (the rows that left the mapping's scope are read from the same start)."""
    engine, base_a = _berlin_articles_with_a_delete_log(make_mariadb_database(), tmp_path)
    api, store = base_b.api(), MemoryStateStore()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (1, 'CEST', '2026-10-25 02:30:00')"))
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (2, 'CET', '2026-10-25 03:00:05')"))
    one_minute = SETTINGS.model_copy(update={"lookback_seconds": 60})
    run_once("articles", base_a, api, store, one_minute)
    assert store.get("articles").updated_at == datetime(2026, 10, 25, 2, 0, 5, tzinfo=UTC)
    with engine.begin() as conn:  # committed at about 03:00:05 CET, 35 s after their stamps
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (3, 'late', '2026-10-25 02:59:30')"))
        conn.execute(text("UPDATE beitrag SET geloescht = 1, geaendert_am = '2026-10-25 02:59:40' WHERE nr = 1"))
    late = run_once("articles", base_a, api, store, one_minute)
    assert "buckets" not in late["deletes"], "the look-back found them, not the key comparison"
    assert late["load"]["inserted"] == 1 and late["deletes"]["left_scope"] == 1
    rows = synced_rows(base_b.database_url, "articles")
    assert sorted(rows) == [2, 3] and rows[3][0] == datetime(2026, 10, 25, 0, 59, 30, tzinfo=UTC)
    engine.dispose()


def test_a_key_changed_in_base_a_moves_in_base_b_within_one_run(base_a, base_a_engine, base_b):
    """An UPDATE of the key is a delete of the old key for Base B: the trigger logs it, and the new
    row, rejected by the load while the old one still held its email, is sent again after the delete."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 200, seed_value=33)
    run_once("employees", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE employees SET id = 5000 WHERE id = 5"))
        conn.execute(text("UPDATE employees SET last_name = 'Same key' WHERE id = 6"))  # no log entry
    moved = run_once("employees", base_a, api, store)
    assert moved["load"]["rejected"] == 1, "the load sends 5000 while 5 still holds its email"
    assert moved["deletes"]["from_log"] == moved["deletes"]["deleted"] == 1
    assert moved["deletes"]["resent_unique"] == 1
    assert not list(api.open_rejections("employees"))
    rows = synced_rows(base_b.database_url, "employees")
    assert 5 not in rows and 5000 in rows
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 200


def test_log_entries_read_again_change_nothing_and_old_ones_are_purged(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 100, seed_value=31)
    run_once("employees", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM employees WHERE id IN (1, 2)"))
        conn.execute(text("UPDATE delete_log SET deleted_at = deleted_at - INTERVAL 2 HOUR"))
        conn.execute(text("DELETE FROM employees WHERE id = 3"))
    lookback = SETTINGS.model_copy(update={"lookback_seconds": 3 * 3600, "delete_log_retention_hours": 1})
    first = run_once("employees", base_a, api, store, lookback)
    assert first["deletes"]["from_log"] == first["deletes"]["deleted"] == 3
    again = run_once("employees", base_a, api, store, lookback)  # the look-back reads entry 3 again
    assert again["deletes"]["from_log"] == 1 and again["deletes"]["deleted"] == again["deletes"]["not_applied"] == 0
    with base_a_engine.connect() as conn:  # entries 1 and 2 were over an hour behind the position
        assert conn.execute(text("SELECT id FROM delete_log")).scalars().all() == [3]
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 97


def test_sending_a_window_again_changes_nothing(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 800, seed_value=3)
    run_once("articles", base_a, api, store)
    again = run_once("articles", base_a, api, store, full_refresh=True)
    assert again["load"]["extracted"] == again["load"]["unchanged"] == 800
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 800


def test_a_load_killed_half_way_is_finished_by_the_next_run(base_a, base_a_engine, base_b, monkeypatch):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 2600, seed_value=4)
    real_extract = base_a.extract

    def dies_after_two_chunks(entity, since, chunk_size):
        for number, chunk in enumerate(real_extract(entity, since, chunk_size)):
            if number == 2:
                raise ConnectionError("worker killed")
            yield chunk

    monkeypatch.setattr(base_a, "extract", dies_after_two_chunks)
    with pytest.raises(ConnectionError):
        sync.load("employees", base_a, api, store, SETTINGS)
    assert store.get("employees") is None  # no watermark without a verified load
    assert 0 < len(synced_rows(base_b.database_url, "employees")) < 2600
    monkeypatch.undo()

    resumed = run_once("employees", base_a, api, store)
    assert resumed["load"]["inserted"] + resumed["load"]["unchanged"] == 2600
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 2600


def test_verify_resends_a_row_base_b_lost(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 1200, seed_value=5)
    report = sync.load("employees", base_a, api, store, SETTINGS)
    with base_b_engine(base_b) as conn:
        conn.execute(text("DELETE FROM employees WHERE source_id IN (5, 600)"))
    verified = sync.verify("employees", base_a, api, report, SETTINGS)
    assert verified.repaired == 2
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 1200


def test_a_row_changed_after_the_extract_does_not_fail_verification(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 300, seed_value=6)
    report = sync.load("articles", base_a, api, store, SETTINGS)
    generate.churn(base_a_engine, "articles", updates=3, seed_value=7)  # they leave the loaded window
    verified = sync.verify("articles", base_a, api, report, SETTINGS)
    assert verified.moved_on == 3 and verified.repaired == 0
    sync.commit("articles", store, report, {"verify": verified.to_json()})
    run_once("articles", base_a, api, store)  # the next run takes them
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 300


def test_rows_changed_while_verify_compares_again_do_not_fail_it(base_a, base_a_engine, base_b):
    """Outside probe: full refreshes of a Base A under writes, with the events path applying them,
    failed verification for good ("14 rows still differ after a re-send"): the comparison after
    the re-send reads Base A, then Base B a moment later, and a row changed in between is in Base
    A's window and out of Base B's. Here article 9 changes (in both bases, as the events path would
    apply it) once that comparison's Base A read has begun, and Base B loses article 11 then; article
    5 was lost before. The next round re-sends what differed for the first time: 11 comes back."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 300, seed_value=16)
    report = sync.load("articles", base_a, api, store, SETTINGS)
    with base_b_engine(base_b) as conn:
        conn.execute(text("DELETE FROM articles WHERE source_id = 5"))
    compare, calls = api.window_versions, []

    def changed_meanwhile():
        with base_a_engine.begin() as conn:
            conn.execute(text("UPDATE articles SET title = 'moved on', updated_at = UTC_TIMESTAMP(6) WHERE id = 9"))
        for chunk in base_a.records_by_keys("articles", [9], 10):
            api.bulk_upsert("articles", encode(chunk))
        with base_b_engine(base_b) as conn:
            conn.execute(text("DELETE FROM articles WHERE source_id = 11"))

    def window_versions(*args):
        calls.append(args)
        if len(calls) == 2:  # the comparison after the re-send, Base A's read under way
            changed_meanwhile()
        yield from compare(*args)

    api.window_versions = window_versions
    verified = sync.verify("articles", base_a, api, report, SETTINGS)
    assert len(calls) == 3 and verified.repaired == 1 and verified.ahead == 0
    assert 11 in synced_rows(base_b.database_url, "articles")  # mended by verify itself (review)
    sync.commit("articles", store, report, {"verify": verified.to_json()})
    run_once("articles", base_a, api, store)
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 300
    assert synced_rows(base_b.database_url, "articles")[9][1] == "moved on"


def test_a_row_base_b_keeps_losing_fails_verify_after_each_re_send(base_a, base_a_engine, base_b):
    """A write Base B drops every time (here a trigger of its owners) is no race: re-sent and
    compared REPAIR_ROUNDS times, it fails the step, naming the key."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 50, seed_value=17)
    report = sync.load("articles", base_a, api, store, SETTINGS)
    with base_b_engine(base_b) as conn:
        conn.execute(text("DELETE FROM articles WHERE source_id = 7"))
        conn.execute(
            text(
                "CREATE FUNCTION drop_seven() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF NEW.source_id = 7 THEN RETURN NULL; END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER drop_seven BEFORE INSERT ON articles FOR EACH ROW EXECUTE FUNCTION drop_seven()")
        )
    try:
        with pytest.raises(
            sync.VerificationError, match=rf"1 rows still differ after {sync.REPAIR_ROUNDS} re-sends, e.g. \[7\]"
        ):
            sync.verify("articles", base_a, api, report, SETTINGS)
    finally:  # Base B is shared by this module's tests
        with base_b_engine(base_b) as conn:
            conn.execute(text("DROP TRIGGER drop_seven ON articles"))
            conn.execute(text("DROP FUNCTION drop_seven"))


def test_an_older_write_than_base_b_holds_is_stale(base_a, base_a_engine, base_b):
    """The events path delivered a newer version first; the batch's older copy must not win."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 50, seed_value=8)
    run_once("employees", base_a, api, store)
    newer = datetime.now(UTC) + timedelta(hours=1)
    api.bulk_upsert(
        "employees",
        orjson.dumps(
            [
                {
                    "source_id": 10,
                    "source_updated_at": newer.isoformat(),
                    "first_name": "Newer",
                    "last_name": "Version",
                    "email": "newer.version@example.com",
                }
            ]
        ),
    )
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE employees SET first_name = 'Older' WHERE id = 10"))
    result = run_once("employees", base_a, api, store)
    assert result["load"]["stale"] == 1
    assert result["verify"]["ahead"] == 1
    assert synced_rows(base_b.database_url, "employees")[10][1] == "Newer"


def test_a_rejected_row_is_kept_with_its_reason_and_replayed_after_the_fix(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 20, seed_value=9)
    with base_a_engine.connect() as conn:
        taken = conn.execute(text("SELECT email FROM employees WHERE id = 3")).scalar_one()
    # A client created a row with the same email through the API first: the synced one collides.
    client_row = api.session.post(
        f"{base_b.url}/employees", json={"first_name": "C", "last_name": "Lient", "email": taken}
    ).json()

    result = run_once("employees", base_a, api, store)
    assert result["load"]["rejected"] == 1
    assert result["verify"]["quarantined"] == 1
    (rejection,) = api.open_rejections("employees")
    assert rejection["source_id"] == 3
    assert rejection["reasons"][0]["field"] == "email"
    assert rejection["record"]["email"] == taken

    api.session.delete(f"{base_b.url}/employees/{client_row['id']}").raise_for_status()
    replayed = sync.replay_rejections("employees", base_a, api, SETTINGS)
    assert replayed.counts["inserted"] == 1 and replayed.still_rejected == 0
    assert list(api.open_rejections("employees")) == []
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 20


def test_a_rejected_row_deleted_in_base_a_without_a_delete_log_closes_its_rejection(base_a, base_a_engine, base_b):
    """A row the API refused never reached Base B: the key comparison deletes only keys Base B holds,
    and a re-send skips a key Base A lacks, so its rejection stayed open for ever. The run sends its
    delete: the API keeps a tombstone of the key at the rejected version, which closes it."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 10, seed_value=39)
    with base_a_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER employees_log_delete"))  # no delete log: the key comparison alone
        conn.execute(text("UPDATE employees SET email = 'not an address' WHERE id = 4"))
    assert run_once("employees", base_a, api, store)["load"]["rejected"] == 1
    (rejection,) = api.open_rejections("employees")
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM employees WHERE id = 4"))
    deletes = run_once("employees", base_a, api, store)["deletes"]
    assert deletes["closed_rejections"] == 1 and deletes["deleted"] == 0  # Base B never held a live row 4
    assert list(api.open_rejections("employees")) == []
    with create_engine(base_b.database_url).connect() as conn:
        tombstone = conn.execute(
            text("SELECT source_updated_at, deleted_at IS NOT NULL FROM employees WHERE source_id = 4")
        ).one()
    assert tombstone[1] and tombstone[0].isoformat() == rejection["source_updated_at"]
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 9


def test_replaying_rejections_closes_those_of_rows_gone_from_base_a_and_leaves_live_rows_to_the_breaker(
    base_a, base_a_engine, base_b
):
    """Replayed, a rejection whose row Base A deleted gets a delete, which closes it. A row Base B
    holds live (at the version before the rejected change) is no delete of the replay's: the delete
    log deletes it, under the mass-delete breaker, and its delete at the row's last version closes it."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 10, seed_value=40)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE employees SET email = 'not an address' WHERE id = 4"))
    run_once("employees", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE employees SET email = 'neither' WHERE id = 5"))  # Base B holds 5 live, older
    assert run_once("employees", base_a, api, store)["load"]["rejected"] == 1
    assert [r["source_id"] for r in api.open_rejections("employees")] == [4, 5]
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM employees WHERE id IN (4, 5)"))
    replayed = sync.replay_rejections("employees", base_a, api, SETTINGS)
    assert replayed.to_json() == {"replayed": 2, "closed_rejections": 1, "still_rejected": 1}
    assert [r["source_id"] for r in api.open_rejections("employees")] == [5]
    assert 5 in synced_rows(base_b.database_url, "employees")  # the replay deleted no live row
    assert run_once("employees", base_a, api, store)["deletes"]["from_log"] == 2
    assert list(api.open_rejections("employees")) == []
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 8


def test_a_key_deleted_then_inserted_again_comes_back(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 10, seed_value=10)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id = 4"))
    assert run_once("articles", base_a, api, store)["deletes"]["deleted"] == 1
    with base_a_engine.begin() as conn:
        conn.execute(text("INSERT INTO articles (id, title) VALUES (4, 'Back again')"))
    run_once("articles", base_a, api, store)
    assert synced_rows(base_b.database_url, "articles")[4][1] == "Back again"
    assert_in_sync(base_a_engine, base_b.database_url, "articles")


def base_b_engine(base_b):
    from sqlalchemy import create_engine

    return create_engine(base_b.database_url).begin()


def test_the_embedded_sqlite_base_a_syncs_and_keeps_its_cursor(tmp_path, base_b):
    """The embedded default: Base A in a SQLite file, its trigger maintaining updated_at."""
    engine = source_engine(f"sqlite:///{tmp_path}/base_a.sqlite")
    create_schema(engine)
    base_a, api, store = BaseA(engine), base_b.api(), MemoryStateStore()
    generate.seed(engine, "employees", 200, seed_value=20)
    first = run_once("employees", base_a, api, store)
    assert first["load"]["inserted"] == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET salary = 1234.56 WHERE id = 17"))
        conn.execute(text("DELETE FROM employees WHERE id = 18"))
        conn.execute(text("UPDATE employees SET id = 900 WHERE id = 19"))  # SQLite's trigger has WHEN
    second = run_once("employees", base_a, api, store)
    assert second["load"]["extracted"] == 2 and second["load"]["updated"] == 1
    assert second["deletes"]["from_log"] == second["deletes"]["deleted"] == 2
    assert second["deletes"]["resent_unique"] == 1
    assert synced_rows(base_b.database_url, "employees")[17][6] == "1234.56"
    assert assert_in_sync(engine, base_b.database_url, "employees") == 199
    engine.dispose()


def test_a_logged_delete_of_a_row_stamped_in_the_future_is_a_warning_naming_the_key(
    make_mariadb_database, base_b, tmp_path, caplog
):
    """The delete log's version of a local DATETIME row is the time of the delete, which a row stamped
    in the future is newer than: Base B keeps the row. The run says so, naming the key, and the key
    comparison deletes it at the version Base B holds."""
    engine, base_a = _berlin_articles_with_a_delete_log(make_mariadb_database(), tmp_path)
    api, store = base_b.api(), MemoryStateStore()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (1, 'now', NOW())"))
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (2, 'ahead', NOW() + INTERVAL 1 DAY)"))
    run_once("articles", base_a, api, store)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM beitrag WHERE nr = 2"))
    with caplog.at_level(logging.WARNING, logger="base_sync.sync"):
        kept = run_once("articles", base_a, api, store)["deletes"]
    assert kept["from_log"] == kept["not_applied"] == 1 and kept["deleted"] == 0
    (warning,) = [r.getMessage() for r in caplog.records if "not applied" in r.getMessage()]
    assert warning.startswith("articles: 1 deletes from delete log not applied: Base B holds the rows newer")
    assert ": 2 (Base B holds " in warning
    compared = run_once("articles", base_a, api, store, SETTINGS.model_copy(update={"key_check_hours": 0}))
    assert compared["deletes"]["deleted"] == 1 and sorted(synced_rows(base_b.database_url, "articles")) == [1]
    engine.dispose()


def test_a_logged_delete_of_a_key_inserted_again_is_no_warning(make_mariadb_database, base_b, tmp_path, caplog):
    """A key deleted and inserted again (REPLACE, an ORM's delete-then-insert) leaves a logged delete
    older than the row the load wrote: Base B is right to keep it, and no warning says it will go."""
    engine, base_a = _berlin_articles_with_a_delete_log(make_mariadb_database(), tmp_path)
    api, store = base_b.api(), MemoryStateStore()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (1, 'first', NOW())"))
    run_once("articles", base_a, api, store)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM beitrag WHERE nr = 1"))
        # The server's clock runs in UTC, the mapping reads Berlin time: two hours ahead is an hour from now.
        conn.execute(text("INSERT INTO beitrag (nr, titel, geaendert_am) VALUES (1, 'again', NOW() + INTERVAL 2 HOUR)"))
    with caplog.at_level(logging.INFO, logger="base_sync.sync"):
        kept = run_once("articles", base_a, api, store)["deletes"]
    # Base A holds the key again: its row is sent instead of the delete (`put_back`), nothing to warn of.
    assert kept["restored"] == 1 and kept["not_applied"] == kept["deleted"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "not applied" in r.getMessage()]
    assert "again" in synced_rows(base_b.database_url, "articles")[1]
    engine.dispose()


def test_a_row_stamped_in_the_future_does_not_hide_later_changes(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 20, seed_value=21)
    with base_a_engine.begin() as conn:  # a clock-skewed writer
        conn.execute(text("UPDATE articles SET updated_at = UTC_TIMESTAMP(6) + INTERVAL 1 DAY WHERE id = 2"))
    run_once("articles", base_a, api, store)
    assert store.get("articles").updated_at < datetime.now(UTC) + timedelta(minutes=1)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE articles SET title = 'changed after' WHERE id = 9"))
    later = run_once("articles", base_a, api, store)
    assert later["load"]["updated"] == 1  # row 9; the future row is re-read, unchanged
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 20


def test_a_watermark_set_past_base_as_clock_fails_the_load_naming_it(base_a, base_a_engine, base_b):
    """A watermark set by hand in the future is read as stored: every run would read nothing until
    then, green, the watermark never moving back. The load fails at once, naming the store, the
    value, Base A's clock and the fix; a watermark a little ahead (a clock step back) still loads."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 10, seed_value=38)
    run_once("articles", base_a, api, store)
    clock = base_a.now()
    store.set("articles", Cursor(clock + timedelta(minutes=1), 0), {})
    assert sync.load("articles", base_a, api, store, SETTINGS).counts.get("extracted", 0) == 0
    store.set("articles", Cursor(datetime(2030, 1, 1, tzinfo=UTC), 0), {})
    for full_refresh in (False, True):  # a full refresh would keep it too: the commit never moves back
        with pytest.raises(WatermarkAhead) as failed:
            sync.load("articles", base_a, api, store, SETTINGS, full_refresh)
        said = str(failed.value)
        assert said.startswith("the watermark of articles (memory) holds the watermark 2030-01-01T00:00:00+00:00")
        assert f"after Base A's clock {clock:%Y-%m-%dT%H}" in said and "delete it to load articles" in said
    assert isinstance(failed.value, TerminalError)


def test_verify_names_a_row_base_b_holds_newer_as_ahead_not_missing(base_a, base_a_engine, base_b, caplog):
    """A future stamp moved back: the window holds the row at its new version, Base B at the future
    one, outside the window. Re-sent, it is stale: verify says Base B holds it newer, naming the
    key, and the periodic comparison of versions writes it as Base A holds it."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 20, seed_value=22)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE articles SET updated_at = UTC_TIMESTAMP(6) + INTERVAL 1 DAY WHERE id = 2"))
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:  # the owners notice and stamp it now
        conn.execute(text("UPDATE articles SET title = 'fixed', updated_at = UTC_TIMESTAMP(6) WHERE id = 2"))
    with caplog.at_level(logging.WARNING, logger="base_sync.sync"):
        moved_back = run_once("articles", base_a, api, store)
    assert moved_back["verify"]["ahead"] == 1 and moved_back["verify"]["repaired"] == 0
    said = [r.getMessage() for r in caplog.records if "re-sent" in r.getMessage() or "newer" in r.getMessage()]
    assert not [line for line in said if "missing in Base B" in line], said
    assert "articles: 1 rows Base B holds newer than Base A (ahead, not missing" in said[-1]
    assert said[-1].endswith("keys 2")
    due = run_once("articles", base_a, api, store, SETTINGS.model_copy(update={"key_check_hours": 0}))
    assert due["deletes"]["replaced_ahead"] == 1
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 20


def test_verify_counts_a_row_base_b_holds_newer_within_the_window_as_ahead(base_a, base_a_engine, base_b, caplog):
    """Base B got a row's version (the events path), then Base A's stamp of it went back (a restore,
    a zone or offset error, an update committing later with an earlier stamp), both versions inside
    the next window. The key-by-key comparison passed such a row silently (nothing repaired, ahead
    or moved on) while Base B held other content: verify counts it `ahead`, naming the key, and the
    periodic comparison of versions writes it as Base A holds it."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 20, seed_value=23)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE articles SET title = 'first', updated_at = UTC_TIMESTAMP(6) WHERE id = 2"))
    for chunk in base_a.records_by_keys("articles", [2], 10):  # as the events path applies it
        api.bulk_upsert("articles", encode(chunk))
    with base_a_engine.begin() as conn:  # still after the watermark; row 3 takes the window past Base B's version
        conn.execute(
            text("UPDATE articles SET title = 'second', updated_at = updated_at - INTERVAL 1 MICROSECOND WHERE id = 2")
        )
        conn.execute(text("UPDATE articles SET title = 'later', updated_at = UTC_TIMESTAMP(6) WHERE id = 3"))
    with caplog.at_level(logging.WARNING, logger="base_sync.sync"):
        went_back = run_once("articles", base_a, api, store)
    assert went_back["load"]["stale"] == 1 and went_back["load"]["updated"] == 1
    assert synced_rows(base_b.database_url, "articles")[2][1] == "first"  # Base B differs from Base A
    assert went_back["verify"]["ahead"] == 1 and went_back["verify"]["repaired"] == 0, went_back["verify"]
    said = [r.getMessage() for r in caplog.records if "newer" in r.getMessage()]
    assert (
        said and said[-1].startswith("articles: 1 rows Base B holds newer than Base A") and said[-1].endswith("keys 2")
    ), said
    due = run_once("articles", base_a, api, store, SETTINGS.model_copy(update={"key_check_hours": 0}))
    assert due["deletes"]["replaced_ahead"] == 1
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 20
    assert synced_rows(base_b.database_url, "articles")[2][1] == "second"


def test_rows_base_b_holds_newer_are_not_re_sent_nor_held_against_the_repair_limit(base_a, base_a_engine, base_b):
    """Base A restored from a backup, then written: a full refresh's window (up to the newest stamp)
    holds every row Base B got newer before the restore. Counted as missing, they failed verify over
    SYNC_REPAIR_LIMIT ("missing ... the next run re-sends them", which no re-send mends: each is
    answered `stale`), and a partitioned refresh failed the same way at every try. They are `ahead`."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 20, seed_value=23)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:  # five rows back to an older stamp; one written since
        conn.execute(
            text("UPDATE articles SET title = 'restored', updated_at = updated_at - INTERVAL 1 HOUR WHERE id <= 5")
        )
        conn.execute(text("UPDATE articles SET title = 'after', updated_at = UTC_TIMESTAMP(6) WHERE id = 20"))
    settings = SETTINGS.model_copy(update={"repair_limit": 3})
    report = sync.load("articles", base_a, api, store, settings, full_refresh=True)  # as load_partition does
    assert report.counts["stale"] == 5, report.counts
    result = sync.verify("articles", base_a, api, report, settings)
    assert (result.ahead, result.repaired) == (5, 0), result


def test_a_row_refused_for_a_taken_email_heals_when_the_holder_changes_its_email(base_a, base_a_engine, base_b):
    """Two Base A rows claim one address: the second is rejected (unique_taken). When the first one's
    address is corrected, the next run sends the second again, with no delete in between."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 5, seed_value=33)
    with base_a_engine.begin() as conn:  # a legacy Base A without the unique index
        conn.execute(text("ALTER TABLE employees DROP INDEX email"))
        conn.execute(text("UPDATE employees SET email = 'shared@example.com' WHERE id IN (1, 2)"))
    first = run_once("employees", base_a, api, store)
    assert first["load"]["rejected"] == 1
    [rejected] = api.open_rejections("employees")
    with base_a_engine.begin() as conn:
        holder = 3 - rejected["source_id"]
        conn.execute(text("UPDATE employees SET email = 'own@example.com' WHERE id = :id"), {"id": holder})
    second = run_once("employees", base_a, api, store)
    assert second["deletes"]["resent_unique"] == 1 and second["deletes"]["deleted"] == 0
    assert list(api.open_rejections("employees")) == []
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 5


def test_an_old_runs_commit_run_again_after_a_newer_one_never_moves_the_watermark_back(base_a, base_a_engine, base_b):
    """The runbook says: fix the cause, clear the failed task. Cleared on an old run after newer runs
    committed, its commit must leave the newer watermark and stats alone."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 20, seed_value=34)
    run_once("articles", base_a, api, store)
    generate.churn(base_a_engine, "articles", 3, 1, 0, 36)
    old = sync.load("articles", base_a, api, store, SETTINGS)  # run A loads, its commit fails
    generate.churn(base_a_engine, "articles", 5, 2, 0, 35)
    run_once("articles", base_a, api, store)  # run B commits past it
    newer, newer_stats = store.get("articles"), store.last_stats("articles")
    assert newer > old.until
    assert sync.commit("articles", store, old, {"deletes": {}}) == newer  # A's task cleared and run again
    assert (store.get("articles"), store.last_stats("articles")) == (newer, newer_stats)


def add_twins(engine, rows: str, index: str = "", later: str = "INTERVAL 0 SECOND") -> None:
    """The employees table without its primary key (`index`: an index on id instead) and a twin of
    each row `rows` selects: same id, its own email, the stamp `later` than the original's."""
    with engine.begin() as conn:
        conn.execute(
            text(f"ALTER TABLE employees MODIFY id BIGINT NOT NULL, DROP PRIMARY KEY{', ' + index if index else ''}")
        )
        conn.execute(
            text(
                "INSERT INTO employees (id, first_name, last_name, email, salary, updated_at) "
                "SELECT id, 'Twin', last_name, CONCAT('twin', id, '@example.com'), salary, "
                f"updated_at + {later} FROM employees WHERE {rows}"
            )
        )


def test_a_key_base_a_holds_in_two_rows_is_quarantined_and_the_other_rows_sync(base_a, base_a_engine, base_b):
    """A legacy table without a primary key: two rows of one key would overwrite each other in Base
    B. A first load quarantines both with the reason; the other rows sync and the run commits."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 10, seed_value=37)
    add_twins(base_a_engine, "id = 4", index="ADD KEY (id)", later="INTERVAL 1 SECOND")
    run = run_once("employees", base_a, api, store)
    assert run["load"]["quarantined"] == run["load"]["shared_key"] == 2 and run["load"]["inserted"] == 9
    assert run["verify"]["quarantined"] == 1  # the window holds key 4 twice: in quarantine, not missing
    assert sorted(synced_rows(base_b.database_url, "employees")) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    [rejection] = api.open_rejections("employees")
    assert rejection["source_id"] == 4 and "id = 4 names 2 rows of employees" in rejection["reasons"][0]["message"]
    assert store.get("employees") is not None  # the watermark moved


def aggregates_counted(engine) -> list[str]:
    """The statements asking Base A which keys rows share, as the engine sends them."""
    sent: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "HAVING count(*) >" in statement:
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    return sent


def test_a_key_no_index_starts_with_is_told_shared_by_one_pass_over_the_table_not_one_per_chunk(base_a_engine, base_b):
    """A key no index serves (a legacy table without any, a view's computed key): asked per chunk,
    each question read the whole table, a first load of N rows read it N / chunk times. One pass
    per task answers every chunk; the rows sharing a key are quarantined all the same."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 10, seed_value=40)
    add_twins(base_a_engine, "id IN (3, 7)")
    base_a = BaseA(base_a_engine)
    checked = base_a.require_schema("employees")
    assert not checked.key_unique and not checked.key_indexed
    sent = aggregates_counted(base_a_engine)
    run = run_once("employees", base_a, api, store, SyncSettings(lookback_seconds=0, chunk_size=3, bucket_size=1000))
    assert len(sent) == 1 and "IN (" not in sent[0], sent  # four chunks, one pass
    assert run["load"]["quarantined"] == run["load"]["shared_key"] == 4 and run["load"]["inserted"] == 8
    assert sorted(r["source_id"] for r in api.open_rejections("employees")) == [3, 7]
    assert sorted(synced_rows(base_b.database_url, "employees")) == [1, 2, 4, 5, 6, 8, 9, 10]


def view_mapping(key_unique: bool) -> SourceMapping:
    """employees read through a view whose key is unique by construction (no index: a view has none)."""
    entity = identity_entity(ENTITIES["employees"]).model_copy(update={"table": "employees_v"})
    spec = IDENTITY.model_copy(update={"entities": {"employees": entity}})
    if key_unique:
        spec = parse_mapping(with_key_unique(spec.model_dump(mode="json")))
    return SourceMapping(spec)


def with_key_unique(document: dict) -> dict:
    document["entities"]["employees"]["key_unique"] = True
    return document


def test_a_view_whose_mapping_asserts_its_key_unique_asks_no_shared_key_question(base_a_engine, base_b):
    """A view has no index: every task read it whole once (`shared_in_table`), also the view the docs
    recommend, whose key is unique by construction. `key_unique: true` asserts it: no such read; the
    rows sync, and verification still compares the window."""
    generate.seed(base_a_engine, "employees", 10, seed_value=43)
    with base_a_engine.begin() as conn:
        conn.execute(text("CREATE VIEW employees_v AS SELECT * FROM employees"))
    asked = BaseA(base_a_engine, view_mapping(key_unique=False))
    assert not asked.require_schema("employees").key_unique
    base_a = BaseA(base_a_engine, view_mapping(key_unique=True))
    assert base_a.require_schema("employees").key_unique
    sent = aggregates_counted(base_a_engine)
    run = run_once("employees", base_a, base_b.api(), MemoryStateStore())
    assert sent == [], sent
    assert run["load"]["inserted"] == 10 and run["verify"]["rows"] == 10
    assert sorted(synced_rows(base_b.database_url, "employees")) == list(range(1, 11))


def test_a_key_shared_by_more_values_than_memory_holds_fails_at_once_naming_the_fix(base_a_engine, base_b, monkeypatch):
    """Past SHARED_KEYS_HELD shared keys the column is no key of the table: the task fails with the
    reason before it writes a row, instead of holding every key in memory or quarantining the table."""
    monkeypatch.setattr(shared_keys, "SHARED_KEYS_HELD", 2)
    generate.seed(base_a_engine, "employees", 5, seed_value=41)
    add_twins(base_a_engine, "TRUE")
    with pytest.raises(shared_keys.KeyNamesNoRow, match=r"more than 2 values of id name several rows of employees"):
        run_once("employees", BaseA(base_a_engine), base_b.api(), MemoryStateStore())
    assert synced_rows(base_b.database_url, "employees") == {}


def add_tenants(engine) -> None:
    """The employees table keyed (id, tenant), as a multi-tenant Base A is: `key: id` names two rows
    once another tenant uses an id (`base-a check` only warns: partitioned tables key (id, date))."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE employees ADD COLUMN tenant INT NOT NULL DEFAULT 1, DROP PRIMARY KEY, "
                "ADD PRIMARY KEY (id, tenant)"
            )
        )


def test_an_incremental_run_quarantines_a_row_sharing_its_key_instead_of_overwriting(base_a_engine, base_b, caplog):
    """An outside probe: with the primary key (id, tenant) and `key: id`, tenant 2's new row 4 was
    synced over tenant 1's row 4 in Base B, silently. Now it is quarantined with the reason, Base B
    keeps tenant 1's row, and a row of a unique key changed in the same batch syncs."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 10, seed_value=38)
    run_once("employees", BaseA(base_a_engine), api, store)
    add_tenants(base_a_engine)
    before = synced_rows(base_b.database_url, "employees")[4]
    with base_a_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO employees (id, tenant, first_name, last_name, email, salary, updated_at) "
                "SELECT id, 2, 'Other tenant', last_name, 'tenant2@example.com', salary, UTC_TIMESTAMP(6) "
                "FROM employees WHERE id = 4"
            )
        )
        conn.execute(text("UPDATE employees SET position = 'Lead', updated_at = UTC_TIMESTAMP(6) WHERE id = 5"))
    with caplog.at_level(logging.WARNING, logger="base_sync.source"):
        run = run_once("employees", BaseA(base_a_engine), api, store)  # a new reader, as each task makes
    rows = synced_rows(base_b.database_url, "employees")
    assert rows[4] == before, "tenant 2's row overwrote tenant 1's in Base B"
    assert rows[5][5] == "Lead"
    assert run["load"]["shared_key"] == run["load"]["quarantined"] == 1, run
    assert run["load"]["updated"] == 1 and run["verify"]["quarantined"] == 1
    [rejection] = api.open_rejections("employees")
    [why] = rejection["reasons"]
    assert rejection["source_id"] == 4 and why["code"] == "shared_key"
    assert why["message"].startswith("id = 4 names 2 rows of employees (employees's mapped key is not unique)")
    assert "docs/mapping.md, `key`" in why["message"]
    assert any("id = 4 (2 rows)" in r.getMessage() for r in caplog.records), caplog.text


def test_a_key_shared_past_the_limit_fails_on_the_indexed_path_too(base_a_engine, base_b, monkeypatch):
    """Keyed (id, tenant), each tenant numbering its ids from 1, mapped `key: id`: the chunks are asked
    one by one (an index starts with id), and no limit held there, so nearly every row was quarantined,
    each a rejection holding the full record, on every run. The task meets the limit across its
    chunks (here two shared keys in the first chunk, a third in the next) and fails as the other path does."""
    monkeypatch.setattr(shared_keys, "SHARED_KEYS_HELD", 2)
    generate.seed(base_a_engine, "employees", 6, seed_value=42)
    add_tenants(base_a_engine)
    with base_a_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO employees (id, tenant, first_name, last_name, email, salary, updated_at) "
                "SELECT id, 2, 'Other tenant', last_name, CONCAT('t2-', id, '@example.com'), salary, updated_at "
                "FROM employees"
            )
        )
    base_a = BaseA(base_a_engine)
    checked = base_a.require_schema("employees")
    assert not checked.key_unique and checked.key_indexed
    settings = SyncSettings(lookback_seconds=0, chunk_size=3, bucket_size=1000)
    with pytest.raises(shared_keys.KeyNamesNoRow, match=r"more than 2 values of id name several rows of employees"):
        run_once("employees", base_a, base_b.api(), MemoryStateStore(), settings)
    assert len(list(base_b.api().open_rejections("employees"))) <= 2  # the chunk past the limit was not written


TENANT_ARTICLES_SOFT_DELETED = """
entities:
  articles:
    table: beitrag
    key: nr
    cursor: {column: geaendert_am, type: datetime}
    soft_delete: {column: geloescht, deleted_when: 1}
    fields:
      title: {column: titel}
"""


def test_a_row_leaving_the_scope_deletes_no_key_another_row_holds_live(make_mariadb_database, base_b, tmp_path):
    """Keyed (nr, mandant), mapped `key: nr`: tenant 2's row 7, soft-deleted, was sent to Base B as a
    delete of 7 (rows leaving the scope passed no check), and tenant 1's live row 7 was tombstoned
    there. Base B keeps what it held of the key, as for a logged delete Base A holds the key again."""
    engine, mapping = tenant_articles(make_mariadb_database, tmp_path, (7, 1, "tenant 1", "2026-11-01 10:00:00"))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO beitrag VALUES (8, 1, 'tenant 1', '2026-11-01 10:00:00', 0)"))
    base_a, api, store = BaseA(engine, mapping), base_b.api(), MemoryStateStore()
    run_once("articles", base_a, api, store)
    assert sorted(synced_rows(base_b.database_url, "articles")) == [7, 8]
    with engine.begin() as conn:  # tenant 2's rows, soft-deleted: 7 shares its key with a live row, 8 does not
        conn.execute(text("INSERT INTO beitrag VALUES (7, 2, 'tenant 2', '2026-11-01 11:00:00', 1)"))
        conn.execute(text("UPDATE beitrag SET geloescht = 1, geaendert_am = '2026-11-01 11:00:00' WHERE nr = 8"))
    run = run_once("articles", BaseA(engine, mapping), api, store)
    assert run["deletes"]["left_scope"] == 1, run  # 8 alone
    assert sorted(synced_rows(base_b.database_url, "articles")) == [7], "tenant 1's live row 7 was deleted in Base B"
    engine.dispose()


def tenant_articles(make_mariadb_database, tmp_path, first: tuple):
    """beitrag keyed (nr, mandant), mapped `key: nr`, with the delete log; `first` (nr, tenant, title,
    stamp) its one row: (engine, mapping)."""
    (tmp_path / "mapping.yaml").write_text(TENANT_ARTICLES_SOFT_DELETED)
    engine = source_engine(make_mariadb_database())
    mapping = SourceMapping.from_file(tmp_path / "mapping.yaml")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE beitrag (nr INT UNSIGNED NOT NULL, mandant INT NOT NULL, titel VARCHAR(255) NOT NULL, "
                "geaendert_am DATETIME NOT NULL, geloescht TINYINT NOT NULL DEFAULT 0, PRIMARY KEY (nr, mandant), "
                "KEY ix (geaendert_am))"
            )
        )
        conn.execute(
            text("INSERT INTO beitrag VALUES (:nr, :tenant, :title, :stamp, 0)"),
            dict(zip(("nr", "tenant", "title", "stamp"), first, strict=True)),
        )
    install_delete_log(engine, mapping, ["articles"])
    return engine, mapping


@pytest.mark.parametrize("in_base_b", [1, 2])
def test_a_row_leaving_the_scope_deletes_its_own_copy_of_a_shared_key_not_a_live_rows(
    make_mariadb_database, base_b, tmp_path, in_base_b
):
    """Keyed (nr, mandant), mapped `key: nr`: tenant `in_base_b`'s row 7 synced alone, the other
    tenant's row 7 came later (quarantined: Base B keeps the first copy), then tenant 2's row was
    soft-deleted. Its delete was dropped as tenant 1 holds 7 live, so when Base B held tenant 2's
    copy, that row, deleted in Base A, stayed live in Base B for good. Now the delete is sent when
    Base B's copy is not the live row's; tenant 1's copy stays."""
    engine, mapping = tenant_articles(
        make_mariadb_database, tmp_path, (7, in_base_b, f"tenant {in_base_b}", "2026-11-01 10:00:00")
    )
    api, store = base_b.api(), MemoryStateStore()
    run_once("articles", BaseA(engine, mapping), api, store)
    assert synced_rows(base_b.database_url, "articles")[7][1] == f"tenant {in_base_b}"
    other = 3 - in_base_b
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO beitrag VALUES (7, {other}, 'tenant {other}', '2026-11-01 10:30:00', 0)"))
    run = run_once("articles", BaseA(engine, mapping), api, store)
    assert run["load"]["shared_key"] == 1  # the new row, read in the window
    assert synced_rows(base_b.database_url, "articles")[7][1] == f"tenant {in_base_b}"
    with engine.begin() as conn:
        conn.execute(text("UPDATE beitrag SET geloescht = 1, geaendert_am = '2026-11-01 11:00:00' WHERE mandant = 2"))
    run = run_once("articles", BaseA(engine, mapping), api, store)
    rows = synced_rows(base_b.database_url, "articles")
    if in_base_b == 2:
        assert run["deletes"]["left_scope"] == 1, run
        assert rows == {}, "tenant 2's copy stayed live in Base B, its row soft-deleted in Base A"
    else:
        assert run["deletes"].get("left_scope", 0) == 0, run
        assert rows[7][1] == "tenant 1", "tenant 1's live row's copy was deleted in Base B"
    engine.dispose()


def test_a_logged_delete_of_a_shared_key_deletes_its_own_copy_while_other_rows_hold_the_key(
    make_mariadb_database, base_b, tmp_path, caplog
):
    """The delete log's path: tenant 2's row 7, whose copy Base B holds, is deleted while tenants 1
    and 3 hold 7 live (quarantined). `put_back.split` read the key back and dropped the delete, so
    Base B kept the deleted row's copy live. Now it is deleted (the live rows' copies stay, as the
    leaving-scope test shows for the key comparison `copies_of_live_rows` makes on both paths)."""
    engine, mapping = tenant_articles(make_mariadb_database, tmp_path, (7, 2, "tenant 2", "2026-11-01 10:00:00"))
    api, store = base_b.api(), MemoryStateStore()
    run_once("articles", BaseA(engine, mapping), api, store)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO beitrag VALUES (7, 1, 'tenant 1', '2026-11-01 10:30:00', 0)"))
        conn.execute(text("INSERT INTO beitrag VALUES (7, 3, 'tenant 3', '2026-11-01 10:40:00', 0)"))
    run_once("articles", BaseA(engine, mapping), api, store)
    assert synced_rows(base_b.database_url, "articles")[7][1] == "tenant 2"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM beitrag WHERE mandant = 2"))
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        run = run_once("articles", BaseA(engine, mapping), api, store)
    assert run["deletes"]["from_log"] == 1 and run["deletes"]["deleted"] == 1, run
    assert synced_rows(base_b.database_url, "articles") == {}, "tenant 2's deleted row stayed live in Base B"
    assert "logged deletes not sent" not in caplog.text  # the review: "0 logged deletes not sent"
    engine.dispose()


def test_the_breaker_counts_the_logged_deletes_of_shared_keys_it_sends_and_only_those(
    make_mariadb_database, base_b, tmp_path
):
    """Tenant 2's rows 1-11, whose copies Base B holds, are deleted while tenants 1 and 3 hold each
    key live (quarantined). The plan counted none of them (a key Base A holds live was taken for a
    row put back: uncounted), so 11 rows went past a limit of 10 unasked, under a plan saying "0 rows
    to delete", as `put_back.split` sends such a delete. Now the plan counts the deletes it sends,
    and only those: not tenant 2's row 20's, as Base B's copy of 20 is tenant 1's, which stays."""
    engine, mapping = tenant_articles(make_mariadb_database, tmp_path, (20, 1, "tenant 1", "2026-11-01 10:00:00"))
    with engine.begin() as conn:
        for key in range(1, 12):
            conn.execute(text(f"INSERT INTO beitrag VALUES ({key}, 2, 'tenant 2', '2026-11-01 10:00:00', 0)"))
    api, store = base_b.api(), MemoryStateStore()
    run_once("articles", BaseA(engine, mapping), api, store)
    with engine.begin() as conn:
        for key in [*range(1, 12), 20]:
            for tenant in (1, 3) if key != 20 else (2, 3):
                conn.execute(text(f"INSERT INTO beitrag VALUES ({key}, {tenant}, 'other', '2026-11-01 10:30:00', 0)"))
    run_once("articles", BaseA(engine, mapping), api, store)
    assert len(synced_rows(base_b.database_url, "articles")) == 12
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM beitrag WHERE mandant = 2 AND nr <= 11"))
    small = SETTINGS.model_copy(update={"mass_delete_min_rows": 10, "mass_delete_share": 0.05})
    plan = sync.plan_deletes("articles", BaseA(engine, mapping), api, store, small)
    assert (plan.total, plan.by_source, plan.within_budget) == (11, {DELETE_LOG: 11}, False), plan.message
    with pytest.raises(MassDeleteBlocked):
        sync.propagate_deletes("articles", BaseA(engine, mapping), api, store, small)
    assert len(synced_rows(base_b.database_url, "articles")) == 12, "a mass delete passed the breaker unasked"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM beitrag WHERE mandant = 2"))  # row 20: logged, its delete not sent
    assert sync.plan_deletes("articles", BaseA(engine, mapping), api, store, small).total == 11
    report = sync.propagate_deletes("articles", BaseA(engine, mapping), api, store, small, approved=11)
    assert (report.plan["total"], report.from_log, report.deleted) == (11, 12, 11)
    rows = synced_rows(base_b.database_url, "articles")
    assert list(rows) == [20] and rows[20][1] == "tenant 1"
    engine.dispose()


def test_a_table_whose_key_is_unique_alone_is_not_asked_per_chunk(base_a_engine):
    """The per-chunk question costs a query: asked only when no unique index holds the key alone."""
    generate.seed(base_a_engine, "employees", 3, seed_value=39)
    assert BaseA(base_a_engine).require_schema("employees").key_unique
    add_tenants(base_a_engine)
    assert not BaseA(base_a_engine).require_schema("employees").key_unique


def dag_run(entity, engine, api, store) -> dict:
    """One batch run as the DAG makes it: a new reader (each task makes one, with its schema check),
    the full refresh `refresh_wanted` decides, and a commit recording what the load read with."""
    base_a = BaseA(engine)
    full_refresh = sync.refresh_wanted(entity, base_a, store, asked=False)
    report = sync.load(entity, base_a, api, store, SETTINGS, full_refresh)
    read_with = sync.read_with(entity, base_a)
    deleted = sync.propagate_deletes(entity, base_a, api, store, SETTINGS, compare_keys=full_refresh)
    verified = sync.verify(entity, base_a, api, report, SETTINGS)
    sync.commit(entity, store, report, {"deletes": deleted.to_json(), **read_with})
    return {"full_refresh": full_refresh, "load": dict(report.counts), "verify": verified.to_json()}


def _salaries(base_a_engine, database_url) -> tuple[dict, dict]:
    """{id: salary} of Base A and of Base B, as numbers (Base B's DECIMAL(12,2) writes 501 as '501.00')."""
    with base_a_engine.connect() as conn:
        ours = {key: Decimal(value) for key, value in conn.execute(text("SELECT id, salary FROM employees"))}
    return ours, {key: Decimal(row[6]) for key, row in synced_rows(database_url, "employees").items()}


def test_an_alter_rewriting_a_mapped_columns_values_makes_the_next_run_a_full_refresh(base_a_engine, base_b, caplog):
    """Found from outside: `MODIFY gehalt DECIMAL(10,0)` rounded every salary in Base A (500.25 to
    500) with no row event and no stamp touched: no window read the rows, the key comparison (keys and
    versions) found nothing, and Base B kept 500.25 for good. The changed definition of a column the
    mapping reads now makes the next run a full refresh; an unmapped column's DDL does not."""
    api, store = base_b.api(), MemoryStateStore()
    with base_a_engine.begin() as conn:
        conn.execute(text("ALTER TABLE employees MODIFY salary DECIMAL(10,2) NULL"))
        for key in range(1, 6):
            conn.execute(
                text(
                    "INSERT INTO employees (id, first_name, last_name, email, salary) "
                    "VALUES (:id, 'Ann', 'Lee', CONCAT('a', :id, '@example.com'), 500.25 + :id)"
                ),
                {"id": key},
            )
    assert dag_run("employees", base_a_engine, api, store)["load"]["inserted"] == 5
    assert store.last_stats("employees")[sync.COLUMN_DEFINITIONS]["salary"] == "DECIMAL(10,2) NULL"
    with base_a_engine.begin() as conn:  # DDL the mapping does not read: the definitions stay
        conn.execute(text("ALTER TABLE employees ADD COLUMN notiz VARCHAR(20) NULL"))
    unchanged = dag_run("employees", base_a_engine, api, store)
    assert not unchanged["full_refresh"] and unchanged["load"].get("extracted", 0) == 0

    with base_a_engine.begin() as conn:
        conn.execute(text("ALTER TABLE employees MODIFY salary DECIMAL(10,0) NULL"))
    ours, theirs = _salaries(base_a_engine, base_b.database_url)
    assert ours[1] == 501 and theirs[1] == Decimal("501.25")  # rounded in Base A alone
    with caplog.at_level(logging.WARNING, logger="base_sync.sync"):
        mended = dag_run("employees", base_a_engine, api, store)
    assert mended["full_refresh"] and mended["load"]["updated"] == 5
    (said,) = [r.getMessage() for r in caplog.records if "definition" in r.getMessage()]
    assert "employees.salary: DECIMAL(10,2) NULL, now DECIMAL(10,0) NULL" in said
    assert "a full refresh" in said
    ours, theirs = _salaries(base_a_engine, base_b.database_url)
    assert ours == theirs and theirs[1] == 501

    after = dag_run("employees", base_a_engine, api, store)  # the new definition is recorded: once
    assert not after["full_refresh"] and after["load"].get("extracted", 0) == 0


def test_a_commit_without_column_definitions_records_them_without_a_full_refresh(base_a_engine, base_b, caplog):
    """An upgrade from a version that recorded no column definitions must not re-read every entity:
    the first run records them, and a later change is found from there on."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 20, seed_value=38)
    base_a = BaseA(base_a_engine)
    report = sync.load("employees", base_a, api, store, SETTINGS)
    older = {sync.MAPPING_DIGEST: base_a.mapping.digest("employees")}  # what an older version recorded
    sync.commit("employees", store, report, older)
    with caplog.at_level(logging.INFO, logger="base_sync.sync"):
        upgraded = dag_run("employees", base_a_engine, api, store)
    assert not upgraded["full_refresh"] and upgraded["load"].get("extracted", 0) == 0
    assert "recorded no column definitions" in caplog.text
    assert store.last_stats("employees")[sync.COLUMN_DEFINITIONS]["salary"] == "DECIMAL(12,2) NULL"

    with base_a_engine.begin() as conn:
        conn.execute(text("ALTER TABLE employees MODIFY salary DECIMAL(12,0) NULL"))
    ours, theirs = _salaries(base_a_engine, base_b.database_url)
    assert ours != theirs  # cents rounded away in Base A alone
    assert dag_run("employees", base_a_engine, api, store)["full_refresh"]
    ours, theirs = _salaries(base_a_engine, base_b.database_url)
    assert ours == theirs and len(ours) == 20


def test_the_embedded_sqlite_base_a_records_its_column_definitions(tmp_path, base_b):
    """The definitions come through the backend (PRAGMA table_info on SQLite): the same comparison."""
    engine = source_engine(f"sqlite:///{tmp_path}/base_a.sqlite")
    create_schema(engine)
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(engine, "employees", 10, seed_value=39)
    dag_run("employees", engine, api, store)
    assert store.last_stats("employees")[sync.COLUMN_DEFINITIONS]["salary"] == "NUMERIC(12, 2) NULL"
    assert not dag_run("employees", engine, api, store)["full_refresh"]
    stats = store.last_stats("employees")
    retyped = {**stats[sync.COLUMN_DEFINITIONS], "salary": "NUMERIC(12, 4) NULL"}  # as recorded before a retype
    store.set("employees", store.get("employees"), {**stats, sync.COLUMN_DEFINITIONS: retyped})
    assert dag_run("employees", engine, api, store)["full_refresh"]
    engine.dispose()
