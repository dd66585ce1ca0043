"""The circuit breaker in a real Airflow 3: a mass delete parks the run on the approval task
(`awaiting_input`) until an operator answers through Airflow's REST API, as the UI does.

One story on one Base A (MariaDB) and one Base B (the API process on PostgreSQL), in order.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import requests
from sqlalchemy import text

from base_sync.demo import generate
from base_sync.state import HELD_DELETES_PREFIX, VARIABLE_PREFIX
from testbed.airflow import Airflow, error_lines, sync_connections
from tests.sync.conftest import assert_in_sync, new_base_a, synced_rows

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]
DAG = "base_a_to_base_b"
APPROVAL = "articles.approve_mass_delete"
ARTICLES = {"entities": ["articles"]}


# One Base A for the module's Airflow (its connection is set when Airflow starts).
base_a_engine = pytest.fixture(new_base_a, scope="module", name="base_a_engine")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, base_a_engine, api_process) -> Airflow:
    connections = sync_connections(base_a_engine.url, api_process.url, api_process.token)
    # 400 articles: the limit is max(10, 5% of the synced rows) = 20.
    settings = {"SYNC_LOOKBACK_SECONDS": "0", "SYNC_MASS_DELETE_MIN_ROWS": "10", "SYNC_MASS_DELETE_SHARE": "0.05"}
    return Airflow(tmp_path_factory.mktemp("airflow"), connections, settings)


@pytest.fixture(scope="module")
def airflow_api(airflow, tmp_path_factory):
    """The api-server on the same metadata database, and a session with an admin's token."""
    with airflow.api_server(tmp_path_factory.mktemp("api-server") / "api-server.log") as url:
        session = requests.Session()
        token = session.get(f"{url}/auth/token", timeout=30).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        yield url, session


def stats(airflow: Airflow, entity: str) -> dict:
    return airflow.variable(VARIABLE_PREFIX + entity)["stats"]


def _live(api_process) -> int:
    return len(synced_rows(api_process.database_url, "articles"))


def _awaiting_approval(airflow: Airflow, run, log_path, timeout: float = 240) -> str:
    """The run id once the approval task waits for a human (`awaiting_input`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.poll() is None, log_path.read_text()[-4000:]
        with sqlite3.connect(airflow.home / "airflow.db") as conn:
            row = conn.execute(
                "SELECT run_id, state FROM task_instance WHERE dag_id = ? AND task_id = ? ORDER BY start_date DESC",
                (DAG, APPROVAL),
            ).fetchone()
        if row and row[1] == "awaiting_input":
            return row[0]
        time.sleep(0.5)
    raise AssertionError(f"the approval task never waited for input:\n{log_path.read_text()[-4000:]}")


def _answer(airflow_api, run_id: str, option: str, params_input: dict | None = None) -> dict:
    url, session = airflow_api
    path = f"{url}/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{APPROVAL}/-1/hitlDetails"
    detail = session.get(path, timeout=30)
    assert detail.status_code == 200, detail.text
    body = {"chosen_options": [option]} | ({"params_input": params_input} if params_input else {})
    answer = session.patch(path, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return detail.json()


def _finished(run, log_path, timeout: float = 240) -> str:
    run.wait(timeout)
    log = log_path.read_text()
    assert run.returncode == 0 and "state=success" in log and "DagRun Finished" in log, log[-6000:]
    return log


def test_initial_load_and_deletes_within_the_budget_need_no_approval(airflow, base_a_engine, api_process):
    generate.seed(base_a_engine, "articles", 400, seed_value=50)
    generate.seed(base_a_engine, "employees", 20, seed_value=51)
    airflow.test_dag(DAG)
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id <= 5"))
    airflow.test_dag(DAG, ARTICLES)
    run = stats(airflow, "articles")
    assert run["deletes"]["deleted"] == 5 and run["deletes"]["planned"]["within_budget"]
    assert assert_in_sync(base_a_engine, api_process.database_url, "articles") == 395


def test_a_mass_delete_waits_for_the_operator_and_a_rejection_deletes_nothing(
    airflow, airflow_api, base_a_engine, api_process, tmp_path
):
    before = stats(airflow, "articles")["deletes"]
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id > 45"))  # 355 of 395
        conn.execute(text("UPDATE articles SET title = 'changed' WHERE id = 6"))
    log_path = tmp_path / "rejected.log"
    run = airflow.start_dag(DAG, log_path, ARTICLES)
    run_id = _awaiting_approval(airflow, run, log_path)
    assert airflow.task_state(DAG, run_id, "articles.propagate_deletes") is None  # not yet decided
    assert _live(api_process) == 395, "nothing is deleted while the approval waits"
    detail = _answer(airflow_api, run_id, "Reject")
    assert detail["subject"].startswith("articles: delete 355 rows in Base B? (limit 20)")
    assert "355 rows to delete" in detail["body"] and "89.9% of the 395 synced rows" in detail["body"]
    log = _finished(run, log_path)
    assert airflow.task_state(DAG, run_id, "articles.propagate_deletes") == "skipped"
    # Nor an error line for the skipped deletes (the commit resolving their result logged one),
    # nor for the entity the run leaves out.
    assert error_lines(log) == [], "\n".join(error_lines(log))
    assert _live(api_process) == 395
    # The load's window was verified and committed; the deletes wait where they were.
    run_stats = stats(airflow, "articles")
    assert run_stats["run_id"] == run_id and run_stats["load"]["counts"]["updated"] == 1
    assert run_stats["deletes"]["deleted"] == 0 and run_stats["deletes"]["withheld"]["total"] == 355
    assert run_stats["deletes"]["log_position"] == before["log_position"]
    assert synced_rows(api_process.database_url, "articles")[6][1] == "changed"


def test_an_approval_in_airflow_lets_the_run_delete(airflow, airflow_api, base_a_engine, api_process, tmp_path):
    log_path = tmp_path / "approved.log"
    run = airflow.start_dag(DAG, log_path, ARTICLES)
    run_id = _awaiting_approval(airflow, run, log_path)
    detail = _answer(airflow_api, run_id, "Approve", {"rows": 355})  # the form's field, as the UI sends it
    assert detail["params"]["rows"]["value"] == 355, detail["params"]
    log = _finished(run, log_path)
    assert airflow.task_state(DAG, run_id, "articles.propagate_deletes") == "success"
    assert error_lines(log) == [], "\n".join(error_lines(log))
    assert stats(airflow, "articles")["deletes"]["deleted"] == 355
    assert assert_in_sync(base_a_engine, api_process.database_url, "articles") == 40


def test_the_approve_mass_delete_param_lets_a_manual_run_delete_without_asking(airflow, base_a_engine, api_process):
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id > 15"))  # 30 of 40: over max(10, 2)
    log = airflow.test_dag(DAG, {**ARTICLES, "approve_mass_delete": True})
    assert "approved by this run's approve_mass_delete param" in log
    run = stats(airflow, "articles")
    assert airflow.task_state(DAG, run["run_id"], APPROVAL) == "skipped"  # no one was asked
    assert run["deletes"]["deleted"] == 30 and not run["deletes"]["planned"]["within_budget"]
    assert assert_in_sync(base_a_engine, api_process.database_url, "articles") == 10


def test_a_run_emits_an_asset_event_only_for_the_entities_it_changed(airflow, airflow_api, base_a_engine):
    """Through the alias base_b.changes: a DAG scheduled on base_b.articles runs when its rows changed."""
    url, session = airflow_api

    def events() -> list[dict]:
        answer = session.get(f"{url}/api/v2/assets/events", params={"source_dag_id": DAG, "limit": 100}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["asset_events"]

    before = events()
    assert {e["asset_id"] for e in before} and all(e["extra"]["changed_rows"] > 0 for e in before)
    airflow.test_dag(DAG, ARTICLES)  # nothing changed in Base A
    assert len(events()) == len(before)
    with base_a_engine.begin() as conn:
        conn.execute(text("UPDATE articles SET title = 'again' WHERE id IN (6, 7)"))
    airflow.test_dag(DAG, ARTICLES)
    (new,) = [e for e in events() if e["id"] not in {b["id"] for b in before}]
    assert new["extra"]["changed_rows"] == 2 and new["uri"] == "base-b://api/articles"


def test_while_the_events_path_holds_deletes_a_few_deletes_ask_and_the_approval_settles_them(
    airflow, airflow_api, base_a_engine, api_process, tmp_path
):
    """The events path's holds as its task writes them (a Variable each, and the one an earlier
    version kept): the batch run's 2 deletes, within the limit of 10, wait for approval; approved,
    they go and the holds it saw are settled; another entity's, whose name starts alike, stays."""
    bare = HELD_DELETES_PREFIX + "articles"
    holds = {bare: 20, f"{bare}.20260101T000100.000000Z-a1b2c3": 11, f"{bare}_archive.20260101T000000.000000Z-d4": 5}
    for name, count in holds.items():
        held = {"held": count, "since": "2026-01-01T00:00:00+00:00", "last": "2026-01-01T00:01:00+00:00"}
        airflow.cli("variables", "set", name, json.dumps(held))
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id IN (8, 9)"))
    log_path = tmp_path / "held.log"
    run = airflow.start_dag(DAG, log_path, ARTICLES)
    run_id = _awaiting_approval(airflow, run, log_path)
    assert _live(api_process) == 10
    detail = _answer(airflow_api, run_id, "Approve", {"rows": 2})
    assert "the events path holds 31 deletes of articles" in detail["body"], detail["body"]
    _finished(run, log_path)
    assert stats(airflow, "articles")["deletes"]["deleted"] == 2
    assert [airflow.variable(name) is None for name in holds] == [True, True, False]
    assert assert_in_sync(base_a_engine, api_process.database_url, "articles") == 8
