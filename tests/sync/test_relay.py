"""The CDC relay on a real MariaDB with its binlog on, publishing to a real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from decimal import Decimal

import orjson
import pytest
import requests
import yaml
from confluent_kafka import Consumer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base_sync.debezium import BadEvent, Topics
from base_sync.demo import generate
from base_sync.mapping import SourceMapping, parse_mapping
from base_sync.source import source_engine
from baseab_contract.entities import ENTITIES
from testbed.relay import RelayProcess
from testbed.servers import binlog_mariadb, venv_bin
from tests.faults.tcp_proxy import TcpProxy
from tests.sync.conftest import binlog_database, read_topic, source_rows


def relay_topics(relay, base_a_url: str, mapping=None) -> Topics:
    """The relay's topics: `<its prefix>.<Base A's database>.<table>`."""
    return Topics(relay.prefix, make_url(base_a_url).database, mapping)


def read_changes(bootstrap: str, topics: Topics, expected: int, timeout: float = 60) -> list:
    """Every change on the relay's topics (from the beginning), once `expected` distinct ones have arrived."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe(topics.names)
    changes, deadline = [], time.monotonic() + timeout
    try:
        # Count distinct changes: a restart may repeat some, which must not end the wait early.
        while len({(c.entity, c.id, c.op, c.version) for c in changes}) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                assert not message.error(), message.error()
                changes.append(topics.decode(message.topic(), message.value()))
        # Anything beyond the expected count would be a duplicate or a stray event: drain a little more.
        changes += [topics.decode(m.topic(), m.value()) for m in consumer.consume(1000, timeout=1.0)]
    finally:
        consumer.close()
    return changes


def final_state(changes: list) -> dict[tuple[str, int], object]:
    state = {}
    for change in changes:
        state[(change.entity, change.id)] = change
    return state


def test_row_changes_become_debezium_events_with_base_a_values(relay, base_a_url, kafka_bootstrap):
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 50, seed_value=1)
    generate.seed(engine, "articles", 5, seed_value=2)
    done = generate.churn(engine, "employees", updates=10, deletes=5, seed_value=3)
    topics = relay_topics(relay, base_a_url)
    assert topics.names == [f"{relay.prefix}.{make_url(base_a_url).database}.{t}" for t in ("articles", "employees")]
    changes = read_changes(kafka_bootstrap, topics, 50 + 5 + done["updated"] + done["deleted"])
    assert sorted(c.op for c in changes).count("c") == 55
    assert sum(c.op == "u" for c in changes) == 10 and sum(c.op == "d" for c in changes) == 5
    state = final_state(changes)
    for entity in ("employees", "articles"):
        rows = source_rows(engine, entity)
        live = {key: change for (name, key), change in state.items() if name == entity and not change.is_delete}
        assert set(live) == set(rows)
        for key, change in live.items():
            fields = [change.row[name] for name in ENTITIES[entity].field_names]
            got = (change.version, *(str(v) if isinstance(v, Decimal) else v for v in fields))
            assert got == rows[key], f"{entity} {key}: event {got} vs Base A {rows[key]}"
    metrics = requests.get(f"{relay.url}/metrics", timeout=5).text
    assert 'relay_events_total{entity="employees",op="c"} 50.0' in metrics
    assert requests.get(f"{relay.url}/health", timeout=5).json()["position"]["gtid"]
    engine.dispose()


def test_an_update_of_the_key_is_a_delete_of_the_old_key_and_a_create_of_the_new(relay, base_a_url, kafka_bootstrap):
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 3, seed_value=4)
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET id = 1000 WHERE id = 2"))
        email = conn.execute(text("SELECT email FROM employees WHERE id = 1000")).scalar_one()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3 + 2)
    # As Debezium emits a key change: a delete of the old key and a create of the new one, no update.
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("c", 3), ("c", 1000), ("d", 2)]
    state = final_state(changes)
    assert state[("employees", 1000)].record["email"] == email and state[("employees", 2)].is_delete
    engine.dispose()


def test_the_envelope_schema_marks_optional_exactly_the_columns_that_take_null(relay, base_a_url, kafka_bootstrap):
    """As the table is when the row changes: an ALTER of a column's NULL shows in the next event."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "articles", 1, seed_value=5)
    before = _nullable(engine, "articles")
    assert set(before.values()) == {False, True}  # both kinds, or the test proves nothing
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE articles MODIFY title VARCHAR(255) NULL"))
    generate.seed(engine, "articles", 1, seed_value=6)
    altered = _nullable(engine, "articles")
    engine.dispose()
    assert altered == {**before, "title": True}
    topic = relay_topics(relay, base_a_url).topic("articles")
    deadline, found = time.monotonic() + 30, []
    while len(found) < 2 and time.monotonic() < deadline:
        found = read_topic(kafka_bootstrap, topic)
    events = sorted((orjson.loads(message.value()) for message in found), key=lambda e: e["payload"]["after"]["id"])
    assert [_optional(event) for event in events] == [before, altered]


def _nullable(engine, table: str) -> dict[str, bool]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name, is_nullable = 'YES' FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = :table"
            ),
            {"table": table},
        )
        return {name: bool(flag) for name, flag in rows}


def _optional(event: dict) -> dict[str, bool]:
    after = next(f for f in event["schema"]["fields"] if f["field"] == "after")
    return {f["field"]: f["optional"] for f in after["fields"]}


def test_a_relay_killed_mid_stream_resumes_without_losing_an_event(relay, base_a_url, kafka_bootstrap):
    engine = source_engine(base_a_url)
    for _ in range(20):  # 20 transactions of 500 rows; the relay dies while they stream
        generate.seed(engine, "employees", 500)
    relay.stop(signal.SIGKILL)
    generate.seed(engine, "employees", 300)  # committed while the relay is down
    relay.start()
    generate.seed(engine, "employees", 200)  # after the restart
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 10_500, timeout=90)
    created = [c.id for c in changes if c.op == "c"]
    assert set(created) == set(range(1, 10_501)), f"missing: {sorted(set(range(1, 10_501)) - set(created))[:10]}"
    # A restart may repeat the transactions after the last saved position, nothing more.
    assert len(created) - 10_500 < 10_500
    engine.dispose()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"RELAY_BASE_A_URL": "mysql://no_such_user:wrong@127.0.0.1:3306/base_a"},
            "RELAY_BASE_A_URL=mysql://no_such_user:***@",
        ),
        ({"RELAY_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, "RELAY_KAFKA_BOOTSTRAP=127.0.0.1:1"),
        ({"RELAY_SERVER_ID": "zero"}, "invalid settings: RELAY_SERVER_ID: Input should be a valid integer"),
    ],
    ids=["base-a-refuses", "no-broker", "invalid-setting"],
)
def test_a_relay_that_cannot_start_says_which_setting_in_one_line(binlog_port, tmp_path, settings, says):
    env = {
        **os.environ,
        "RELAY_BASE_A_URL": f"mysql://root@127.0.0.1:{binlog_port}/mysql",
        "RELAY_HTTP_PORT": "0",
        "RELAY_POSITION_FILE": str(tmp_path / "position.json"),
        **settings,
    }
    started = subprocess.run(
        [venv_bin("base-a-relay")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert started.returncode == 1, started.stderr[-2000:]
    assert says in started.stderr and "Traceback" not in started.stderr, started.stderr[-2000:]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"RELAY_BASE_A_URL": ""}, "RELAY_BASE_A_URL: empty: a MySQL or MariaDB URL"),
        ({"RELAY_BASE_A_URL": "not a url"}, "RELAY_BASE_A_URL: not a SQLAlchemy URL"),
        ({"RELAY_BASE_A_URL": "sqlite:///x.db"}, "RELAY_BASE_A_URL: the relay reads no binlog of 'sqlite'"),
        ({"RELAY_HTTP_PORT": "70000"}, "RELAY_HTTP_PORT: Input should be less than or equal to 65535"),
        ({"RELAY_HTTP_HOST": ""}, "RELAY_HTTP_HOST: empty: the address to serve /health and /metrics on"),
        ({"RELAY_POSITION_FILE": ""}, "RELAY_POSITION_FILE: no file name: a path to the position file is needed"),
        ({"RELAY_POSITION_FILE": "   "}, "RELAY_POSITION_FILE: no file name: a path to the position file is needed"),
        ({"RELAY_SERVER_ID": str(2**32)}, "RELAY_SERVER_ID: Input should be less than or equal to 4294967295"),
    ],
    ids=["url-empty", "url-unparsable", "url-sqlite", "port", "host-empty", "position-empty", "position-blank", "id"],
)
def test_a_setting_the_relay_cannot_use_is_refused_at_start_in_one_line(tmp_path, settings, says):
    """Found from outside: these failed later, with a traceback (an unparsable URL, a port above 65535
    at bind, an empty position file), at the server (sqlite:///x.db connected with MySQLdb, error 1049;
    a server id above MySQL's 2**32-1), or not at all ("   " made a lock file "   .lock" in the working
    folder; an empty host served /metrics on every interface). Refused before anything is opened: no
    server is needed (Base A's port refuses, so the old code failed fast), and nothing is made."""
    env = {
        **os.environ,
        "RELAY_BASE_A_URL": "mysql://root@127.0.0.1:1/base_a",
        "RELAY_RECONNECT_SECONDS": "0",
        "RELAY_HTTP_PORT": "0",
        "RELAY_POSITION_FILE": str(tmp_path / "position.json"),
        "RELAY_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        **settings,
    }
    started = subprocess.run(
        [venv_bin("base-a-relay")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode == 1, started.stderr[-2000:]
    (line,) = started.stderr.strip().splitlines()
    assert f"invalid settings: {says}" in line, started.stderr[-2000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_relay_whose_account_is_at_its_connection_limit_retries_then_says_so_in_one_line(binlog_port, tmp_path):
    """Error 1226 (the account's MAX_USER_CONNECTIONS, which a batch task's connections may fill) ended
    the relay at once with "failed: (1226, ...)": it retries as for a Base A away (a task closes its
    connection), each retry and the last line naming the limit and who shares the account."""
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/mysql")
    user = f"capped_relay_{uuid.uuid4().hex[:6]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' WITH MAX_USER_CONNECTIONS 1")
        conn.exec_driver_sql(f"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%%'")
    holder = source_engine(f"mysql+mysqldb://{user}@127.0.0.1:{binlog_port}/mysql")
    try:
        with holder.connect():  # what a batch task holds
            env = {
                **os.environ,
                "RELAY_BASE_A_URL": f"mysql://{user}@127.0.0.1:{binlog_port}/mysql",
                "RELAY_HTTP_PORT": "0",
                "RELAY_POSITION_FILE": str(tmp_path / "position.json"),
                "RELAY_RECONNECT_SECONDS": "3",
            }
            started = subprocess.run(
                [venv_bin("base-a-relay")], env=env, capture_output=True, text=True, timeout=120, check=False
            )
    finally:
        holder.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()
    assert started.returncode == 1, started.stderr[-2000:]
    assert "Traceback" not in started.stderr, started.stderr[-2000:]
    assert "retrying in" in started.stderr and "giving up" in started.stderr, started.stderr[-2000:]
    assert "connections at once" in started.stderr and "max_user_connections" in started.stderr, started.stderr[-2000:]
    assert "give the relay its own account" in started.stderr, started.stderr[-2000:]


def test_a_position_whose_binlog_is_gone_stops_the_relay_with_what_to_do(kafka_bootstrap, tmp_path):
    """Base A purged the binlogs the saved position needs (the relay was behind): error 1236, which
    read as any failure of Base A ("failed: (1236, ...)"), said nothing of the lost changes. A server
    of its own: the purge would take the shared one's history from the other tests."""
    with binlog_mariadb(tmp_path / "purged") as port:
        engine = source_engine(f"mysql+mysqldb://root@127.0.0.1:{port}/mysql")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (k INT PRIMARY KEY)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            behind = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
            conn.execute(text("FLUSH BINARY LOGS"))
            conn.execute(text("INSERT INTO t VALUES (2)"))
            conn.execute(text("FLUSH BINARY LOGS"))
            current = conn.execute(text("SHOW MASTER STATUS")).mappings().one()["File"]
            conn.execute(text(f"PURGE BINARY LOGS TO '{current}'"))
        engine.dispose()
        position = tmp_path / "position.json"
        position.write_text(json.dumps({"gtid": behind}))
        env = {
            **os.environ,
            "RELAY_BASE_A_URL": f"mysql://root@127.0.0.1:{port}/mysql",
            "RELAY_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "RELAY_HTTP_PORT": "0",
            "RELAY_POSITION_FILE": str(position),
        }
        started = subprocess.run(
            [venv_bin("base-a-relay")], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    assert started.returncode == 1, started.stderr[-2000:]
    assert "Traceback" not in started.stderr, started.stderr[-2000:]
    assert "no longer has the binlog" in started.stderr and '{"compare_keys": true}' in started.stderr
    assert "or Base A is now another server (a failover, a restore)" in started.stderr
    assert str(position) in started.stderr


def relay_messages(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list:
    """The distinct messages of one of the relay's topics (raw: an incomplete change does not decode),
    once `expected` have arrived; in order per key. The relay publishes at least once: a message it
    published again is counted and kept once, else a repeat ended the wait before the message after
    it arrived (CI once read two dead letters where a dead letter and a change were published)."""
    deadline, found = time.monotonic() + timeout, []
    while len(found) < expected and time.monotonic() < deadline:
        seen, found = set(), []
        for message in read_topic(bootstrap, topic):
            if (sameness := republished_as(message)) not in seen:
                seen.add(sameness)
                found.append(message)
    return found


def republished_as(message) -> tuple:
    """What a message published again shares with the first: all but the envelope's `ts_ms` (the
    publishing time; the source block's position and time stay)."""
    value = json.loads(message.value()) if message.value() else None
    envelope = value.get("payload", value) if isinstance(value, dict) else value
    if isinstance(envelope, dict):
        envelope = {name: part for name, part in envelope.items() if name != "ts_ms"}
    return message.key(), json.dumps(envelope, sort_keys=True)


def decoded(topics: Topics, message) -> tuple[str, object]:
    """("change", the change) or ("dead", the BadEvent's reason), as the drain reads the message."""
    try:
        return "change", topics.decode(message.topic(), message.value(), message.key())
    except BadEvent as exc:
        return "dead", str(exc)


def test_a_partial_row_image_is_dead_lettered_never_read_as_a_key_change_or_a_delete(
    relay, base_a_url, kafka_bootstrap
):
    """binlog_row_image=MINIMAL in a writer's session (the start-up check cannot see it): the UPDATE's
    after image lacks the key. Read whole it was a delete of row 2 and a create keyed None."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 3, seed_value=11)
    with engine.connect() as conn:
        conn.execute(text("SET SESSION binlog_row_image = 'MINIMAL'"))
        conn.execute(text("UPDATE employees SET first_name = 'Partial' WHERE id = 2"))
        conn.execute(text("DELETE FROM employees WHERE id = 3"))  # a delete names its key: still a delete
        conn.commit()
        conn.execute(text("SET SESSION binlog_row_image = DEFAULT"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET first_name = 'Whole' WHERE id = 1"))
    topics = relay_topics(relay, base_a_url)
    found = relay_messages(kafka_bootstrap, topics.topic("employees"), 6)
    engine.dispose()
    read = [(message.key(), *decoded(topics, message)) for message in found]
    assert len(read) == 6, read
    dead = [(key, why) for key, kind, why in read if kind == "dead"]
    assert len(dead) == 1 and dead[0][0] == b"2", dead  # keyed by the row it is about
    assert "binlog_row_image" in dead[0][1] and "binlog_row_image=FULL" in dead[0][1], dead[0][1]
    changes = [change for _, kind, change in read if kind == "change"]
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("c", 3), ("d", 3), ("u", 1)]
    assert [c.id for c in changes if c.is_delete] == [3]  # row 2 is never deleted
    metrics = requests.get(f"{relay.url}/metrics", timeout=5).text
    assert 'relay_incomplete_changes_total{cause="binlog_row_image",table="employees"} 1.0' in metrics


def test_a_table_map_without_column_names_is_dead_lettered_and_the_relay_goes_on(
    relay, base_a_url, binlog_port, kafka_bootstrap
):
    """binlog_row_metadata=MINIMAL set while the relay runs: no column names, no key. It crashed on
    KeyError: 'id' and, resuming at the same event, crashed again on every restart."""
    engine = source_engine(base_a_url)
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/mysql")
    with admin.begin() as conn:
        conn.execute(text("SET GLOBAL binlog_row_metadata = 'MINIMAL'"))
    try:
        generate.seed(engine, "employees", 1, seed_value=12)
    finally:
        with admin.begin() as conn:
            conn.execute(text("SET GLOBAL binlog_row_metadata = 'FULL'"))
        admin.dispose()
    generate.seed(engine, "employees", 1, seed_value=13)
    topics = relay_topics(relay, base_a_url)
    found = relay_messages(kafka_bootstrap, topics.topic("employees"), 2)
    engine.dispose()
    read = sorted(((message.key(), *decoded(topics, message)) for message in found), key=lambda r: r[1])
    assert [kind for _, kind, _ in read] == ["change", "dead"], read
    assert read[0][2].id == 2 and read[0][2].op == "c"  # the row after FULL came back
    assert read[1][0] is None and "binlog_row_metadata=FULL" in read[1][2], read[1]  # no key is known
    assert relay.process.poll() is None  # still running
    # Published, so the saved position moved past it: a restart does not meet it again.
    relay.stop()
    relay.start()
    assert relay.process.poll() is None


def test_a_date_that_is_no_date_is_published_as_its_own_text_and_quarantined_as_the_batch_says(
    relay, base_a_url, kafka_bootstrap
):
    """The binlog decoder read a zero part as the zero date (reason: 'the zero date 0000-00-00', where
    the batch path says 'not a valid date: 2024-00-10') and raised on an impossible day."""
    engine = source_engine(base_a_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE employees ADD COLUMN legacy_at DATETIME(3) NULL"))  # unmapped
    rows = {
        1001: ("2024-00-10", "'2024-00-10 12:30:00.125'"),
        1002: ("2024-02-30", "NULL"),  # ALLOW_INVALID_DATES: the decoder raised ValueError on it
        1003: ("0000-00-00", "NULL"),
    }
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"))  # a legacy writer's, this session only
        for key, (hired_at, legacy_at) in rows.items():
            conn.execute(
                text(
                    "INSERT INTO employees (id, first_name, last_name, email, salary, hired_at, legacy_at) "
                    f"VALUES ({key}, 'Dirty', 'Row', 'dirty{key}@example.com', 10.00, '{hired_at}', {legacy_at})"
                )
            )
        conn.execute(text("SET SESSION sql_mode = DEFAULT"))
    engine.dispose()
    topics = relay_topics(relay, base_a_url)
    found = relay_messages(kafka_bootstrap, topics.topic("employees"), 3)
    changes = {change.id: change for kind, change in (decoded(topics, m) for m in found) if kind == "change"}
    assert sorted(changes) == [1001, 1002, 1003], [decoded(topics, m) for m in found]
    assert {key: [r["message"] for r in c.quarantined.reasons] for key, c in changes.items()} == {
        1001: ["hired_at is not a valid date: 2024-00-10"],  # the batch path's words (test_dirty_source_values)
        1002: ["hired_at is not a valid date: 2024-02-30"],
        1003: ["hired_at is the zero date 0000-00-00"],
    }
    assert changes[1001].row["legacy_at"] == "2024-00-10 12:30:00.125"  # a DATETIME(3) keeps its parts too


def insert_employee(conn, key: int) -> None:
    conn.execute(
        text(
            "INSERT INTO employees (id, first_name, last_name, email, salary, hired_at) "
            f"VALUES ({key}, 'Row', 'Of Test', 'row{key}@example.com', 10.00, '2020-01-01')"
        )
    )


def saved_gtid(relay) -> str | None:
    try:
        return orjson.loads(relay.position_file.read_bytes()).get("gtid")
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)
    return value


def test_the_saved_position_holds_every_gtid_domain_so_a_restart_after_a_purge_repeats_nothing(
    relay, base_a_url, binlog_port, kafka_bootstrap
):
    """It kept the last event's GTID alone (0-1-107 of 0-1-107,7-1-1): every restart sent domain 7's
    history again, and once those binlogs were purged the restart failed with 1236."""
    engine = source_engine(base_a_url)
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/mysql")
    with engine.connect() as conn:
        conn.execute(text("SET SESSION gtid_domain_id = 7"))  # another writer's domain (multi-source, say)
        insert_employee(conn, 1)
        conn.commit()
        conn.execute(text("SET SESSION gtid_domain_id = @@GLOBAL.gtid_domain_id"))
    with engine.begin() as conn:
        insert_employee(conn, 2)

    def current() -> str:
        with admin.connect() as conn:
            return conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()

    wait_for(lambda: saved_gtid(relay) == current(), 30, "the saved position to be Base A's")
    assert any(gtid.startswith("7-") for gtid in saved_gtid(relay).split(","))
    relay.stop()
    with admin.connect() as conn:
        conn.execute(text("FLUSH BINARY LOGS"))
        newest = conn.execute(text("SHOW MASTER STATUS")).one()[0]
        conn.execute(text(f"PURGE BINARY LOGS TO '{newest}'"))
    admin.dispose()
    relay.start()
    with engine.begin() as conn:
        insert_employee(conn, 3)
    engine.dispose()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3, timeout=20)
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("c", 3)]  # each once: nothing repeated
    assert relay.process.poll() is None, relay.log.read_text()[-2000:]


def kill_binlog_dumps(binlog_port: int) -> int:
    """KILL the server's Binlog Dump threads (the relay's replication connection); how many."""
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/mysql")
    with admin.connect() as conn:
        dumps = [row[0] for row in conn.execute(text("SHOW PROCESSLIST")) if row[4] == "Binlog Dump"]
        for thread in dumps:
            conn.execute(text(f"KILL {thread}"))
    admin.dispose()
    return len(dumps)


def test_a_lost_replication_connection_resumes_from_the_last_transaction_not_from_the_start(
    relay, base_a_url, binlog_port, kafka_bootstrap
):
    """mysql-replication reconnected by itself from the GTID the relay had started at: a KILL of the
    Binlog Dump thread re-sent everything since the start."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 50, seed_value=21)
    topics = relay_topics(relay, base_a_url)
    read_changes(kafka_bootstrap, topics, 50)
    assert kill_binlog_dumps(binlog_port) == 1
    generate.seed(engine, "employees", 1, seed_value=22)
    engine.dispose()
    changes = read_changes(kafka_bootstrap, topics, 51, timeout=30)
    created = sorted(c.id for c in changes if c.op == "c")
    assert created == list(range(1, 52)), f"{len(created)} creates: repeated from the start?"
    assert relay.process.poll() is None
    said = relay.log.read_text()
    assert "replication connection to Base A was lost" in said
    assert "replication connection to Base A is back" in said  # not only the loss (outside probe)


def test_while_base_a_is_away_the_relay_retries_then_gives_up_in_one_line(
    binlog_port, base_a_url, kafka_bootstrap, tmp_path
):
    """It exited within 0.3 s on 2003 (connection refused) when Base A restarted. Now it retries with
    back-off for RELAY_RECONNECT_SECONDS, resumes without a gap, and only then fails, in one line."""
    engine = source_engine(base_a_url)
    with TcpProxy(binlog_port) as proxy:  # Base A as the relay sees it: refusing, then back
        proxied = make_url(base_a_url).set(port=proxy.port).render_as_string(hide_password=False)
        relay = RelayProcess(proxied, kafka_bootstrap, tmp_path)
        relay.env["RELAY_RECONNECT_SECONDS"] = "8"
        relay.start()
        try:
            generate.seed(engine, "employees", 5, seed_value=23)
            topics = relay_topics(relay, base_a_url)
            read_changes(kafka_bootstrap, topics, 5)
            with proxy.outage(2.5):  # a restart: live connections reset, new ones refused
                generate.seed(engine, "employees", 5, seed_value=24)  # committed meanwhile
                time.sleep(0.5)
                assert relay.process.poll() is None, "the relay exited at once"
            generate.seed(engine, "employees", 5, seed_value=25)
            changes = read_changes(kafka_bootstrap, topics, 15, timeout=30)
            assert sorted(c.id for c in changes if c.op == "c") == list(range(1, 16))  # no gap, nothing twice
            log = relay.log.read_text()
            assert "Base A is unreachable" in log and "retrying in" in log
            proxy.refuse()  # and now for good
            relay.process.wait(30)
        finally:
            relay.stop()
    engine.dispose()
    assert relay.process.returncode == 1
    lines = relay.log.read_text().splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert "unreachable for" in lines[-1] and "RELAY_RECONNECT_SECONDS=8" in lines[-1], lines[-3:]


def metric_line(relay, line: str, timeout: float = 10) -> str:
    """Wait until the relay's /metrics holds `line`."""
    return wait_for(
        lambda: line in requests.get(f"{relay.url}/metrics", timeout=5).text and line, timeout, f"metric {line}"
    )


def test_dml_a_session_logs_as_a_statement_is_reported_loudly_and_counted_never_silent(
    relay, base_a_url, kafka_bootstrap
):
    """A session with binlog_format=STATEMENT: the binlog holds the UPDATE's SQL, not its rows. The
    relay ignored QueryEvents: nothing published, nothing logged."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 2, seed_value=31)
    with engine.connect() as conn:
        conn.execute(text("SET SESSION binlog_format = 'STATEMENT'"))
        conn.execute(text("UPDATE employees SET first_name = 'Statement' WHERE id = 1"))
        conn.commit()
        conn.execute(text("SET SESSION binlog_format = DEFAULT"))
    generate.seed(engine, "employees", 1, seed_value=32)
    engine.dispose()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3)
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("c", 3)]  # the UPDATE cannot be
    metric_line(relay, 'relay_unpublished_statements_total{kind="statement_dml",table="employees"} 1.0')
    log = relay.log.read_text()
    assert "STATEMENT-LOGGED CHANGES of employees NOT PUBLISHED" in log and "UPDATE employees SET" in log


def test_a_truncate_of_a_mapped_table_is_published_as_a_truncate_event_the_drain_dead_letters(
    relay, base_a_url, kafka_bootstrap
):
    """TRUNCATE TABLE was ignored: Base B kept every row, and nothing said so."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 2, seed_value=33)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE TABLE employees"))
    generate.seed(engine, "employees", 1, seed_value=34)
    engine.dispose()
    topics = relay_topics(relay, base_a_url)
    found = relay_messages(kafka_bootstrap, topics.topic("employees"), 4)
    read = [(message.key(), *decoded(topics, message)) for message in found]
    dead = [(key, why) for key, kind, why in read if kind == "dead"]
    assert len(read) == 4 and len(dead) == 1, read
    assert dead[0][0] is None and "op 't' (a TRUNCATE of the table)" in dead[0][1] and "compare_keys" in dead[0][1]
    assert orjson.loads(next(m for m in found if m.key() is None).value())["payload"]["op"] == "t"
    metric_line(relay, 'relay_events_total{entity="employees",op="t"} 1.0')


def test_a_mapped_table_renamed_away_or_dropped_is_reported_loudly_and_counted(relay, base_a_url, kafka_bootstrap):
    """Changes made while `employees` was named otherwise were dropped silently (they still are not
    published: the relay follows the mapped name, as the batch does), and so was a DROP."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 1, seed_value=35)
    with engine.begin() as conn:
        conn.execute(text("RENAME TABLE employees TO employees_x"))
        conn.execute(text("UPDATE employees_x SET first_name = 'Elsewhere' WHERE id = 1"))
        conn.execute(text("RENAME TABLE employees_x TO employees"))
    generate.seed(engine, "employees", 1, seed_value=36)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE articles"))
    engine.dispose()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 2)
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2)]
    metric_line(relay, 'relay_unpublished_statements_total{kind="rename",table="employees"} 1.0')
    metric_line(relay, 'relay_unpublished_statements_total{kind="drop",table="articles"} 1.0')
    log = relay.log.read_text()
    assert "MAPPED TABLE employees RENAMED AWAY (RENAME TABLE employees TO employees_x)" in log
    assert "a table was renamed to the mapped employees" in log and "MAPPED TABLE articles DROPPED" in log


def test_a_mapped_column_dropped_is_reported_loudly_and_counted_an_unmapped_one_not(relay, base_a_url):
    """A mapped column dropped and added back (instant DDL) left every row holding its default in
    Base A at the same stamps, and Base B the old values for good: nothing said a word."""
    engine = source_engine(base_a_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE employees ADD COLUMN note VARCHAR(10)"))
        conn.execute(text("ALTER TABLE employees DROP COLUMN note"))
        conn.execute(text("ALTER TABLE employees DROP COLUMN first_name, ADD COLUMN x INT"))
        conn.execute(text("ALTER TABLE employees ADD COLUMN first_name VARCHAR(100) NOT NULL DEFAULT ''"))
    engine.dispose()
    metric_line(relay, 'relay_unpublished_statements_total{kind="column_drop",table="employees"} 1.0')
    metric_line(relay, 'relay_unpublished_statements_total{kind="column_drop",table="articles"} 0.0')
    log = relay.log.read_text()
    assert "MAPPED COLUMN employees.first_name DROPPED (ALTER TABLE employees DROP COLUMN first_name" in log
    assert "full_refresh" in log and "employees.note" not in log


@pytest.mark.parametrize("tool", ["pt-online-schema-change", "gh-ost"])
def test_an_online_schema_changes_cut_over_is_a_swap_not_a_rename_away(relay, base_a_url, kafka_bootstrap, tool):
    """pt-osc and gh-ost copy the table into a shadow with the new shape, then swap the two in one
    RENAME statement. Every cut-over was logged as RENAMED AWAY ... NOT PUBLISHED and counted (the
    alert RelayChangesNotPublished fired), though nothing was written under another name. The
    copy's row events (a table the mapping does not name) are not published; the changes after it are."""
    shadow, old = {"gh-ost": ("_employees_gho", "_employees_del")}.get(tool, ("_employees_new", "_employees_old"))
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 2, seed_value=38)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {shadow} LIKE employees"))
        conn.execute(text(f"ALTER TABLE {shadow} ADD COLUMN phone VARCHAR(30) NULL"))
        conn.execute(text(f"INSERT INTO {shadow} SELECT e.*, NULL FROM employees e"))
        conn.execute(text(f"RENAME TABLE employees TO {old}, {shadow} TO employees"))
        conn.execute(text(f"DROP TABLE {old}"))
        conn.execute(text("UPDATE employees SET first_name = 'After', phone = '1' WHERE id = 1"))
    engine.dispose()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3)
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("u", 1)]
    assert next(c for c in changes if c.op == "u").row["phone"] == "1"
    log = relay.log.read_text()  # the update after the swap was read, so the swap was too
    assert "RENAMED AWAY" not in log and "a table was renamed to the mapped" not in log
    swap = f"TABLE SWAP of the mapped employees (RENAME TABLE employees TO {old}, {shadow} TO employees): "
    assert swap + f"employees is now the former {shadow}, published under its name from here on" in log
    assert [line for line in log.splitlines() if "TABLE SWAP" in line and " INFO " in line], log
    metric_line(relay, 'relay_unpublished_statements_total{kind="rename",table="employees"} 0.0')
    metric_line(relay, 'relay_unpublished_statements_total{kind="drop",table="employees"} 0.0')
    metric_line(relay, 'relay_table_swaps_total{table="employees"} 1.0')


def test_a_swap_with_no_shadow_copy_is_reported_loudly_and_counted(relay, base_a_url, kafka_bootstrap):
    """An archival swap (`RENAME TABLE t TO t_2025, t_leer TO t`) replaces the table's rows without a
    row event or a DELETE. It was taken for an online schema change's cut-over: INFO, no alert."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 2, seed_value=39)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE employees_leer LIKE employees"))
        conn.execute(text("INSERT INTO employees_leer SELECT * FROM employees WHERE id = 2"))
        conn.execute(text("RENAME TABLE employees TO employees_2025, employees_leer TO employees"))
        conn.execute(text("DROP TABLE employees_2025"))
        conn.execute(text("UPDATE employees SET first_name = 'After' WHERE id = 2"))
    engine.dispose()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3)
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("u", 2)]  # no delete of row 1
    metric_line(relay, 'relay_unpublished_statements_total{kind="swap",table="employees"} 1.0')
    metric_line(relay, 'relay_table_swaps_total{table="employees"} 0.0')
    log = relay.log.read_text()
    sql = "RENAME TABLE employees TO employees_2025, employees_leer TO employees"
    assert f"MAPPED TABLE employees SWAPPED ({sql}): it is now the former employees_leer" in log
    assert [line for line in log.splitlines() if "REPLACED WHOLESALE" in line and " WARNING " in line], log
    assert "TABLE SWAP" not in log and "RENAMED AWAY" not in log


def test_rows_a_partition_statement_removes_are_reported_loudly_and_counted(relay, base_a_url, kafka_bootstrap):
    """A retention job's ALTER TABLE ... TRUNCATE PARTITION or DROP PARTITION removes rows without
    row events: nothing was published, logged or counted (only ALTER ... RENAME was read)."""
    engine = source_engine(base_a_url)
    with engine.begin() as conn:
        unique = "SHOW INDEX FROM employees WHERE Non_unique = 0 AND Key_name <> 'PRIMARY'"
        for index in {row.Key_name for row in conn.execute(text(unique))}:
            conn.execute(text(f"DROP INDEX `{index}` ON employees"))  # a partitioned table's unique keys hold id
        conn.execute(
            text(
                "ALTER TABLE employees PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (3), "
                "PARTITION p1 VALUES LESS THAN (5), PARTITION p2 VALUES LESS THAN MAXVALUE)"
            )
        )
    generate.seed(engine, "employees", 5, seed_value=37)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE employees TRUNCATE PARTITION p0"))
        conn.execute(text(f"/* retention */ ALTER TABLE `{engine.url.database}`.`employees` DROP PARTITION `p1`"))
        assert conn.execute(text("SELECT id FROM employees")).scalars().all() == [5]
    engine.dispose()
    changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 5)
    assert sorted((c.op, c.id) for c in changes) == [("c", key) for key in range(1, 6)]  # no delete is in the binlog
    metric_line(relay, 'relay_unpublished_statements_total{kind="partition",table="employees"} 2.0')
    metric_line(relay, 'relay_unpublished_statements_total{kind="partition",table="articles"} 0.0')
    log = relay.log.read_text()
    assert "ROWS OF employees REMOVED OR ADDED BY A PARTITION STATEMENT, NOT PUBLISHED" in log
    assert "ALTER TABLE employees TRUNCATE PARTITION p0" in log and "compare_keys" in log


@pytest.mark.parametrize(
    ("ddl", "ran", "kept", "counted"),
    [
        (  # the monthly split of a RANGE table's last partition: MariaDB refuses one that would lose rows
            "PARTITION BY RANGE (nr) (PARTITION p0 VALUES LESS THAN (10), PARTITION pmax VALUES LESS THAN MAXVALUE)",
            [
                "ALTER TABLE t REORGANIZE PARTITION pmax INTO (PARTITION p2025_01 VALUES LESS THAN (20), "
                "PARTITION pmax VALUES LESS THAN MAXVALUE)"
            ],
            [1, 2, 15, 100],
            0,
        ),
        (  # a LIST reorganize drops the rows of the values no new partition lists (2 here), without an error
            "PARTITION BY LIST (nr) (PARTITION a VALUES IN (1, 2), PARTITION b VALUES IN (15, 100, 500))",
            ["ALTER TABLE t REORGANIZE PARTITION a INTO (PARTITION a VALUES IN (1))"],
            [1, 15, 100],
            1,
        ),
        (  # a history partition dropped keeps every current row; the CURRENT one truncated empties them
            "WITH SYSTEM VERSIONING PARTITION BY SYSTEM_TIME LIMIT 1 "
            "(PARTITION h1 HISTORY, PARTITION h2 HISTORY, PARTITION c CURRENT)",
            ["ALTER TABLE t DROP PARTITION h1", "ALTER TABLE t TRUNCATE PARTITION c"],
            [],
            1,
        ),
    ],
    ids=["range", "list", "system_time"],
)
def test_a_partition_clause_that_keeps_every_row_is_not_counted(
    binlog_port, kafka_bootstrap, tmp_path, ddl, ran, kept, counted
):
    """Every REORGANIZE PARTITION ... INTO was counted as removing rows, so a RANGE table's monthly
    maintenance fired RelayChangesNotPublished every month, and so did dropping a system-versioned
    table's history partition: the relay reads the table's partitioning method to tell them apart."""
    table = f"CREATE TABLE t (nr BIGINT PRIMARY KEY, geaendert DATETIME(6), name VARCHAR(50)) {ddl}"
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, [table], "t")
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, '2024-05-01', 'a'), (2, '2024-05-01', 'b')"))
            conn.execute(text("INSERT INTO t VALUES (15, '2024-05-01', 'c'), (100, '2024-05-01', 'd')"))
            conn.execute(text("UPDATE t SET name = 'e', geaendert = '2024-05-02'"))  # history rows if versioned
        with engine.begin() as conn:
            for statement in ran:
                conn.execute(text(statement))
            assert conn.execute(text("SELECT nr FROM t ORDER BY nr")).scalars().all() == kept
            conn.execute(text("INSERT INTO t VALUES (500, '2024-05-03', 'z')"))  # read after the statements
        relay_messages(kafka_bootstrap, topics.topic("employees"), 9)
        metric_line(relay, f'relay_unpublished_statements_total{{kind="partition",table="t"}} {counted}.0')
    finally:
        relay.stop()
        engine.dispose()
    log = relay.log.read_text()
    assert ("BY A PARTITION STATEMENT, NOT PUBLISHED" in log) == bool(counted)
    assert ("keeps every current row" in log) == (len(ran) > counted)


def mapped_relay(binlog_port: int, bootstrap: str, workdir, ddl: list[str], table: str, **options):
    """A new database holding `ddl`, `table` mapped as employees (key nr, cursor geaendert; `options`:
    more of the entity's mapping options), and the relay publishing it: (engine, relay, topics).
    Stop the relay and dispose the engine after."""
    url = binlog_database(binlog_port, f"mapped_{uuid.uuid4().hex[:8]}")
    engine = source_engine(url)
    with engine.begin() as conn:
        for statement in ddl:
            conn.execute(text(statement))
    name = {"column": "name"}
    spec = {"table": table, "key": "nr", "cursor": [{"column": "geaendert"}], **options}
    doc = {"entities": {"employees": {**spec, "fields": {"first_name": name, "last_name": name, "email": name}}}}
    (workdir / "mapping.yaml").write_text(yaml.safe_dump(doc))
    relay = RelayProcess(url, bootstrap, workdir)
    relay.env["BASE_A_MAPPING_FILE"] = str(workdir / "mapping.yaml")
    relay.start()
    return engine, relay, relay_topics(relay, url, SourceMapping(parse_mapping(doc), "test"))


@pytest.mark.parametrize(
    "columns",
    [
        "",  # MariaDB's invisible row_start and row_end
        ", von TIMESTAMP(6) GENERATED ALWAYS AS ROW START, bis TIMESTAMP(6) GENERATED ALWAYS AS ROW END,"
        " PERIOD FOR SYSTEM_TIME (von, bis)",
    ],
    ids=["implicit", "named"],
)
def test_a_system_versioned_tables_delete_is_a_delete_and_its_history_rows_are_not_published(
    binlog_port, kafka_bootstrap, tmp_path, columns
):
    """MariaDB writes a DELETE of a system-versioned table as an UPDATE setting the row end, and an
    UPDATE as well as an INSERT of the old image (the history row): the relay published the delete
    as an upsert and each update's old image after it, so Base B kept deleted rows live."""
    ddl = f"CREATE TABLE t (nr BIGINT PRIMARY KEY, geaendert DATETIME(6), name VARCHAR(50){columns})"
    ddl += " WITH SYSTEM VERSIONING"
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, [ddl], "t")
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO t (nr, geaendert, name) VALUES (1, '2024-05-01', 'a'), (2, '2024-05-01', 'b')")
            )
        with engine.begin() as conn:
            conn.execute(text("UPDATE t SET name = 'a2', geaendert = '2024-05-02' WHERE nr = 1"))
            conn.execute(text("DELETE FROM t WHERE nr = 2"))
        with engine.begin() as conn:
            conn.execute(text("DELETE HISTORY FROM t"))  # deletes history rows: no current row's change
            conn.execute(text("INSERT INTO t (nr, geaendert, name) VALUES (3, '2024-05-03', 'c')"))
            assert conn.execute(text("SELECT nr, name FROM t ORDER BY nr")).all() == [(1, "a2"), (3, "c")]
        relay_messages(kafka_bootstrap, topics.topic("employees"), 5)
        time.sleep(1)  # anything published after the expected events would be a history row's
        found = read_topic(kafka_bootstrap, topics.topic("employees"))
        changes = sorted((topics.decode(m.topic(), m.value(), m.key()) for m in found), key=lambda c: c.source_ms)
        by_key = {key: [c.action for c in changes if c.id == key] for key in (1, 2, 3)}
        assert by_key == {1: ["upsert", "upsert"], 2: ["upsert", "delete"], 3: ["upsert"]}
        assert [c.record["first_name"] for c in changes if c.id == 1] == ["a", "a2"]
        metric_line(relay, 'relay_history_rows_total{table="t"} 3.0')  # one written, two deleted
    finally:
        relay.stop()
        engine.dispose()
    payloads = [orjson.loads(m.value())["payload"] for m in found]
    images = [image for p in payloads for image in (p["before"], p["after"]) if image]
    visible = {"nr", "geaendert", "name"} | ({"von", "bis"} if columns else set())
    assert {frozenset(image) for image in images} == {frozenset(visible)}  # row_start, row_end are invisible


def test_a_mapped_view_is_warned_of_at_start_as_a_table_the_relay_never_publishes(
    binlog_port, kafka_bootstrap, tmp_path
):
    """The binlog names the tables under a view, never the view: the relay published nothing of a
    mapped view and said nothing (the batch path reads it fine)."""
    ddl = [
        "CREATE TABLE basis (nr BIGINT PRIMARY KEY, geaendert DATETIME(6), name VARCHAR(50))",
        "CREATE VIEW t AS SELECT nr, geaendert, name FROM basis",
    ]
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, ddl, "t")
    try:
        metric_line(relay, 'relay_mapped_views{table="t"} 1.0')
    finally:
        relay.stop()
        engine.dispose()
    log = relay.log.read_text()
    assert "MAPPED TABLE t IS A VIEW" in log and "the batch sync alone carries them" in log


def test_a_mapped_table_whose_key_is_not_unique_alone_is_warned_of_at_start(binlog_port, kafka_bootstrap, tmp_path):
    """A table keyed (nr, mandant) mapped with `key: nr`: the relay keys its events by nr alone, so the
    drain cannot tell two tenants' rows nr = 7 apart. Said once at start, naming the table and the fix."""
    ddl = [
        "CREATE TABLE t (nr BIGINT, mandant INT, geaendert DATETIME(6), name VARCHAR(50), PRIMARY KEY (nr, mandant))"
    ]
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, ddl, "t")
    try:
        metric_line(relay, 'relay_mapped_views{table="t"} 0.0')  # past the start's checks
    finally:
        relay.stop()
        engine.dispose()
    warned = [line for line in relay.log.read_text().splitlines() if "is not unique alone" in line]
    assert len(warned) == 1 and "the key nr of the mapped t is not unique alone" in warned[0], relay.log.read_text()
    assert "docs/mapping.md, `key`" in warned[0]


def test_a_mapped_table_whose_mapping_asserts_its_key_unique_is_not_warned_of(binlog_port, kafka_bootstrap, tmp_path):
    """`key_unique: true` asserts the key names one row (ids unique across tenants in practice): the
    batch and `base-a check` honour it, the relay warned at every start all the same."""
    ddl = [
        "CREATE TABLE t (nr BIGINT, mandant INT, geaendert DATETIME(6), name VARCHAR(50), PRIMARY KEY (nr, mandant))"
    ]
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, ddl, "t", key_unique=True)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (nr, mandant, geaendert, name) VALUES (1, 1, '2024-05-01', 'a')"))
        assert len(relay_messages(kafka_bootstrap, topics.topic("employees"), 1)) == 1  # past the start's checks
    finally:
        relay.stop()
        engine.dispose()
    assert "is not unique alone" not in relay.log.read_text(), relay.log.read_text()


def key_warnings(relay) -> list[str]:
    return [line for line in relay.log.read_text().splitlines() if "IS NOT PUBLISHED" in line]


KEY_TYPE_METRIC = 'relay_unpublished_statements_total{kind="key_type",table="t"}'


@pytest.mark.parametrize("created", ["before the relay started", "after the relay started"])
def test_a_mapped_table_keyed_by_no_integer_is_not_published_and_warned_of_once(
    binlog_port, kafka_bootstrap, tmp_path, created
):
    """A VARCHAR key: `base-a check` refuses it (expected an integer type (the key), found
    VARCHAR(40)); the relay published the table without a word, and the drain read 'SKU1' as row
    4760885 and 'AAAB' and 'AAAAAAAB' as one row. Now the relay refuses each of its row events by the
    binlog's own type of the key, says so in one line by the batch path's rule, and counts them; a
    table created after the relay started (unknown to the catalogue then) too."""
    ddl = "CREATE TABLE t (nr VARCHAR(40) COLLATE utf8mb4_general_ci PRIMARY KEY, geaendert DATETIME(6), name TEXT)"
    later = created.startswith("after")
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, [] if later else [ddl], "t")
    try:
        metric_line(relay, f"{KEY_TYPE_METRIC} 0.0")  # the series starts at 0, so the first is an increase
        if later:
            with engine.begin() as conn:
                conn.execute(text(ddl))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('SKU1', '2026-01-01', 'a'), ('AAAB', '2026-01-01', 'b')"))
            conn.execute(text("INSERT INTO t VALUES ('AAAAAAAB', '2026-01-01', 'c')"))
        with engine.begin() as conn:
            conn.execute(text("UPDATE t SET nr = 'sku1 ' WHERE nr = 'SKU1'"))
            conn.execute(text("DELETE FROM t WHERE nr = 'AAAB'"))
        metric_line(relay, "relay_transactions_total 2.0")  # the relay read both transactions
        metric_line(relay, f"{KEY_TYPE_METRIC} 4.0")  # each of the four row events
        time.sleep(1)
        assert read_topic(kafka_bootstrap, topics.topic("employees")) == []
    finally:
        relay.stop()
        engine.dispose()
    warnings = key_warnings(relay)
    assert len(warnings) == 1, warnings
    assert "MAPPED TABLE t IS NOT PUBLISHED, its key is no integer: employees: t.nr: " in warnings[0]
    assert "expected an integer type (the key), found VARCHAR by the binlog's table map" in warnings[0]
    assert "Mapping keys must be integer columns" in warnings[0]


def published(kafka_bootstrap: str, topics) -> list:
    """(op, id) of every change the relay published on the employees topic."""
    found = read_topic(kafka_bootstrap, topics.topic("employees"))
    return [(c.op, c.id) for c in (topics.decode(m.topic(), m.value(), m.key()) for m in found)]


@pytest.mark.parametrize("relay_was", ["following", "behind"])
def test_a_key_an_alter_retypes_is_judged_by_the_binlogs_type_at_each_event(
    binlog_port, kafka_bootstrap, tmp_path, relay_was
):
    """BIGINT -> VARCHAR -> BIGINT. The relay read the key's type from information_schema when the
    binlog showed new columns: a relay behind the second ALTER found BIGINT there and published the
    VARCHAR rows (3 runs in 6 while following; always when stopped over the ALTERs). The binlog's
    table map at each event decides now."""
    ddl = ["CREATE TABLE t (nr BIGINT PRIMARY KEY, geaendert DATETIME(6), name TEXT)"]
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, ddl, "t")

    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, '2026-01-01', 'a')"))
        relay_messages(kafka_bootstrap, topics.topic("employees"), 1)
        if relay_was == "behind":
            relay.stop()  # resumes from its saved position: the catalogue is past every event below
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE t MODIFY nr VARCHAR(40) NOT NULL"))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('SKU1', '2026-01-01', 'b')"))
            conn.execute(text("DELETE FROM t WHERE nr = 'SKU1'"))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE t MODIFY nr BIGINT NOT NULL"))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2, '2026-01-01', 'c')"))
        if relay_was == "behind":
            relay.start()
        wait_for(lambda: ("c", 2) in published(kafka_bootstrap, topics), 30, "the insert after the second ALTER")
        metric_line(relay, f"{KEY_TYPE_METRIC} 2.0")  # the insert and the delete of 'SKU1'
        time.sleep(1)  # anything published after the expected events would be the VARCHAR key's
        found = published(kafka_bootstrap, topics)
    finally:
        relay.stop()
        engine.dispose()
    # A restart may repeat the last transaction read (c 1): the version guard makes it harmless.
    assert set(found) == {("c", 1), ("c", 2)}, found
    warnings = key_warnings(relay)
    assert len(warnings) == 1 and "found VARCHAR by the binlog's table map" in warnings[0], warnings
    assert "the key of the mapped t is an integer type now" in relay.log.read_text()


KEY_MISSING_METRIC = 'relay_unpublished_statements_total{kind="key_missing",table="t"}'


def test_a_mapped_tables_key_column_renamed_away_is_not_published_and_said_by_name(
    binlog_port, kafka_bootstrap, tmp_path
):
    """`ALTER TABLE t RENAME COLUMN nr TO id`: each change became an incomplete change saying
    `KeyError: 'nr'` and "the batch sync carries the row", key unknown, while the batch refused the
    entity (no such column). Now nothing of it is published, one line names the table, the key
    column and what to do, each row event is counted; once the column is back, it is published."""
    ddl = ["CREATE TABLE t (nr BIGINT PRIMARY KEY, geaendert DATETIME(6), name TEXT)"]
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, ddl, "t")

    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, '2026-01-01', 'a'), (2, '2026-01-01', 'b')"))
        relay_messages(kafka_bootstrap, topics.topic("employees"), 2)
        metric_line(relay, f"{KEY_MISSING_METRIC} 0.0")  # the series starts at 0, so the first is an increase
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE t RENAME COLUMN nr TO id"))
        with engine.begin() as conn:
            conn.execute(text("UPDATE t SET name = 'x', geaendert = '2026-01-02' WHERE id = 1"))
            conn.execute(text("DELETE FROM t WHERE id = 2"))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE t RENAME COLUMN id TO NR"))  # the name in another case
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (3, '2026-01-03', 'c')"))
        metric_line(relay, f"{KEY_MISSING_METRIC} 3.0")  # each row event
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE t RENAME COLUMN NR TO nr"))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (4, '2026-01-04', 'd')"))
        wait_for(
            lambda: ("c", 4) in published(kafka_bootstrap, topics), 30, "the insert after the key column came back"
        )
        time.sleep(1)
        found = published(kafka_bootstrap, topics)
    finally:
        relay.stop()
        engine.dispose()
    assert sorted(found) == [("c", 1), ("c", 2), ("c", 4)], found
    log = relay.log.read_text()
    warnings = key_warnings(relay)
    assert len(warnings) == 2, warnings
    assert "MAPPED TABLE t IS NOT PUBLISHED, it has no column nr (the mapping's key): employees: t.nr: " in warnings[0]
    assert "found no such column by the binlog's table map. Renamed or dropped in Base A?" in warnings[0]
    assert "Write the key column's name as `key` of employees in the mapping file (`base-a check`" in warnings[0]
    assert "found no such column (the table spells it 'NR': write that) by the binlog's table map" in warnings[1]
    assert "the mapped t has its key column nr again: its changes are published" in log
    assert "KeyError" not in log and "INCOMPLETE" not in log and "carries the row" not in log


def test_a_relay_whose_password_goes_beyond_ascii_streams(base_a_url, kafka_bootstrap, tmp_path):
    """PyMySQL, which reads the binlog, encodes a str password latin-1: a password with € failed with
    UnicodeEncodeError, one with ä was a wrong password (1045), where the batch's account signed in."""
    user, password = f"wide_relay_{uuid.uuid4().hex[:6]}", "pässwört-€"
    url = make_url(base_a_url)
    admin = source_engine(url.render_as_string(hide_password=False))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{url.database}`.* TO '{user}'@'%%'")
        conn.exec_driver_sql(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%%'")
    relay = RelayProcess(
        url.set(username=user, password=password).render_as_string(hide_password=False), kafka_bootstrap, tmp_path
    )
    try:
        relay.start()
        generate.seed(admin, "employees", 3, seed_value=1)
        changes = read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3)
        assert sorted(c.op for c in changes) == ["c", "c", "c"]
    finally:
        relay.stop()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()
    assert "Traceback" not in relay.log.read_text()
