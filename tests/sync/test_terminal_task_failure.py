"""A terminal error fails a real Airflow task at once: no retry, the reason in the log.

The batch DAG runs against the real API with a token it refuses (403, terminal); the DAG gives
every task 3 retries, so a task that stays at try 1 and `failed` was not retried.
"""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from base_sync.demo import generate
from base_sync.source import source_engine
from base_sync.source_schema import create_schema
from testbed.airflow import Airflow, sync_connections
from testbed.servers import REPO, venv_bin
from tests.sync.conftest import synced_rows

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def refused_airflow(tmp_path, make_mariadb_database, api_process) -> Airflow:
    engine = source_engine(make_mariadb_database())
    create_schema(engine)
    generate.seed(engine, "articles", 20, seed_value=3)
    url = engine.url
    engine.dispose()
    connections = sync_connections(url, api_process.url, "not-the-token")
    return Airflow(tmp_path / "airflow", connections)


def test_a_refused_token_fails_the_first_task_at_its_first_try_with_the_reason(refused_airflow):
    airflow = refused_airflow
    result = subprocess.run(
        [venv_bin("airflow"), "dags", "test", "base_a_to_base_b", "-c", '{"entities": ["articles"]}'],
        env=airflow.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,  # with retries (30 s back-off, doubling) the run would outlast this
        check=False,
    )
    log = result.stdout + result.stderr
    with sqlite3.connect(airflow.home / "airflow.db") as conn:
        state, try_number = conn.execute(
            # The first task to connect checks the token: no run goes on with one the API refuses.
            "SELECT state, try_number FROM task_instance WHERE task_id = 'articles.plan_partitions'"
        ).fetchone()
    assert (state, try_number) == ("failed", 1), log[-4000:]
    assert "AirflowFailException" in log and "ApiRefused" in log and "answered 403" in log, log[-4000:]


def test_a_task_run_alone_without_its_upstream_result_fails_at_once_before_writing(
    tmp_path, make_mariadb_database, base_b
):
    """Found from outside: `airflow tasks test ... articles.load` (or a load marked success by hand,
    leaving verify no result) re-sent every row, then failed with a TypeError, retried four times."""
    engine = source_engine(make_mariadb_database())
    create_schema(engine)
    generate.seed(engine, "articles", 20, seed_value=3)
    url = engine.url
    engine.dispose()
    airflow = Airflow(tmp_path / "airflow", sync_connections(url, base_b.url, base_b.token))
    upstream = {
        "articles.load": "plan_partitions",
        "articles.verify": "load",
        "articles.approve_mass_delete": "check_deletes",
    }
    for task_id, clear in upstream.items():
        result = airflow.cli("tasks", "test", "base_a_to_base_b", task_id, check=False, timeout=150)
        log = result.stdout + result.stderr
        assert "AirflowFailException" in log and "left no result" in log, log[-4000:]
        assert f"clear articles.{clear}" in log, log[-4000:]
    assert synced_rows(base_b.database_url, "articles") == {}  # nothing was sent
