"""Fault: the sync task's process is SIGKILLed half way; Base A changes before the retry.

`tests/sync/test_batch_dag.py::test_a_run_killed_half_way_is_completed_by_the_next` already kills a
real Airflow run (`airflow dags test`, its whole process group) during its load, on a quiet Base A.
The variants here add what it leaves out, without Airflow so they take seconds: a kill after the load
and its verification but before the watermark commit, and Base A changing (updates, inserts, deletes)
between the kill and the retry.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from base_sync.demo import generate
from base_sync.source import BaseA
from testbed.servers import REPO
from tests.faults.helpers import (
    FileStateStore,
    assert_no_duplicate_keys,
    count_synced,
    newest_cursor,
    wait_until,
)
from tests.sync.conftest import assert_in_sync, source_rows, synced_rows

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]


class SyncTask:
    def __init__(self, base_a_engine, base_b, tmp_path):
        self.args = [
            base_a_engine.url.render_as_string(hide_password=False),
            base_b.url,
            base_b.token,
            str(tmp_path / "state.json"),
            "employees",
        ]
        self.store = FileStateStore(tmp_path / "state.json")
        self.tmp_path = tmp_path
        self.runs = 0

    def start(self, *options: str) -> tuple[subprocess.Popen, object]:
        self.runs += 1
        log_path = self.tmp_path / f"run-{self.runs}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.sync_worker", *self.args, *options],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return process, log_path

    def run(self) -> dict:
        """A run to its end; the counts of each step it printed."""
        process, log_path = self.start()
        assert process.wait(120) == 0, log_path.read_text()[-3000:]
        steps = {}
        for line in log_path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name in ("loaded", "deletes", "verified", "committed"):
                steps[name] = json.loads(value)
        return steps


@pytest.mark.parametrize("when", ["mid-load", "after-verify-before-commit"])
def test_a_sync_task_killed_half_way_is_completed_by_the_retry(when, base_a_engine, base_b, tmp_path):
    task = SyncTask(base_a_engine, base_b, tmp_path)
    generate.seed(base_a_engine, "employees", 1500, seed_value=41)
    task.run()
    verified = task.store.get("employees")
    assert verified == newest_cursor(base_a_engine, "employees")

    generate.seed(base_a_engine, "employees", 2500, seed_value=42)
    generate.churn(base_a_engine, "employees", updates=300, seed_value=43)
    if when == "mid-load":
        process, log_path = task.start("--pace", "0.05")  # ~27 chunks of 100 rows, 50 ms apart
        wait_until(lambda: count_synced(base_b.database_url, "employees") >= 2500, 30, "the load to be half way")
    else:
        process, log_path = task.start("--pause-before-commit", "60")
        wait_until(lambda: "verified" in log_path.read_text(), 60, "the run to verify its window")
    process.send_signal(signal.SIGKILL)
    process.wait(10)

    assert "committed" not in log_path.read_text()
    assert task.store.get("employees") == verified, "the watermark moved without a verified, committed run"
    if when == "mid-load":
        assert count_synced(base_b.database_url, "employees") < 4000, "the kill did not land half way"

    # Base A moves on while the task is down: rows of the killed window change again, some go away.
    generate.churn(base_a_engine, "employees", updates=200, inserts=50, deletes=40, seed_value=44)
    # Deleted in Base A after Base B got them (the others were deleted before the killed load reached them).
    to_delete = set(synced_rows(base_b.database_url, "employees")) - set(source_rows(base_a_engine, "employees"))
    window = BaseA(base_a_engine).window_digest("employees", verified, newest_cursor(base_a_engine, "employees"))
    retry = task.run()
    assert retry["loaded"]["extracted"] == window.count  # from the old watermark: nothing skipped
    assert retry["loaded"].get("stale", 0) == retry["loaded"].get("rejected", 0) == 0
    assert retry["deletes"]["deleted"] == len(to_delete) > 0
    assert retry["verified"]["repaired"] == 0
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 4010
    assert_no_duplicate_keys(base_b.database_url, "employees")
    assert task.store.get("employees") == newest_cursor(base_a_engine, "employees")
