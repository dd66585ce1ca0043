"""XA transactions: a prepared XA's changes are published at its XA COMMIT, never at XA PREPARE."""

from __future__ import annotations

import MySQLdb
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base_sync.demo import generate
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
