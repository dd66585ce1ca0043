"""Where the relay resumes from: a position file it cannot use, none at all, or a Base A whose binlog is
another history than the one the position was saved in (a failover, a restore). Each is refused in one
line saying what to do, or warned of; never a silent replay or skip."""

from __future__ import annotations

import json
import os
import subprocess

import orjson
import pytest
from sqlalchemy import text

from base_sync.source import source_engine
from base_sync.source_schema import create_schema
from testbed.relay import RelayProcess
from testbed.servers import binlog_mariadb, venv_bin
from tests.faults.tcp_proxy import TcpProxy
from tests.sync.conftest import binlog_database
from tests.sync.test_relay import insert_employee, wait_for


def refused_start(env: dict) -> str:
    """Start the relay expecting it to refuse: exit 1 in one line, no traceback; its stderr."""
    started = subprocess.run(
        [venv_bin("base-a-relay")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode == 1, started.stderr[-2000:]
    assert "Traceback" not in started.stderr, started.stderr[-2000:]
    return started.stderr


def relay_env(base_a_url: str, kafka_bootstrap: str, position) -> dict:
    return {
        **os.environ,
        "RELAY_BASE_A_URL": base_a_url,
        "RELAY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RELAY_HTTP_PORT": "0",
        "RELAY_POSITION_FILE": str(position),
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "cannot be read as a position"),  # emptied by a power loss before the fsync
        ('{"gtid": "0-1-1', "cannot be read as a position"),  # truncated
        ('["0-1-1"]', "holds list, not a position object"),
        ('{"gtid": "x-y"}', "malformed gtid 'x-y'"),
        ("{}", "holds no gtid"),  # read from the binlog's beginning: history published again
        ('{"log_file": "binlog.000001", "log_pos": 4}', "holds no gtid"),  # MariaDB resumes by GTID alone
        ('{"gtid": "0-1-1", "log_file": "binlog.000001", "log_pos": "4"}', "log_pos that is no offset"),
    ],
    ids=["empty", "truncated", "not-an-object", "malformed-gtid", "empty-object", "no-gtid", "text-offset"],
)
def test_a_position_file_that_holds_no_usable_position_stops_the_relay_in_one_line_with_what_to_do(
    binlog_port, kafka_bootstrap, tmp_path, content, says
):
    """A raw JSONDecodeError or ValueError traceback (a restart loop under Compose, no advice), or for
    `{}` a start from the binlog's beginning, publishing its history again."""
    position = tmp_path / "position.json"
    position.write_text(content)
    stderr = refused_start(relay_env(f"mysql://root@127.0.0.1:{binlog_port}/mysql", kafka_bootstrap, position))
    line = stderr.strip().splitlines()[-1]
    assert says in line and str(position) in line, stderr[-2000:]
    assert "restore it from its backup" in line and '{"compare_keys": true}' in line
    assert position.read_text() == content  # left for the operator to look at


@pytest.mark.parametrize("content", [None, "null"], ids=["missing", "null"])
def test_a_start_without_a_saved_position_warns_that_changes_made_meanwhile_are_the_batch_syncs(
    base_a_url, kafka_bootstrap, tmp_path, content
):
    """It said so at INFO only: on a restart with the file lost, changes made while no relay ran
    were skipped with nothing in the log to tell the operator to run the batch sync."""
    relay = RelayProcess(base_a_url, kafka_bootstrap, tmp_path)
    if content is not None:
        relay.position_file.write_text(content)
    relay.start()
    relay.stop()
    log = relay.log.read_text()
    warning = next((line for line in log.splitlines() if "no saved position" in line), log[-2000:])
    assert " WARNING " in warning and "NOT PUBLISHED" in warning and '{"compare_keys": true}' in warning, warning
    assert orjson.loads(relay.position_file.read_bytes())["gtid"] is not None  # the start is saved


def follow(relay: RelayProcess, engine, first: int, count: int) -> str:
    """Insert employees first..first+count-1, one transaction each; wait until the relay saved the
    position after them with its file and offset; that position's GTID."""
    for key in range(first, first + count):
        with engine.begin() as conn:
            insert_employee(conn, key)
    with engine.connect() as conn:
        current = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()

    def saved() -> dict | None:
        try:
            position = orjson.loads(relay.position_file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return position if position["gtid"] == current and position["log_file"] else None

    wait_for(saved, 30, f"the relay to save {current} with its file and offset")
    return current


def another_history(engine, first: int, count: int) -> str:
    """Base A as a server restored from a dump: its binlog begun anew (RESET MASTER) with the same
    domain and server id, then written past the old history's GTIDs; its position."""
    with engine.connect() as conn:
        conn.execute(text("RESET MASTER"))
    for key in range(first, first + count):
        with engine.begin() as conn:
            conn.execute(text("UPDATE employees SET salary = salary + 1"))
            insert_employee(conn, key)
    with engine.connect() as conn:
        return conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()


def base_a_on(port: int) -> str:
    url = binlog_database(port, "base_a")
    engine = source_engine(url)
    create_schema(engine)
    engine.dispose()
    return url


def test_a_base_a_restored_onto_another_binlog_history_stops_the_relay_at_start_with_what_to_do(
    kafka_bootstrap, tmp_path
):
    """The relay resumed by GTID into the new history (0-1-134 on the restored server is not the
    0-1-134 it would have read) and silently never published the new server's transactions up to
    there. A server of its own: RESET MASTER would take the shared one's history from other tests."""
    with binlog_mariadb(tmp_path / "base_a") as port:
        url = base_a_on(port)
        engine = source_engine(url)
        relay = RelayProcess(url, kafka_bootstrap, tmp_path)
        relay.start()
        try:
            saved = follow(relay, engine, 1, 5)
        finally:
            relay.stop()
        now = another_history(engine, 100, 40)
        engine.dispose()
        assert int(now.split("-")[-1]) > int(saved.split("-")[-1])  # GTID resume would find a place in it
        stderr = refused_start(relay_env(url, kafka_bootstrap, relay.position_file))
    line = stderr.strip().splitlines()[-1]
    assert "Base A's binlog no longer matches the relay's position" in line, stderr[-2000:]
    assert "a failover, a restore" in line and '{"compare_keys": true}' in line and str(relay.position_file) in line
    assert json.loads(relay.position_file.read_text())["gtid"] == saved  # kept for the operator


def test_a_base_a_that_fails_over_to_another_binlog_history_while_the_relay_runs_stops_it_with_what_to_do(
    kafka_bootstrap, tmp_path
):
    """The same on a reconnection: the relay, losing Base A, came back to another server at the same
    address (a failover to a server with the same server id and another history) and streamed from
    there by GTID, skipping its transactions up to the relay's GTID."""
    with binlog_mariadb(tmp_path / "first") as first, binlog_mariadb(tmp_path / "second") as second:
        with TcpProxy(first) as proxy:  # Base A's address, as the relay sees it
            relay = RelayProcess(base_a_on(first).replace(f":{first}/", f":{proxy.port}/"), kafka_bootstrap, tmp_path)
            relay.env["RELAY_RECONNECT_SECONDS"] = "30"
            engine = source_engine(f"mysql+mysqldb://root@127.0.0.1:{first}/base_a")
            relay.start()
            try:
                saved = follow(relay, engine, 1, 5)
                engine.dispose()
                engine = source_engine(base_a_on(second))
                now = another_history(engine, 100, 40)
                engine.dispose()
                assert int(now.split("-")[-1]) > int(saved.split("-")[-1])
                with proxy.outage(1.0):
                    proxy.target = ("127.0.0.1", second)  # the failover
                relay.process.wait(60)
            finally:
                relay.stop()
    lines = relay.log.read_text().splitlines()
    assert relay.process.returncode == 1 and "Traceback" not in "\n".join(lines), lines[-5:]
    assert "Base A's binlog no longer matches the relay's position" in lines[-1], lines[-5:]
