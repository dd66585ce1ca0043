"""A run given a future logical date holds the batch DAG (max_active_runs=1) only until its
dagrun_timeout (SYNC_RUN_TIMEOUT_HOURS): the scheduler fails it, and the run queued behind it syncs.

Found from outside: `POST .../dagRuns {"logical_date": "2030-01-01T00:00:00Z"}` answered 200, the run
showed `running` without starting a task ("Logical date ... is in the future"), and every later run
queued behind it, for years, with no error anywhere. Airflow as users run it, driven through its REST API.
"""

from __future__ import annotations

import time

import pytest
import requests

from base_sync.demo import generate
from testbed.airflow import Airflow, sync_connections
from tests.sync.conftest import assert_in_sync, new_base_a

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]
DAG = "base_a_to_base_b"
ARTICLES = {"entities": ["articles"]}
TIMEOUT_SECONDS = 180  # SYNC_RUN_TIMEOUT_HOURS below: room for the run queued behind to finish in it

base_a_engine = pytest.fixture(new_base_a, scope="module", name="base_a_engine")


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory, base_a_engine, api_process):
    """Airflow's services with the DAG unpaused, and a session with an admin's token on its REST API."""
    home = tmp_path_factory.mktemp("airflow")
    settings = {
        "SYNC_RUN_TIMEOUT_HOURS": str(TIMEOUT_SECONDS / 3600),
        # The run timeout must outlast an approval's wait and a task's timeout: short ones here.
        "SYNC_MASS_DELETE_APPROVAL_HOURS": "0.01",
        "SYNC_TASK_TIMEOUT_HOURS": "0.03",
        "SYNC_SCHEDULE": "0 0 1 1 *",  # only the runs the test triggers
        "SYNC_LOOKBACK_SECONDS": "0",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    airflow = Airflow(home, sync_connections(base_a_engine.url, api_process.url, api_process.token), settings)
    with airflow.services(home) as url:
        airflow.wait_for_dag(DAG)
        session = requests.Session()
        token = session.get(f"{url}/auth/token", timeout=30).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        answer = session.patch(f"{url}/api/v2/dags/{DAG}", json={"is_paused": False}, timeout=60)
        assert answer.status_code == 200, answer.text
        yield airflow, f"{url}/api/v2/dags/{DAG}", session


def _trigger(airflow_api, logical_date: str | None) -> str:
    _, dag, session = airflow_api
    answer = session.post(f"{dag}/dagRuns", json={"logical_date": logical_date, "conf": ARTICLES}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["dag_run_id"]


def _state(airflow_api, run_id: str) -> str:
    _, dag, session = airflow_api
    answer = session.get(f"{dag}/dagRuns/{run_id}", timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["state"]


def _wait_for(airflow_api, run_id: str, states: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (state := _state(airflow_api, run_id)) not in states:
        assert time.monotonic() < deadline, f"{run_id} still {state} after {timeout} s"
        time.sleep(2)
    return state


def test_a_run_with_a_future_logical_date_times_out_and_the_next_run_syncs(airflow_api, base_a_engine, api_process):
    airflow, dag, session = airflow_api
    generate.seed(base_a_engine, "articles", 30, seed_value=71)
    stuck = _trigger(airflow_api, "2030-01-01T00:00:00Z")
    _wait_for(airflow_api, stuck, {"running"}, timeout=120)
    started = time.monotonic()
    answer = session.get(f"{dag}/dagRuns/{stuck}/taskInstances/articles.plan_partitions/dependencies", timeout=60)
    assert "is in the future" in answer.text, answer.text

    behind = _trigger(airflow_api, None)
    time.sleep(20)
    assert _state(airflow_api, behind) == "queued", "max_active_runs=1: it waits behind the stuck run"
    assert _state(airflow_api, stuck) == "running"

    assert _wait_for(airflow_api, stuck, {"failed", "success"}, timeout=TIMEOUT_SECONDS + 120) == "failed"
    assert time.monotonic() - started > TIMEOUT_SECONDS - 30, "failed by the timeout, not by anything sooner"
    scheduler = (airflow.home / "airflow-scheduler.log").read_text()
    assert f"Run {stuck} of {DAG} has timed-out" in scheduler
    assert airflow.task_state(DAG, stuck, "articles.load") == "skipped"  # never ran: nothing half done

    assert _wait_for(airflow_api, behind, {"failed", "success"}, timeout=TIMEOUT_SECONDS) == "success"
    assert assert_in_sync(base_a_engine, api_process.database_url, "articles") == 30
