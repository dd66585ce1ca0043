"""Base B restored from a backup while the batch sync's watermark (in Airflow) stays where it was."""

from __future__ import annotations

import logging
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base_sync import sync
from base_sync.api_client import BaseBApi
from base_sync.demo import generate
from base_sync.errors import TransientError
from base_sync.mapping import IDENTITY_MAPPING
from base_sync.records import encode, to_record
from base_sync.reports import RunMark
from base_sync.settings import SyncSettings
from base_sync.source_schema import install_delete_log
from base_sync.state import MemoryStateStore
from testbed.servers import require_program
from tests.sync.conftest import assert_in_sync

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=500, bucket_size=1000)


def run_once(base_a, api, store) -> dict:
    """One batch run as the DAG orders it: the load task writes the run's mark in Base B first, the
    deletes take what it found, the commit checks it and writes its own, as their tasks do."""
    mark = sync.mark_run("employees", api, store)
    report = sync.load("employees", base_a, api, store, SETTINGS)
    deleted = sync.propagate_deletes("employees", base_a, api, store, SETTINGS, compare_keys=False, run_mark=mark)
    sync.verify("employees", base_a, api, report, SETTINGS)
    sync.commit("employees", store, report, {"deletes": deleted.to_json()}, api, mark)
    return deleted.to_json()


def dump_base_b(base_b, dump) -> None:
    pg_dump = require_program("/usr/bin/pg_dump", "the restore test takes a real dump")
    subprocess.run([pg_dump, "-Fc", "-f", str(dump), libpq_url(base_b.database_url)], check=True)


def restore_base_b(base_b, dump) -> None:
    pg_restore = require_program("/usr/bin/pg_restore", "the restore test restores a real dump")
    restore = [pg_restore, "--clean", "--if-exists", "--single-transaction", "-d", libpq_url(base_b.database_url)]
    subprocess.run([*restore, str(dump)], check=True)


@pytest.fixture
def scripted_mark_api():
    """An API of the version before token marks: GET answers {"mark": n}, PUT is not allowed."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._answer(200, b'{"mark": 42}')

        def do_PUT(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(405, b'{"status": 405, "detail": "method not allowed"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def rows_of(engine, count: int) -> list[dict]:
    """Base A's first rows, as the batch reads them."""
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(f"SELECT * FROM employees ORDER BY id LIMIT {count}"))]


def libpq_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "changes", [{"updates": 40, "inserts": 15, "deletes": 8}, {"deletes": 8}], ids=["changes", "deletes-only"]
)
def test_a_base_b_restored_from_a_backup_is_found_and_mended_by_the_next_run(
    base_a, base_a_engine, base_b, tmp_path, caplog, changes
):
    """Found from outside: Base B restored from a dump taken before the last runs: every later run
    was green while the rows written after the dump stayed missing, old or undeleted (the watermark
    was past them) until the day's key comparison. Deletes alone too."""
    dump = tmp_path / "base_b.dump"
    api, store = base_b.api(), MemoryStateStore()
    install_delete_log(base_a_engine, IDENTITY_MAPPING, ["employees"])  # no key comparison every run
    generate.seed(base_a_engine, "employees", 300, seed_value=40)
    run_once(base_a, api, store)
    pg_dump = require_program("/usr/bin/pg_dump", "the restore test takes a real dump")
    subprocess.run([pg_dump, "-Fc", "-f", str(dump), libpq_url(base_b.database_url)], check=True)
    generate.churn(base_a_engine, "employees", **changes, seed_value=41)
    run_once(base_a, api, store)
    assert_in_sync(base_a_engine, base_b.database_url, "employees")

    pg_restore = require_program("/usr/bin/pg_restore", "the restore test restores a real dump")
    restore = [pg_restore, "--clean", "--if-exists", "--single-transaction", "-d", libpq_url(base_b.database_url)]
    subprocess.run([*restore, str(dump)], check=True)
    # Writes after the restore (the events path's, a look-back's) must not hide it (a counter's would).
    api.bulk_upsert("employees", encode([to_record("employees", row) for row in rows_of(base_a_engine, 20)]))
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        deleted = run_once(base_a, api, store)
    assert "BASE B WENT BACK" in caplog.text
    assert (deleted.get("resent_behind", 0) > 0) == ("updates" in changes), deleted
    assert deleted["deleted"] == 8, deleted
    assert_in_sync(base_a_engine, base_b.database_url, "employees")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        run_once(base_a, api, store)  # the commit recorded the mark again: no comparison now
    assert "BASE B WENT BACK" not in caplog.text


def test_a_restore_between_the_deletes_and_the_commit_is_found_by_the_next_run(
    base_a, base_a_engine, base_b, tmp_path, caplog
):
    """Found from outside: Base B restored after propagate_deletes read its mark and before the
    commit: the commit's new mark hid the restore, and rows written after the backup stayed old
    with every later run green (until the day's key comparison)."""
    dump = tmp_path / "base_b.dump"
    api, store = base_b.api(), MemoryStateStore()
    install_delete_log(base_a_engine, IDENTITY_MAPPING, ["employees"])
    generate.seed(base_a_engine, "employees", 300, seed_value=40)
    run_once(base_a, api, store)
    pg_dump = require_program("/usr/bin/pg_dump", "the restore test takes a real dump")
    subprocess.run([pg_dump, "-Fc", "-f", str(dump), libpq_url(base_b.database_url)], check=True)
    generate.churn(base_a_engine, "employees", updates=40, inserts=15, deletes=8, seed_value=41)
    run_once(base_a, api, store)
    generate.churn(base_a_engine, "employees", updates=5, seed_value=42)

    mark = sync.mark_run("employees", api, store)
    report = sync.load("employees", base_a, api, store, SETTINGS)
    deleted = sync.propagate_deletes("employees", base_a, api, store, SETTINGS, compare_keys=False, run_mark=mark)
    sync.verify("employees", base_a, api, report, SETTINGS)
    restore_base_b(base_b, dump)
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        sync.commit("employees", store, report, {"deletes": deleted.to_json()}, api, mark)
    assert "BASE B WENT BACK DURING THIS RUN" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        run_once(base_a, api, store)
    assert "BASE B WENT BACK:" in caplog.text
    assert_in_sync(base_a_engine, base_b.database_url, "employees")


class FailingOnce(MemoryStateStore):
    """The Airflow metadata database away for the first write of a commit (a blip, a worker lost)."""

    def __init__(self):
        super().__init__()
        self.fail = False

    def set(self, entity, cursor, stats):
        if self.fail:
            self.fail = False
            raise TransientError("the metadata database is away")
        super().set(entity, cursor, stats)


def test_a_commit_retried_after_writing_its_mark_is_no_restore(base_a, base_a_engine, base_b, caplog):
    """Review: a commit task whose Base B mark was written and whose Variable was not, tried again,
    took its own mark for a restore: a false BASE B WENT BACK, and the next run compared every key."""
    api, store = base_b.api(), FailingOnce()
    generate.seed(base_a_engine, "employees", 50, seed_value=40)
    run_once(base_a, api, store)
    mark = sync.mark_run("employees", api, store)
    report = sync.load("employees", base_a, api, store, SETTINGS)
    deleted = sync.propagate_deletes("employees", base_a, api, store, SETTINGS, compare_keys=False, run_mark=mark)
    sync.verify("employees", base_a, api, report, SETTINGS)
    stats = {"run_id": "scheduled__2026-12-07T10:00:00+00:00", "deletes": deleted.to_json()}
    store.fail = True
    with pytest.raises(TransientError):
        sync.commit("employees", store, report, stats, api, mark)
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        sync.commit("employees", store, report, stats, api, mark)  # Airflow's retry of the task
        run_once(base_a, api, store)
    assert "WENT BACK" not in caplog.text


def test_a_retried_load_and_a_failed_run_leave_marks_the_next_run_takes_for_no_restore(
    base_a, base_a_engine, base_b, caplog
):
    """The run's mark is written before its load: a load task tried again finds the mark of its
    first try, and the run after a failed one (no commit) the failed run's: neither is a restore."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 50, seed_value=40)
    run_once(base_a, api, store)
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        first = sync.mark_run("employees", api, store)  # its load failed after it: Airflow tries again
        again = sync.mark_run("employees", api, store)
        assert first.went_back is None and again.went_back is None and first.token != again.token
        generate.churn(base_a_engine, "employees", updates=5, seed_value=41)
        run_once(base_a, api, store)  # the next run, after the run failed for good
    assert "WENT BACK" not in caplog.text
    assert_in_sync(base_a_engine, base_b.database_url, "employees")


def test_a_cleared_run_run_again_writes_another_mark(base_a, base_a_engine, base_b, tmp_path, caplog):
    """Review: one mark per run id let a cleared run, run again, write the mark of its first try: a
    backup taken between the two held it, and its restore went unseen. Each try marks anew."""
    dump = tmp_path / "base_b.dump"
    api, store = base_b.api(), MemoryStateStore()
    install_delete_log(base_a_engine, IDENTITY_MAPPING, ["employees"])
    generate.seed(base_a_engine, "employees", 100, seed_value=40)

    def run(run_id: str) -> None:
        mark = sync.mark_run("employees", api, store)
        report = sync.load("employees", base_a, api, store, SETTINGS)
        deleted = sync.propagate_deletes("employees", base_a, api, store, SETTINGS, compare_keys=False, run_mark=mark)
        sync.verify("employees", base_a, api, report, SETTINGS)
        sync.commit("employees", store, report, {"run_id": run_id, "deletes": deleted.to_json()}, api, mark)

    run("manual__r")
    dump_base_b(base_b, dump)
    generate.churn(base_a_engine, "employees", updates=20, inserts=5, deletes=4, seed_value=41)
    run("manual__r")  # cleared and run again: same run id
    restore_base_b(base_b, dump)
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        run("manual__s")
    assert "BASE B WENT BACK:" in caplog.text
    assert_in_sync(base_a_engine, base_b.database_url, "employees")


def test_a_backup_taken_after_the_last_commit_restored_during_a_run_is_found_and_mended(
    base_a, base_a_engine, base_b, tmp_path, caplog
):
    """Found from outside: a backup taken after the last commit holds that commit's mark. Restored
    while a run went on, after its load, deletes and verification, it took back the rows they wrote
    and deleted; the run committed its watermark and delete log position past them, the mark the
    same as the deletes read, and every later run was green until the day's key comparison."""
    dump = tmp_path / "base_b.dump"
    api, store = base_b.api(), MemoryStateStore()
    install_delete_log(base_a_engine, IDENTITY_MAPPING, ["employees"])  # no key comparison every run
    generate.seed(base_a_engine, "employees", 300, seed_value=40)
    run_once(base_a, api, store)
    dump_base_b(base_b, dump)  # after the last commit: it holds that commit's mark
    generate.churn(base_a_engine, "employees", updates=40, inserts=15, deletes=8, seed_value=41)

    mark = sync.mark_run("employees", api, store)  # the load task, before its first write
    report = sync.load("employees", base_a, api, store, SETTINGS)
    deleted = sync.propagate_deletes("employees", base_a, api, store, SETTINGS, compare_keys=False, run_mark=mark)
    assert deleted.deleted == 8
    sync.verify("employees", base_a, api, report, SETTINGS)
    restore_base_b(base_b, dump)  # the load's rows and the deletes taken back
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        sync.commit("employees", store, report, {"deletes": deleted.to_json()}, api, mark)
    assert "BASE B WENT BACK DURING THIS RUN" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="base_sync"):
        mended = run_once(base_a, api, store)
    assert "BASE B WENT BACK:" in caplog.text
    assert mended["deleted"] == 8 and mended["resent_behind"] > 0, mended
    assert_in_sync(base_a_engine, base_b.database_url, "employees")


def test_a_commit_that_writes_no_mark_keeps_the_last_one_so_a_restore_is_found_again():
    """Found in review: a run that found a restore but whose deletes were withheld (a rejected mass
    delete) wrote a fresh mark, and the next run saw none of the restore it had not mended."""
    store = MemoryStateStore()
    store.set("employees", None, {sync.BASE_B_MARK: "before-the-restore"})
    report = sync.LoadReport("employees", None, None, None, None, {}, 0.0)
    sync.commit("employees", store, report, {"deletes": {}})  # no api: the DAG's commit after withheld deletes
    assert store.last_stats("employees")[sync.BASE_B_MARK] == "before-the-restore"


def test_an_api_from_before_the_token_marks_keeps_none(scripted_mark_api):
    """Found in review: an API serving the older `{"mark": n}` form, without PUT, failed every commit
    (405, terminal) and every delete check (KeyError)."""
    api = BaseBApi(scripted_mark_api, "token")
    assert api.sync_mark("employees") == (False, None)
    assert api.set_sync_mark("employees", "abc") is False
    assert sync.mark_run("employees", api, MemoryStateStore()) == RunMark(None)  # the load writes none
