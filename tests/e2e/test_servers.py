"""`make up` once more on real servers: Base A on MariaDB (with its binlog, read by the CDC relay)
and Base B on PostgreSQL, set the way the README tells a user to."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import text

from base_sync.source import source_engine
from testbed.platform import Platform, base_a_versions, base_b_versions, running_platform, wait_for
from testbed.servers import binlog_mariadb

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mariadb]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, make_postgres_database) -> Iterator[Platform]:
    base_b = make_postgres_database()
    with binlog_mariadb(tmp_path_factory.mktemp("mariadb")) as port:
        name = f"base_a_{uuid.uuid4().hex[:8]}"
        admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{port}/mysql")
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        connection = {"conn_type": "mysql", "host": "127.0.0.1", "port": port, "login": "root", "schema": name}
        with running_platform(
            tmp_path_factory.mktemp("platform"),
            BASE_A_URL=f"mysql+mysqldb://root@127.0.0.1:{port}/{name}",
            AIRFLOW_CONN_BASE_A=json.dumps(connection),
            API_DATABASE_URL=base_b,
            SYNC_SCHEDULE="@once",  # the batch DAG runs only when make up triggers it
        ) as running:
            yield running


def test_make_up_synced_mariadb_into_postgresql(platform):
    for entity in ("articles", "employees"):
        assert base_b_versions(platform, entity) == base_a_versions(platform.base_a_url, entity), entity


def test_a_change_committed_in_mariadb_reaches_postgresql_through_the_relay(platform):
    engine = source_engine(platform.base_a_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET salary = salary + 1 WHERE id IN (3, 5, 8)"))
        conn.execute(text("DELETE FROM employees WHERE id = 13"))
        conn.execute(
            text(
                "INSERT INTO employees (first_name, last_name, email, department, position, salary, hired_at)"
                " VALUES ('Grace', 'Hopper', 'grace.hopper@example.com', 'Research', 'Admiral', 1, '1943-12-01')"
            )
        )
    engine.dispose()
    changed_at = time.time()
    expected = base_a_versions(platform.base_a_url, "employees")
    assert 13 not in expected
    wait_for("PostgreSQL to hold MariaDB's change", lambda: base_b_versions(platform, "employees") == expected)
    assert platform.runs_started_since("base_a_to_base_b", changed_at) == 0, "a batch run may have done it"
    relay = requests.get(f"http://127.0.0.1:{platform.env['RELAY_HTTP_PORT']}/metrics", timeout=10).text
    assert 'relay_events_total{entity="employees",op="u"}' in relay


def test_a_dead_relay_is_started_again_and_resumes(platform):
    """The relay exits on what it cannot get past (Base A away past RELAY_RECONNECT_SECONDS, a broker
    that lost its producer state), for its supervisor to start it again, as compose's restart policy
    does; under make up nothing did, and change events stopped until make down (outside probe)."""
    before = platform.kept_processes("relay", b"base-a-relay")
    os.kill(min(before), signal.SIGKILL)
    wait_for("a new relay", lambda: platform.kept_processes("relay", b"base-a-relay") - before, timeout=60)
    engine = source_engine(platform.base_a_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET salary = salary + 1 WHERE id IN (21, 34)"))
    engine.dispose()
    changed_at = time.time()
    expected = base_a_versions(platform.base_a_url, "employees")
    wait_for("the new relay to carry a change", lambda: base_b_versions(platform, "employees") == expected)
    assert platform.runs_started_since("base_a_to_base_b", changed_at) == 0, "a batch run may have done it"
    assert "starting it again" in (platform.var / "log" / "relay.log").read_text()


def test_make_down_stops_everything_on_servers_too(platform):
    assert platform.make("down", timeout=180).returncode == 0
    assert platform.leftover_processes() == []
