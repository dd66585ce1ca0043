"""Two of everything: two relays on one position file (a blue/green deploy, a scaled service on a
shared volume) or with one server_id on one Base A. Each is refused or stopped in one line saying
what to do, never left running with a position nobody saves, nor restarting each other for ever."""

from __future__ import annotations

import json
import shutil
import subprocess

import pymysql
import pytest
import requests
from sqlalchemy import text

from base_sync.relay import _server_id_taken
from base_sync.source import source_engine
from testbed.relay import RelayProcess
from testbed.servers import venv_bin
from tests.sync.test_relay import insert_employee, wait_for
from tests.sync.test_relay_resume import relay_env


def refused(env: dict, timeout: float = 60) -> str:
    """Run a relay expecting it to stop by itself with exit 1 in one line, no traceback; its stderr."""
    try:
        started = subprocess.run(
            [venv_bin("base-a-relay")], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as running:
        pytest.fail(f"the relay was still running after {timeout} s: {(running.stderr or b'')[-2000:]!r}")
    assert started.returncode == 1, started.stderr[-2000:]
    assert "Traceback" not in started.stderr, started.stderr[-2000:]
    return started.stderr


def test_a_second_relay_on_the_same_position_file_is_refused_naming_the_file_and_the_relay_holding_it(
    relay, base_a_url, kafka_bootstrap
):
    """Both ran: they wrote one scratch file name, one of them lost its saving thread to a
    FileNotFoundError and went on publishing with its position never saved again."""
    env = {**relay_env(base_a_url, kafka_bootstrap, relay.position_file), "RELAY_SERVER_ID": "6999"}
    before = relay.position_file.read_bytes()
    line = refused(env, timeout=30).strip().splitlines()[-1]
    assert f"another relay (pid {relay.process.pid} on " in line, line
    assert str(relay.position_file) in line and "RELAY_POSITION_FILE" in line and "Stop the other" in line, line
    assert relay.position_file.read_bytes() == before  # nothing of the refused one written
    assert relay.process.poll() is None  # the first goes on
    assert requests.get(f"{relay.url}/ready", timeout=5).status_code == 200


def test_a_relay_whose_position_saving_thread_fails_exits_non_zero_with_the_reason(
    base_a_url, kafka_bootstrap, tmp_path
):
    """The `deliveries` thread died silently: the relay went on publishing, /ready and /health said
    200, and its position stayed where it was, so a restart began far behind (or at 1236)."""
    state = tmp_path / "state"
    state.mkdir()
    relay = RelayProcess(base_a_url, kafka_bootstrap, state)
    relay.start()
    try:
        # The position's folder gone from under it (a volume unmounted): every save fails.
        shutil.move(state, tmp_path / "moved")
        state.write_text("not a folder")
        engine = source_engine(base_a_url)
        with engine.begin() as conn:
            insert_employee(conn, 1)
        engine.dispose()
        relay.process.wait(30)
    finally:
        relay.stop()
    lines = (tmp_path / "moved" / "relay.log").read_text().splitlines()
    assert relay.process.returncode == 1, lines[-5:]
    assert "Traceback" not in "\n".join(lines)
    assert "the relay stopped: its deliveries thread failed (FileExistsError" in lines[-1], lines[-3:]


def test_health_shows_the_position_this_relay_saved_not_what_the_file_holds_now(relay, base_a_url):
    """/health read the file again: with another writer on it, it showed that one's position."""
    engine = source_engine(base_a_url)
    with engine.begin() as conn:
        insert_employee(conn, 1)
    with engine.connect() as conn:  # after the commit: inside the transaction it is the GTID before it
        gtid = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
    engine.dispose()

    def shown() -> dict:
        return requests.get(f"{relay.url}/health", timeout=5).json()["position"]

    own = wait_for(lambda: (position := shown())["gtid"] == gtid and position, 30, "the relay to save its position")
    assert json.loads(relay.position_file.read_text()) == own
    relay.position_file.write_text(json.dumps({"gtid": "0-1-1", "log_file": None, "log_pos": None}))  # another's
    assert shown() == own


def test_two_relays_with_one_server_id_stop_in_one_line_saying_to_give_each_its_own(
    base_a_url, kafka_bootstrap, tmp_path
):
    """MariaDB's 4052 ended the displaced relay with MariaDB's words ("A slave with the same
    server_uuid/server_id ..."), and under a restart policy the two displaced each other for ever."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = RelayProcess(base_a_url, kafka_bootstrap, tmp_path / "first")
    second = RelayProcess(base_a_url, kafka_bootstrap, tmp_path / "second")
    second.env["RELAY_SERVER_ID"] = first.env["RELAY_SERVER_ID"]
    first.start()
    try:
        second.start()
        wait_for(lambda: first.process.poll() is not None or second.process.poll() is not None, 30, "one to stop")
    finally:
        first.stop()
        second.stop()
    displaced = first if first.process.returncode == 1 else second
    lines = displaced.log.read_text().splitlines()
    assert displaced.process.returncode == 1, lines[-5:]
    assert "Traceback" not in "\n".join(lines)
    line = lines[-1]
    assert "another replication client (another relay, or a replica) connected to Base A" in line, line
    assert f"RELAY_SERVER_ID={first.env['RELAY_SERVER_ID']}" in line and "give each relay its own" in line, line


@pytest.mark.parametrize(
    ("error", "taken"),
    [
        (pymysql.err.OperationalError(4052, "A slave with the same server_uuid/server_id is already connected"), True),
        (  # MySQL's words, under the code of a binlog it cannot read
            pymysql.err.OperationalError(
                1236, "A replica with the same server_uuid/server_id as this replica has connected to the source"
            ),
            True,
        ),
        (pymysql.err.OperationalError(1236, "Could not find first log file name in binary log index file"), False),
    ],
    ids=["mariadb", "mysql", "binlog-gone"],
)
def test_a_server_id_taken_is_told_from_a_binlog_gone(error, taken):
    assert _server_id_taken(error) is taken
