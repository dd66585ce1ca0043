"""XA transactions: a prepared XA's changes are published at its XA COMMIT, never at XA PREPARE."""

from __future__ import annotations

from types import SimpleNamespace

import MySQLdb
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base_sync.demo import generate
from base_sync.relay import Deliveries, Progress, Relay
from base_sync.relay.xa import Prepared
from base_sync.source import source_engine
from tests.sync.test_relay import read_changes, relay_topics


def xa(base_a_url: str, *statements: str) -> None:
    """Statements on a connection of their own, closed after (MariaDB keeps a prepared XA)."""
    url = make_url(base_a_url)
    conn = MySQLdb.connect(host=url.host, port=url.port, user=url.username, db=url.database, autocommit=True)
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
    finally:
        conn.close()


def prepare(base_a_url: str, xid: str, *changes: str) -> None:
    xa(base_a_url, f"XA START {xid}", *changes, f"XA END {xid}", f"XA PREPARE {xid}")


def test_a_prepared_xa_is_published_at_its_commit_dropped_at_its_rollback_and_survives_a_restart(
    relay, base_a_url, kafka_bootstrap
):
    """MariaDB writes an XA's rows at XA PREPARE: the relay published them then, so Base B held a
    rolled-back update and delete and an insert, and showed a pending XA before Base A's readers."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 5, seed_value=51)
    prepare(
        base_a_url,
        "'x2'",
        "UPDATE employees SET position = 'rolled back' WHERE id = 2",
        "DELETE FROM employees WHERE id = 3",
        "INSERT INTO articles (title) VALUES ('rolled back')",
    )
    prepare(base_a_url, "'x4','b',7", "UPDATE employees SET position = 'committed later' WHERE id = 4")
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET position = 'marker' WHERE id = 1"))
    topics = relay_topics(relay, base_a_url)
    changes = read_changes(kafka_bootstrap, topics, 5 + 1)
    assert sorted((c.entity, c.op, c.id) for c in changes if c.op != "c") == [("employees", "u", 1)]
    relay.stop()  # both XAs still pending: a restart must not lose x4's changes
    relay.start()
    xa(base_a_url, "XA ROLLBACK 'x2'", "XA COMMIT 'x4','b',7")
    one_phase = ("UPDATE employees SET position = 'one phase' WHERE id = 5", "XA END 'x5'", "XA COMMIT 'x5' ONE PHASE")
    xa(base_a_url, "XA START 'x5'", *one_phase)
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET position = 'marker 2' WHERE id = 1"))
    changes = read_changes(kafka_bootstrap, topics, 5 + 4)
    engine.dispose()
    updates = {(c.id, c.record["position"]) for c in changes if c.op != "c"}
    assert updates == {(1, "marker"), (4, "committed later"), (5, "one phase"), (1, "marker 2")}, updates
    assert not [c for c in changes if c.entity == "articles"]


def _transaction(deliveries: Deliveries, position: int, pending: bool = False):
    entry = deliveries.begin()
    acknowledge = deliveries.sent(entry) if pending else None
    deliveries.end(entry, {"log_file": "binlog.000001", "log_pos": position})
    return acknowledge


def test_an_xa_that_changed_no_mapped_row_holds_no_position():
    """Review: every prepared XA held the saved position until its outcome, also one of unmapped
    tables, or one a crashed application server left prepared for good: the relay never saved its
    position again, and each restart re-read everything since."""
    relay = Relay.__new__(Relay)
    relay.deliveries, relay.prepared, relay.preparing = Deliveries(), {}, Prepared()
    relay.progress, relay.transaction = Progress({"log_file": "binlog.000001", "log_pos": 4}, False), None
    relay.transaction = relay.deliveries.begin()
    stream = SimpleNamespace(log_file="binlog.000001", log_pos=100)
    relay._xa_prepared(SimpleNamespace(one_phase=False, xid_format_id=1, xid_gtrid=b"orphan", xid_bqual=b""), stream)
    _transaction(relay.deliveries, 200)
    assert relay.deliveries.safe_position() == {"log_file": "binlog.000001", "log_pos": 200}


def test_the_queue_behind_pending_xas_stays_short():
    """Review: with two XAs pending the finished transactions behind the second were never folded."""
    deliveries = Deliveries()
    first = _transaction(deliveries, 1, pending=True)
    for position in range(2, 5):
        _transaction(deliveries, position)
    _transaction(deliveries, 5, pending=True)
    for position in range(6, 10_006):
        _transaction(deliveries, position)
        if position % 100 == 0:
            assert deliveries.safe_position() is None  # the first XA still holds it
    deliveries.safe_position()
    assert len(deliveries.transactions) <= 4
    first(None, None)  # the first XA's outcome acknowledged: up to the second
    assert deliveries.safe_position() == {"log_file": "binlog.000001", "log_pos": 4}
