"""Rows deleted and put back in Base A between two batch runs (an undo from a copy or a backup): the
logged delete must not win. Base A on MariaDB, the API as a process, Base B on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from base_sync import put_back, sync
from base_sync.delete_guard import ANY_NUMBER
from base_sync.demo import generate
from base_sync.load import push_chunks
from base_sync.state import MemoryStateStore
from baseab_contract.bulk_format import VERSION
from tests.sync.conftest import assert_in_sync, source_rows, synced_rows
from tests.sync.test_sync_steps import SETTINGS, run_once


def _sql(engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_a_row_put_back_under_the_same_stamp_stays_in_base_b(base_a, base_a_engine, base_b):
    """Found from outside: the next run sent the logged delete, Base B lost the row, and no later
    run sent it again (its stamp is behind the watermark) until the key comparison a day later."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 50, seed_value=61)
    run_once("employees", base_a, api, store)
    _sql(
        base_a_engine,
        "CREATE TABLE undo_copy AS SELECT * FROM employees WHERE id = 1",
        "DELETE FROM employees WHERE id = 1",
        "INSERT INTO employees SELECT * FROM undo_copy",
    )
    run = run_once("employees", base_a, api, store)["deletes"]
    assert (run["from_log"], run["deleted"], run["restored"]) == (1, 0, 1)
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 50
    again = run_once("employees", base_a, api, store)["deletes"]
    assert again["deleted"] == 0 and "restored" not in again
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 50


def test_rows_put_back_from_an_older_backup_replace_what_base_b_held(base_a, base_a_engine, base_b):
    """The backup predates row 2's last edit, which Base B holds: the put-back row is older than the
    logged delete. The events path deleted the rows first (tombstones at the logged versions): they
    come back too, at a tie (rows 1, 3) or replacing the newer version (row 2)."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 20, seed_value=62)
    run_once("employees", base_a, api, store)
    _sql(
        base_a_engine,
        "CREATE TABLE backup_emp AS SELECT * FROM employees WHERE id IN (1, 2, 3, 4)",
        "UPDATE employees SET position = 'later edit', updated_at = NOW(6) + INTERVAL 1 SECOND WHERE id = 2",
    )
    run_once("employees", base_a, api, store)
    assert synced_rows(base_b.database_url, "employees")[2][5] == "later edit"
    _sql(base_a_engine, "DELETE FROM employees WHERE id IN (1, 2, 3, 4)")
    (logged,) = [records for records, _ in base_a.deletes_after("employees", None, 100)]
    api.bulk_delete("employees", [r for r in logged if r["source_id"] != 4])  # the events path, first
    _sql(base_a_engine, "INSERT INTO employees SELECT * FROM backup_emp WHERE id IN (1, 2, 3)")
    run = run_once("employees", base_a, api, store)["deletes"]
    assert (run["restored"], run["deleted"]) == (3, 1)
    theirs = synced_rows(base_b.database_url, "employees")
    assert theirs[2] == source_rows(base_a_engine, "employees")[2] and theirs[2][5] != "later edit"
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 19


def test_an_undone_mass_delete_asks_no_approval(base_a, base_a_engine, base_b):
    """An accidental mass delete undone from a copy before the next run: the keys are back, so the
    circuit breaker counts no delete (it asked to approve 60 that would have lost the rows)."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 100, seed_value=63)
    run_once("articles", base_a, api, store)
    _sql(
        base_a_engine,
        "CREATE TABLE undo_copy AS SELECT * FROM articles WHERE id <= 60",
        "DELETE FROM articles WHERE id <= 60",
        "INSERT INTO articles SELECT * FROM undo_copy",
    )
    small = SETTINGS.model_copy(update={"mass_delete_min_rows": 10, "mass_delete_share": 0.05})
    plan = sync.plan_deletes("articles", base_a, api, store, small)
    assert plan.total == 0 and plan.within_budget
    run = run_once("articles", base_a, api, store, small)["deletes"]
    assert (run["restored"], run["deleted"]) == (60, 0)
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 100


def test_an_approved_mass_delete_sent_in_a_second_pass_keeps_the_rows_put_back(base_a, base_a_engine, base_b):
    """More deletes than the plan holds: the approved run reads the log again to send them, and
    checks Base A for the keys put back there too."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 100, seed_value=64)
    run_once("articles", base_a, api, store)
    _sql(
        base_a_engine,
        "CREATE TABLE undo_copy AS SELECT * FROM articles WHERE id <= 20",
        "DELETE FROM articles WHERE id <= 60",
        "INSERT INTO articles SELECT * FROM undo_copy",
    )
    small = SETTINGS.model_copy(update={"mass_delete_min_rows": 10, "mass_delete_share": 0.05, "chunk_size": 7})
    report = sync.propagate_deletes("articles", base_a, api, store, small, approved=ANY_NUMBER)
    assert (report.restored, report.deleted, report.plan["total"]) == (20, 40, 40)
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 60


def _put_back_then_deleted_again(base_a, base_a_engine, base_b, later: str) -> tuple[put_back.Restored, dict]:
    """Row 1 synced, deleted and put back in Base A with updated_at `later` (its own stamp: an undo
    from a copy; or a newer one); the batch's split reads it; meanwhile the events path applies the
    put-back row, Base A deletes it again and the events path applies that delete; then the batch
    sends the row. What the send did, and Base B's live rows."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 3, seed_value=65)
    run_once("employees", base_a, api, store)
    _sql(
        base_a_engine,
        "CREATE TABLE undo_copy AS SELECT * FROM employees WHERE id = 1",
        f"UPDATE undo_copy SET updated_at = {later}",
        "DELETE FROM employees WHERE id = 1",
        "INSERT INTO employees SELECT * FROM undo_copy",
    )
    (logged,) = [records for records, _ in base_a.deletes_after("employees", None, 100)]
    chunk = put_back.split(base_a, api, "employees", logged)
    assert (chunk.deletes, len(chunk.rows)) == ([], 1)
    push_chunks(api, "employees", [chunk.rows], 1, restore_ties=True)  # the events path, in key order
    _sql(base_a_engine, "DELETE FROM employees WHERE id = 1")
    *_, again = [r for records, _ in base_a.deletes_after("employees", None, 100) for r in records]
    assert len(logged) == 1 and again[VERSION] >= logged[0][VERSION]
    api.bulk_delete("employees", [again])  # the events path, first
    restored = put_back.restore(api, base_a, "employees", chunk, 1)
    return restored, synced_rows(base_b.database_url, "employees")


def test_a_row_put_back_under_a_newer_stamp_and_deleted_again_meanwhile_is_not_revived(base_a, base_a_engine, base_b):
    """Found from outside: sent with restore_ties, the row tied with the newer delete's tombstone and
    came back live in Base B, a row Base A no longer had, until the next batch run."""
    restored, theirs = _put_back_then_deleted_again(base_a, base_a_engine, base_b, "updated_at + INTERVAL 1 SECOND")
    assert 1 not in theirs and sorted(theirs) == sorted(source_rows(base_a_engine, "employees")) == [2, 3]
    assert restored.restored == 0


def test_a_row_put_back_under_its_own_stamp_and_deleted_again_meanwhile_is_deleted_again(base_a, base_a_engine, base_b):
    """At the logged version a tie must restore (the row came back from a copy): a delete at that
    same version applied meanwhile is lost to it, so the keyed read after the send deletes it again."""
    restored, theirs = _put_back_then_deleted_again(base_a, base_a_engine, base_b, "updated_at")
    assert 1 not in theirs and sorted(theirs) == sorted(source_rows(base_a_engine, "employees")) == [2, 3]
    assert (restored.restored, restored.deletes.deleted, len(restored.deleted_again)) == (0, 1, 1)
