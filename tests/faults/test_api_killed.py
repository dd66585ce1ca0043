"""Fault: the REST API is SIGKILLed (master and workers) while a batch load streams chunks to it."""

from __future__ import annotations

import gc

import MySQLdb
import pytest

from base_sync import sync
from base_sync.api_client import ApiError, BaseBApi
from base_sync.demo import generate
from base_sync.settings import SyncSettings
from base_sync.source import BaseA
from base_sync.state import MemoryStateStore
from testbed.servers import free_port
from tests.faults.helpers import (
    assert_no_duplicate_keys,
    count_synced,
    in_thread,
    newest_cursor,
    wait_until,
)
from tests.sync.conftest import assert_in_sync
from tests.sync.test_sync_steps import run_once

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]
# Small chunks: the window below is some 33 requests, so the kill lands between two of them or inside one.
SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=100, bucket_size=1000)


def test_api_killed_mid_load_fails_the_load_and_the_retry_converges(base_a_engine, paced_base_a, killable_api):
    api = killable_api.start()
    store = MemoryStateStore()
    generate.seed(base_a_engine, "employees", 1000, seed_value=31)
    run_once("employees", BaseA(base_a_engine), api.client(), store, SETTINGS)
    verified = store.get("employees")

    # The next window: new rows and updates of synced ones, read slowly enough to be cut half way.
    generate.seed(base_a_engine, "employees", 3000, seed_value=32)
    generate.churn(base_a_engine, "employees", updates=400, seed_value=33)
    window = BaseA(base_a_engine).window_digest("employees", verified, newest_cursor(base_a_engine, "employees")).count
    assert window > 3000  # the new rows, and the updates that hit rows synced before
    paced = paced_base_a(0.05)
    # No retries: the load must fail, not wait for an API that is gone.
    load = in_thread(lambda: sync.load("employees", paced, api.client(retries=0), store, SETTINGS), "load")
    wait_until(lambda: count_synced(api.database_url, "employees") >= 2000, 30, "the load to be half way")
    api.kill()

    error = load.exception(timeout=30)
    assert isinstance(error, ApiError) and error.status == 0, f"not a clear API error: {error!r}"
    assert "unreachable" in str(error)
    paced.close()  # the failed load's traceback keeps its Base A read open (the test below): end it
    assert store.get("employees") == verified, "the watermark moved without a verified load"
    left_behind = count_synced(api.database_url, "employees")
    assert 2000 <= left_behind < 4000, "the kill did not land half way"

    api.start()  # same database, same address
    retry = run_once("employees", BaseA(base_a_engine), api.client(), store, SETTINGS)
    load_counts = retry["load"]
    assert load_counts["extracted"] == window  # the whole window again: the watermark had not moved
    assert sum(load_counts.get(k, 0) for k in ("inserted", "updated", "unchanged")) == window
    assert load_counts.get("stale", 0) == load_counts.get("rejected", 0) == 0
    assert retry["verify"]["repaired"] == 0
    assert assert_in_sync(base_a_engine, api.database_url, "employees") == 4000
    assert_no_duplicate_keys(api.database_url, "employees")
    assert store.get("employees") == newest_cursor(base_a_engine, "employees")


def test_a_failed_load_releases_its_base_a_read_at_once(base_a_engine):
    generate.seed(base_a_engine, "employees", 2000, seed_value=34)
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the first push fails
    with pytest.raises(ApiError) as failed:  # kept, as a caller that logs or re-raises it later keeps it
        sync.load("employees", BaseA(base_a_engine), BaseBApi(gone, "token", retries=0), MemoryStateStore(), SETTINGS)
    try:
        url = base_a_engine.url
        ddl = MySQLdb.connect(host=url.host, port=url.port or 3306, user=url.username, database=url.database)
        try:
            cursor = ddl.cursor()
            cursor.execute("SET SESSION lock_wait_timeout = 1")
            # Blocked while the abandoned read holds its metadata lock (MariaDB error 1205 after 1 s).
            cursor.execute("ALTER TABLE employees COMMENT 'a DDL the failed load must not block'")
        finally:
            ddl.close()
    finally:
        del failed
        gc.collect()  # release it for the teardown (DROP DATABASE) either way
