"""A connection that is not there is a retry that names it and says what to do (`TransientError`:
Airflow 3.3 also says "isn't defined" when its secrets backend or execution API failed for a moment);
a missing `base_b_api` or `base_a_kafka` raised a bare AirflowNotFoundException. One whose
AIRFLOW_CONN_* variable Airflow could not read fails at once (`ConfigurationError`). No server: the
lookup comes before any connection is made."""

from __future__ import annotations

import inspect
import json
import os

import pytest

from base_sync import airflow_tasks
from base_sync.errors import ConfigurationError, TransientError
from base_sync.settings import SyncSettings

GOOD_BASE_A = {"conn_type": "mysql", "host": "127.0.0.1", "port": 9, "login": "root", "schema": "base_a"}


@pytest.fixture(autouse=True)
def no_connections(monkeypatch, tmp_path):
    """No AIRFLOW_CONN_* from the caller's environment, and an Airflow home of the test's own."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    for name in [name for name in os.environ if name.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("conn_id", ["base_a", "base_b_api", "base_a_kafka"])
def test_a_missing_connection_is_a_retry_naming_it_and_what_to_do(conn_id):
    with pytest.raises(TransientError) as missing:
        airflow_tasks._connection(conn_id)
    said = str(missing.value)
    assert said.startswith(f"Airflow connection {conn_id!r}: ") and "isn't defined: define it (an AIRFLOW_CONN_" in said
    assert not isinstance(missing.value, ConfigurationError)


def test_a_missing_api_connection_in_a_task_says_so(monkeypatch):
    """Base A's connection is there: the API's lookup is what fails."""
    monkeypatch.setenv("AIRFLOW_CONN_BASE_A", json.dumps(GOOD_BASE_A))
    with pytest.raises(TransientError, match="'base_b_api'"):
        airflow_tasks._api(SyncSettings(), "events")


def test_every_connection_is_looked_up_through_the_one_helper():
    """`apply_changes` looked the Kafka connection up itself, outside the helper; a task needs a DAG run
    to call, so the source says it: one lookup, in `_connection`."""
    source = inspect.getsource(airflow_tasks)
    assert source.count("BaseHook.get_connection(") == 1
    assert "BaseHook.get_connection(" in inspect.getsource(airflow_tasks._connection)


@pytest.mark.parametrize("conn_id", ["base_a", "base_b_api"])
def test_a_connection_variable_airflow_cannot_read_is_named_as_set_but_invalid(monkeypatch, conn_id):
    """An unencoded password in a URI (a # starts the fragment): Airflow says only that the connection
    "isn't defined", though the variable is there; the reason says what to fix."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", "mysql://sync:pa#ss/w@db:3306/base_a")
    with pytest.raises(ConfigurationError) as refused:
        if conn_id == "base_a":
            with airflow_tasks._connected(SyncSettings(), "articles"):
                pass
        else:
            airflow_tasks._api(SyncSettings(), "batch")
    said = str(refused.value)
    assert f"Airflow connection {conn_id!r}: AIRFLOW_CONN_{conn_id.upper()} is set but is no valid" in said, said
    assert "percent-encode" in said, said
