"""The drain and the broker's state it does not own, on the real broker (Tansu): a dead-letter topic
deleted, a partition held by a transaction left open (outside probe with third-party clients)."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from base_sync import events
from base_sync.errors import ConfigurationError
from tests.sync.test_events_apply import T0, Events, employee
from tests.sync.test_topics import configs_of

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def changes(kafka_bootstrap, event_settings, base_b) -> Events:
    return Events(kafka_bootstrap, event_settings, base_b)


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic], operation_timeout=10)[topic].result(timeout=10)
    deadline = time.monotonic() + 10
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{topic} still listed"
        time.sleep(0.2)


def test_a_deleted_dead_letter_topic_is_made_again_with_its_retention_by_the_next_drain(changes, caplog, monkeypatch):
    """Tansu, like Kafka by default, auto-creates a topic a producer writes to: the drain's first
    letter made the deleted topic again with the broker's partitions and retention (7 days on Kafka)."""
    monkeypatch.delenv("RELAY_PARTITIONS", raising=False)
    dlq = changes.settings.dlq_topic
    delete_topic(changes.bootstrap, dlq)
    changes.raw(b'"a string"', key=1, partition=0)
    with caplog.at_level(logging.WARNING):
        assert changes.drain().counts["dead_lettered"] == 1
    assert f"the dead-letter topic {dlq} did not exist (deleted?): created it with its retention" in caplog.text
    configs = configs_of(changes.bootstrap, dlq)
    assert configs.get("retention.ms") == "-1" and configs.get("retention.bytes") == "-1", configs
    described = AdminClient({"bootstrap.servers": changes.bootstrap}).list_topics(dlq, timeout=10).topics[dlq]
    assert len(described.partitions) == 3, "as the starters make it"
    assert len(changes.dead_letters()) == 1


def test_letters_for_a_missing_dead_letter_topic_fail_the_run_as_a_configuration_error_at_once(changes):
    """Without auto-create (or the topic deleted during a run), letters waited 30 s and failed with
    "flush timed out", retried for ever on the same batch. The drain's producer never makes it."""
    changes.raw(b'"a string"', key=1, partition=0)
    consumer = Consumer({"bootstrap.servers": changes.bootstrap, "group.id": "reader"})
    consumer.assign([TopicPartition(changes.topics.topic("employees"), 0, OFFSET_BEGINNING)])
    try:
        message = next(m for m in iter(lambda: consumer.poll(1), "never") if m is not None and m.error() is None)
    finally:
        consumer.close()
    missing = f"{changes.settings.dlq_topic}.gone"
    producer = events.producer_for({"bootstrap.servers": changes.bootstrap})
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=rf"dead-letter topic {missing} \(EVENTS_DLQ_TOPIC\) does not exist"):
        events.dead_letter(producer, missing, [(message, "BadEvent", "a test")], events.DrainReport())
    assert time.monotonic() - started < 15
    listed = AdminClient({"bootstrap.servers": changes.bootstrap}).list_topics(timeout=10).topics
    assert missing not in listed, "the producer made it by the broker's auto-create, with the broker's retention"


def test_a_partition_held_by_an_open_transaction_is_said_so_not_blamed_on_fetch_sizes(changes, caplog):
    """A read_committed drain stops at the last stable offset behind a transaction neither committed
    nor aborted; it warned of a message too large to fetch ("the Kafka errors above", there were none)."""
    topic = changes.topics.topic("employees")
    open_one = Producer({"bootstrap.servers": changes.bootstrap, "transactional.id": f"{topic}.open"})
    open_one.init_transactions(10)
    open_one.begin_transaction()
    open_one.produce(topic, value=b"{}", key=b"9", partition=0)
    open_one.flush(10)  # and never committed: its producer died, as far as the drain can tell
    for key in (1, 2, 3):
        changes.send("c", None, employee(key, T0), partition=0)
    changes.send("c", None, employee(4, T0), partition=1)
    with caplog.at_level(logging.WARNING, logger="base_sync.events"):
        report = changes.drain()
    assert report.counts["inserted"] == 1 and report.lag == 4, report.to_json()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{topic} [0]: ")]
    assert len(said) == 1, caplog.text
    assert "while 4 events wait (the group's committed offset none, the last stable offset 0, the end 4)" in said[0]
    assert "a transaction begun at offset 0 is neither committed nor aborted" in said[0]
    assert "transaction.timeout.ms" in said[0] and "find-hanging --topic " in said[0]
    assert "receive.message.max.bytes" not in said[0]


def test_the_batch_log_line_says_its_events_were_read_not_all_applied(changes, caplog):
    changes.send("c", None, employee(1, T0), partition=0)
    changes.raw(b"not json", key=2, partition=0)
    changes.raw(None, key=3, partition=0)  # a tombstone
    with caplog.at_level(logging.INFO, logger="base_sync.events"):
        report = changes.drain()
    assert report.counts["inserted"] == 1 and report.counts["dead_lettered"] == 1, report.to_json()
    assert "batch 1: 3 events read, run totals " in caplog.text
    assert "events applied" not in caplog.text
