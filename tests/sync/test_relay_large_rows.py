"""A row change whose event no Kafka message can hold: dead-lettered keyed, counted, and the relay goes on."""

from __future__ import annotations

from sqlalchemy import text

from base_sync.demo import generate
from base_sync.source import source_engine
from tests.sync.test_relay import decoded, metric_line, relay_messages, relay_topics


def test_a_row_too_large_for_a_message_is_dead_lettered_keyed_and_the_relay_goes_on(relay, base_a_url, kafka_bootstrap):
    """The producer refused the 1.5 MB event (MSG_SIZE_TOO_LARGE): the relay exited, and every restart
    met the same row, so nothing after it was published for any table."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "articles", 2, seed_value=41)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE articles MODIFY content LONGTEXT NULL"))
        conn.execute(text("UPDATE articles SET content = REPEAT('x', 1500000) WHERE id = 1"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE articles SET title = 'after the big one' WHERE id = 2"))
    engine.dispose()
    topics = relay_topics(relay, base_a_url)
    found = relay_messages(kafka_bootstrap, topics.topic("articles"), 4)
    read = [(message.key(), *decoded(topics, message)) for message in found]
    dead = [(key, why) for key, kind, why in read if kind == "dead"]
    assert len(read) == 4 and len(dead) == 1, read
    assert dead[0][0] == b"1" and "more than the 1000000 bytes" in dead[0][1], dead
    assert "RELAY_MESSAGE_MAX_BYTES" in dead[0][1] and "batch sync carries the row" in dead[0][1]
    changes = [change for _, kind, change in read if kind == "change"]
    assert sorted((c.op, c.id) for c in changes) == [("c", 1), ("c", 2), ("u", 2)]
    metric_line(relay, 'relay_unpublished_statements_total{kind="too_large",table="articles"} 1.0')
    assert relay.process.poll() is None  # still running
