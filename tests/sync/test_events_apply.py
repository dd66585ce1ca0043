"""Applying change events: a real broker, the real API over PostgreSQL, the drain the events DAG runs."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from base_sync import consumer_errors, dead_letters, events
from base_sync.api_client import ApiError, BaseBApi
from base_sync.debezium import EnvelopeWriter, SourceColumn, Topics, identity_columns
from base_sync.demo.event_maker import churn_and_publish
from base_sync.errors import ConfigurationError
from base_sync.mapping import SourceMapping
from base_sync.settings import EventSettings
from base_sync.source import source_engine
from base_sync.source_schema import create_schema
from base_sync.topics import ensure_topics
from testbed.servers import free_port
from tests.sync.conftest import assert_in_sync, read_topic, synced_rows

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SOURCE = {"ts_ms": int(T0.timestamp() * 1000), "server_id": 1, "gtid": None, "file": "binlog.000001", "pos": 4}


def employee(key: int, version: datetime, **changes) -> dict:
    return {
        "id": key,
        "first_name": f"First{key}",
        "last_name": "Last",
        "email": f"e{key}@example.com",
        "department": "Sales",
        "position": "Analyst",
        "salary": Decimal("50000.00"),
        "hired_at": date(2020, 1, 1),
        "created_at": T0 - timedelta(days=1),
        "updated_at": version,
        **changes,
    }


class Events:
    """Produces envelopes to this test's topics and runs drains, like the DAG's task."""

    def __init__(self, bootstrap: str, settings, base_b, topics: Topics | None = None):
        self.bootstrap, self.settings, self.base_b = bootstrap, settings, base_b
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        self.writer = EnvelopeWriter.identity("employees", database=settings.source_database)
        self.topics = topics or Topics.from_settings(settings)

    def send(self, op: str, before: dict | None, after: dict | None, partition: int | None = None) -> None:
        self.raw(self.writer.envelope(op, before, after, {**SOURCE, "row": 0}, 1), (after or before)["id"], partition)

    def raw(
        self, value: bytes | None, key: int, partition: int | None = None, entity: str = "employees", headers=None
    ) -> None:
        extra = {"partition": partition} if partition is not None else {}
        self.producer.produce(self.topics.topic(entity), value=value, key=str(key), headers=headers, **extra)
        self.producer.flush(10)

    def drain(self, api: BaseBApi | None = None, config: dict | None = None) -> events.DrainReport:
        """One run, as the task makes it; `config`: the Kafka connection's settings (default: the broker)."""
        config = config or {"bootstrap.servers": self.bootstrap}
        consumer, producer = events.consumer_for(config, self.settings), events.producer_for(config)
        api = api or self.base_b.api()
        try:
            return events.drain(consumer, producer, api, self.settings, self.topics, kafka_config=config)
        finally:
            consumer.close()
            api.close()

    def dead_letters(self) -> list:
        found = read_topic(self.bootstrap, self.settings.dlq_topic)
        return sorted(found, key=lambda m: dict(m.headers())["__connect.errors.offset"])

    def rows(self) -> dict:
        return synced_rows(self.base_b.database_url, "employees")


@pytest.fixture
def changes(kafka_bootstrap, event_settings, base_b) -> Events:
    return Events(kafka_bootstrap, event_settings, base_b)


def test_inserts_updates_and_deletes_arrive_and_offsets_are_committed(changes):
    v1, v2 = T0, T0 + timedelta(seconds=5)
    for key in (1, 2, 3):
        changes.send("c", None, employee(key, v1))
    changes.send("u", employee(2, v1), employee(2, v2, position="Lead", salary=Decimal("61000.50")))
    changes.send("d", employee(3, v1), None)
    report = changes.drain()
    assert report.counts["consumed"] == 5
    assert report.counts["inserted"] == 2 and report.counts["deleted"] + report.counts["not_found"] == 1
    rows = changes.rows()
    assert sorted(rows) == [1, 2]
    assert rows[2][0] == v2 and rows[2][5] == "Lead" and rows[2][6] == "61000.50"
    assert report.lag == 0
    again = changes.drain()
    assert again.counts["consumed"] == 0, "offsets were not committed"
    assert again.lag == 0, "a partition this run read nothing from counts from its committed offset"
    # One that consumed nothing still names every entity it read, for their last success (metrics).
    assert again.entities == changes.topics.entities and "employees" in again.entities


def test_an_event_too_large_for_the_dead_letter_topic_is_a_letter_without_its_value(changes):
    changes.producer = Producer({"bootstrap.servers": changes.bootstrap, "message.max.bytes": 4_000_000})
    changes.send("c", None, employee(1, T0), partition=0)
    changes.raw(b"x" * 2_000_000, key=2, partition=0)  # not JSON, and too large to store as a letter
    changes.send("c", None, employee(3, T0), partition=0)
    report = changes.drain()
    assert report.counts["inserted"] == 2 and report.counts["dead_lettered"] == 1
    assert changes.drain().counts["consumed"] == 0, "the batch was committed: the pipeline goes on"
    (letter,) = changes.dead_letters()
    headers = dict(letter.headers())
    assert letter.value() is None and headers["base_sync.value_left_out"] == b"2000000"
    assert b"not JSON" in headers["__connect.errors.exception.message"]


def test_an_event_whose_key_or_headers_are_too_large_is_a_letter_without_them(changes):
    """A 2 MB key or header made the letter too large to produce (MSG_SIZE_TOO_LARGE): every run
    failed on it and its partition never moved again (outside probe)."""
    changes.producer = Producer({"bootstrap.servers": changes.bootstrap, "message.max.bytes": 5_000_000})
    topic = changes.topics.topic("employees")
    big_key, big_header = b"7" * 2_000_000, [("big", b"h" * 2_000_000), ("trace", b"abc")]
    changes.producer.produce(topic, value=b"not json", key=big_key, partition=0)
    changes.producer.produce(topic, value=b"not json", key=b"8", partition=0, headers=big_header)
    changes.producer.flush(10)
    changes.send("c", None, employee(3, T0), partition=0)
    report = changes.drain()
    assert report.counts["inserted"] == 1 and report.counts["dead_lettered"] == 2, report.to_json()
    assert changes.drain().counts["consumed"] == 0, "the batch was committed: the partition goes on"
    without_key, without_headers = (dict(m.headers()) | {"key": m.key()} for m in changes.dead_letters())
    assert without_key["key"] is None and without_key["base_sync.key_left_out"] == b"2000000"
    assert without_key["base_sync.key_left_out.sha256"] == hashlib.sha256(big_key).hexdigest().encode()
    assert b"not JSON" in without_key["__connect.errors.exception.message"]
    assert without_headers["key"] == b"8" and "big" not in without_headers and "trace" not in without_headers
    assert without_headers["base_sync.headers_left_out"] == b"2000011"

    letters = dead_letters.read({"bootstrap.servers": changes.bootstrap}, changes.settings.dlq_topic)
    assert [(letter.left_out, letter.value) for letter in letters] == [
        ({"key": 2_000_000}, b"not json"),
        ({"headers": 2_000_011}, b"not json"),
    ]
    producer = dead_letters.replay_producer({"bootstrap.servers": changes.bootstrap})
    with pytest.raises(dead_letters.DeadLetterError, match=r"cannot rebuild: .*without its key of 2000000 bytes"):
        dead_letters.replay(producer, changes.settings.dlq_topic, letters)
    assert len(read_topic(changes.bootstrap, topic)) == 3, "nothing was sent in place of the originals"


def test_a_message_the_drain_cannot_fetch_shows_in_its_lag_and_log(changes, caplog):
    """A message over the consumer's receive.message.max.bytes (Tansu took a 110 MB one) blocked its
    partition while every run reported lag 0: a partition fetched nothing from was not counted
    (outside probe). Here the limit is lowered to 1 MB for a 2 MB message."""
    changes.send("c", None, employee(1, T0), partition=0)
    assert changes.drain().counts["inserted"] == 1
    changes.producer = Producer({"bootstrap.servers": changes.bootstrap, "message.max.bytes": 5_000_000})
    changes.raw(b"x" * 2_000_000, key=2, partition=0)
    changes.send("c", None, employee(3, T0), partition=0)
    # Every partition committed, as a group that has run before: with none, resolving its start
    # shares the connection the failing fetch resets, and the run may fail on that instead.
    group = Consumer({"bootstrap.servers": changes.bootstrap, "group.id": changes.settings.group_id})
    start = [
        TopicPartition(t, p, 1 if p == 0 and "employees" in t else 0) for t in changes.topics.names for p in range(3)
    ]
    group.commit(offsets=start, asynchronous=False)
    group.close()
    small = {"bootstrap.servers": changes.bootstrap, "fetch.max.bytes": 1_000_000}
    small["receive.message.max.bytes"] = 1_000_512
    for _ in range(2):
        report = drain_past_coordinator_resets(changes, small, caplog)
        assert report.counts["consumed"] == 0 and report.lag == 2, report.to_json()
    topic = changes.topics.topic("employees")
    said = "this run read nothing from it while 2 events wait (the group's committed offset 1, the end 3)"
    assert f"{topic} [0]: {said}" in caplog.text
    assert "receive.message.max.bytes" in caplog.text


def drain_past_coordinator_resets(changes, config: dict, caplog) -> events.DrainReport:
    """A drain with `config`. The failing fetch resets the connection the group coordinator's lookup
    shares, which now and then failed the run ("FindCoordinator response error: Local: Bad message
    format", once in five CI runs with three test files at a time): librdkafka reports it and
    recovers by itself, so the drain logs it and goes on."""
    with caplog.at_level("WARNING", logger="base_sync.events"):
        return changes.drain(config=config)


def test_a_consumer_error_librdkafka_recovers_from_is_logged_and_the_drain_goes_on(changes, caplog):
    """Every error a fetch returned failed the run: librdkafka reports most consumer errors only to
    inform and recovers by itself. A Kafka connection whose extra asks for end-of-partition events
    (`enable.partition.eof`, a common consumer setting) failed every run with `_PARTITION_EOF`."""
    changes.send("c", None, employee(1, T0), partition=0)
    changes.send("c", None, employee(2, T0), partition=1)
    changes.raw(b"not json", key=3, partition=2)
    config = {"bootstrap.servers": changes.bootstrap, "enable.partition.eof": True}
    with caplog.at_level("WARNING"):
        report = changes.drain(config=config)
        assert report.counts["inserted"] == 2 and report.lag == 0, report.to_json()
        assert set(changes.rows()) == {1, 2}
        (letter,) = dead_letters.read(config, changes.settings.dlq_topic)  # base-sync-dlq's reader too
    assert letter.value == b"not json"
    assert "end of partition" not in caplog.text.lower(), "the end of a partition is no news"


def test_a_consumer_in_the_drains_group_is_a_clear_error_not_a_broker_code(changes):
    """An operator's console consumer in the drain's group made every commit fail with
    `UNKNOWN_MEMBER_ID "Commit failed: Broker: Unknown member"` (outside probe)."""
    member = Consumer(
        {"bootstrap.servers": changes.bootstrap, "group.id": changes.settings.group_id, "session.timeout.ms": 6000}
    )
    member.subscribe([changes.topics.topic("employees")])
    joined = time.monotonic()
    while not member.assignment() and time.monotonic() - joined < 30:
        member.poll(0.2)
    assert member.assignment(), "the outside consumer joined the group"
    changes.send("c", None, employee(1, T0), partition=0)
    with pytest.raises(events.GroupJoined, match=f"another consumer joined the group '{changes.settings.group_id}'"):
        changes.drain()
    member.close()
    assert changes.drain().counts["consumed"] == 1, "once it left, the batch is read again and committed"


def test_the_drain_reads_committed_transactions_only(changes):
    """The drain left isolation.level to librdkafka's default, so a connection's extra could make it
    read aborted transactions (outside probe). Now it sets read_committed and refuses another value."""
    extra = {"bootstrap.servers": changes.bootstrap, "isolation.level": "read_uncommitted"}
    with pytest.raises(ConfigurationError, match="isolation.level=read_uncommitted.*aborted"):
        events.consumer_for(extra, changes.settings)
    changes.send("c", None, employee(1, T0), partition=0)
    consumer = events.consumer_for({**extra, "isolation.level": "read_committed"}, changes.settings)
    api = changes.base_b.api()
    try:
        config = {"bootstrap.servers": changes.bootstrap}
        producer = events.producer_for(config)
        report = events.drain(consumer, producer, api, changes.settings, changes.topics, kafka_config=config)
        assert report.counts["inserted"] == 1
    finally:
        consumer.close()
        api.close()


def test_an_update_that_changes_the_key_is_a_dead_letter(changes):
    """An `op u` whose before image held key 1 and whose after image holds key 2 was upserted as
    key 2 and key 1 stayed live (outside probe); Debezium writes a key change as a `d` and a `c`."""
    changes.send("c", None, employee(1, T0), partition=0)
    assert changes.drain().counts["inserted"] == 1
    changes.send("u", employee(1, T0), employee(2, T0 + timedelta(seconds=5)), partition=0)
    report = changes.drain()
    assert report.counts["dead_lettered"] == 1 and report.counts["inserted"] == 0, report.to_json()
    assert sorted(changes.rows()) == [1]
    (letter,) = changes.dead_letters()
    reason = dict(letter.headers())["__connect.errors.exception.message"].decode()
    assert "key changed within one update (op u): before.id = 1, after.id = 2" in reason
    assert "a delete of the old key and a create of the new one" in reason


def send_keyed(
    changes: Events, op: str, before: dict | None, after: dict | None, tenant: int, partition=0, headers=None
) -> None:
    """A change as Debezium keys it for a table whose primary key is (id, tenant): the whole key."""
    value = changes.writer.envelope(op, before, after, {**SOURCE, "row": 0}, 1) if op else None
    key = orjson.dumps({"id": (after or before)["id"], "tenant": tenant})
    topic = changes.topics.topic("employees")
    changes.producer.produce(topic, value=value, key=key, partition=partition, headers=headers)
    changes.producer.flush(10)


def test_two_rows_sharing_the_mapped_key_are_dead_letters_not_one_row(changes):
    """An outside probe: a table keyed (id, tenant) mapped with `key: id`; tenant 2's row 7 was applied
    over tenant 1's row 7 in Base B, silently. Changes of one run whose message keys name two rows of
    one mapped key are dead letters, neither applied, with the reason; other rows go on."""
    changes.settings = changes.settings.model_copy(update={"batch_size": 2})
    send_keyed(changes, "c", None, employee(7, T0), tenant=1)
    send_keyed(changes, "c", None, employee(8, T0), tenant=1)
    send_keyed(changes, "c", None, employee(7, T0 + timedelta(seconds=1), email="t2@example.com"), tenant=2)
    send_keyed(changes, "c", None, employee(9, T0), tenant=1)
    send_keyed(changes, "u", None, employee(7, T0 + timedelta(seconds=2), position="Lead"), tenant=1)
    send_keyed(changes, "c", None, employee(11, T0), tenant=1)
    send_keyed(changes, "c", None, employee(10, T0), tenant=1)  # both rows 10 in one batch: neither applied
    send_keyed(changes, "c", None, employee(10, T0, email="t2-10@example.com"), tenant=2)
    report = changes.drain()
    rows = changes.rows()
    assert rows[7][3] == "e7@example.com", "tenant 2's row 7 overwrote tenant 1's in Base B"
    assert rows[7][5] == "Analyst", "a change of a key found shared in the run was applied"
    assert sorted(rows) == [7, 8, 9, 11]  # tenant 1's first row 7 went in the first batch, before the other showed
    assert report.counts["shared_key"] == 4 and report.dead_by_kind["Quarantined"] == 4, report.to_json()
    letters = changes.dead_letters()
    assert [orjson.loads(m.key()) for m in letters] == [
        {"id": 7, "tenant": 2},
        {"id": 7, "tenant": 1},
        {"id": 10, "tenant": 1},
        {"id": 10, "tenant": 2},
    ]
    first = letters[0]
    reason = dict(first.headers())["__connect.errors.exception.message"].decode()
    assert reason.startswith(
        "employees: two rows of employees share the mapped key id = 7 (their message keys differ beyond it: "
        '{"tenant":1} and {"tenant":2})'
    )
    assert "docs/mapping.md, `key`" in reason


def test_a_row_whose_whole_key_changes_is_one_row_moving_not_two_sharing(changes):
    """Debezium writes a primary key change ((7, 1) to (7, 2): a partitioned table's date) as a delete
    of the old key and a create of the new: the mapped key 7 names one row throughout."""
    send_keyed(changes, "c", None, employee(7, T0), tenant=1)
    send_keyed(changes, "d", employee(7, T0), None, tenant=1)
    send_keyed(changes, "c", None, employee(7, T0 + timedelta(seconds=1), position="Lead"), tenant=2)
    report = changes.drain()
    assert report.counts["dead_lettered"] == 0 and changes.rows()[7][5] == "Lead", report.to_json()


def test_a_row_moving_whose_create_is_read_before_its_old_keys_delete_is_not_two_rows(changes):
    """A reviewer's probe: Debezium partitions by the whole key, so a primary key change (7, 1) to
    (7, 2) puts the create of the new key on another partition than the delete of the old, often read
    first (a backlog). Without its headers the create was flagged as a second row: the move, the
    delete and every later change of key 7 in the run went to the dead letters. Each partition here
    gives one message per fetch, so the old key's delete, behind a backlog, is read last."""
    old_key, new_key = ({"id": 7, "tenant": tenant} for tenant in (1, 2))
    moved = T0 + timedelta(seconds=1)
    send_keyed(changes, "c", None, employee(7, T0), tenant=1, partition=0)
    send_keyed(
        changes, "c", None, employee(7, moved), tenant=2, partition=1,
        headers=[("__debezium.oldkey", orjson.dumps(old_key))],
    )  # fmt: skip
    send_keyed(changes, "u", employee(7, moved), employee(7, moved + timedelta(seconds=1), position="Lead"), 2, 1)
    for key in (20, 21, 22):
        send_keyed(changes, "c", None, employee(key, T0), tenant=1, partition=0)
    send_keyed(
        changes, "d", employee(7, T0), None, tenant=1, partition=0,
        headers=[("__debezium.newkey", orjson.dumps(new_key))],
    )  # fmt: skip
    send_keyed(changes, None, employee(7, T0), None, tenant=1, partition=0)  # its tombstone
    config = {"bootstrap.servers": changes.bootstrap, "max.partition.fetch.bytes": 1}
    report = changes.drain(config=config)
    assert report.counts["shared_key"] == 0 and report.counts["dead_lettered"] == 0, report.to_json()
    rows = changes.rows()
    assert sorted(rows) == [7, 20, 21, 22] and rows[7][5] == "Lead"


@pytest.mark.parametrize("apart", [False, True], ids=["one batch", "another partition, read later"])
def test_the_old_keys_delete_of_a_primary_key_change_keeping_the_mapped_key_deletes_nothing(changes, apart):
    """Second review: (7, 1) to (7, 2) by an UPDATE that left the stamp as it was. The delete of the
    old key carries that stamp: read with or after the create of the new one it won the tie and
    deleted row 7, which lives on in Base A. A delete whose `__debezium.newkey` keeps the mapped key
    is no delete of it."""
    old_key, new_key = ({"id": 7, "tenant": tenant} for tenant in (1, 2))
    send_keyed(changes, "c", None, employee(7, T0), tenant=1, partition=0)
    assert changes.drain().counts["inserted"] == 1
    send_keyed(
        changes, "c", None, employee(7, T0, position="Moved"), tenant=2, partition=1 if apart else 0,
        headers=[("__debezium.oldkey", orjson.dumps(old_key))],
    )  # fmt: skip
    for key in (20, 21, 22):
        send_keyed(changes, "c", None, employee(key, T0), tenant=1, partition=0)
    send_keyed(
        changes, "d", employee(7, T0), None, tenant=1, partition=0,
        headers=[("__debezium.newkey", orjson.dumps(new_key))],
    )  # fmt: skip
    config = {"bootstrap.servers": changes.bootstrap, "max.partition.fetch.bytes": 1} if apart else None
    report = changes.drain(config=config)
    assert report.counts["dead_lettered"] == 0 and report.counts["moved_in_place"] == 1, report.to_json()
    rows = changes.rows()
    assert sorted(rows) == [7, 20, 21, 22] and rows[7][5] == "Moved", rows


def test_an_event_of_another_table_or_database_than_its_topics_is_a_dead_letter(changes):
    """`source.table` and `source.db` were ignored: an event saying `table: articles` on the
    employees topic was applied as an employee (outside probe). An event without them still applies."""

    def event(key: int, **source) -> bytes:
        document = orjson.loads(changes.writer.envelope("c", None, employee(key, T0), {**SOURCE, "row": 0}, 1))
        document["payload"]["source"] = {k: v for k, v in {**document["payload"]["source"], **source}.items() if v}
        return orjson.dumps(document)

    changes.raw(event(1, table="articles"), key=1, partition=0)
    changes.raw(event(2, db="other_db"), key=2, partition=0)
    changes.raw(event(3, table=None, db=None), key=3, partition=0)
    changes.send("c", None, employee(4, T0), partition=0)  # as the relay writes it: its table and database
    report = changes.drain()
    assert report.counts["dead_lettered"] == 2 and report.counts["inserted"] == 2, report.to_json()
    assert sorted(changes.rows()) == [3, 4]
    topic = changes.topics.topic("employees")
    reasons = [dict(m.headers())["__connect.errors.exception.message"].decode() for m in changes.dead_letters()]
    assert reasons == [
        f"`source.table` names the table 'articles', but its topic {topic} carries the table 'employees': "
        "not applied as a row of employees",
        f"`source.db` names the database 'other_db', but its topic {topic} carries the database "
        f"'{changes.settings.source_database}': not applied as a row of employees",
    ]


def test_a_duplicate_delivery_changes_nothing(changes):
    for _ in range(2):
        for key in (1, 2):
            changes.send("c", None, employee(key, T0))
        first = changes.drain()
    assert first.counts["unchanged"] == 2 and first.counts["inserted"] == 0
    assert sorted(changes.rows()) == [1, 2]


def test_an_older_event_after_a_newer_one_is_stale(changes):
    newer, older = T0 + timedelta(seconds=10), T0
    changes.send("u", None, employee(1, newer, position="Director"))
    changes.drain()
    changes.send("u", None, employee(1, older, position="Intern"))
    changes.send("d", employee(1, older), None)
    report = changes.drain()
    assert report.counts["stale"] == 1 and report.counts["superseded"] == 1
    assert changes.rows()[1][0] == newer and changes.rows()[1][5] == "Director"


@pytest.mark.parametrize("drained_between", [False, True])
def test_an_update_stamped_before_the_state_it_replaced_wins_by_commit_order(changes, drained_between):
    """MariaDB stamps ON UPDATE columns when the statement starts: an update that waited for
    another transaction's lock commits after it with an older stamp. Its before image names the
    version it replaced, which Base B holds (or this batch supersedes): the later commit wins, in
    one batch and across batches; the outside probe saw the older state kept and counted superseded."""
    v0, first, second, waited = T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=3), T0 + timedelta(seconds=2)
    changes.send("c", None, employee(1, v0))
    changes.send("u", employee(1, v0), employee(1, first, position="t1-first"))
    changes.send("u", employee(1, first, position="t1-first"), employee(1, second, position="t1-second"))
    if drained_between:
        changes.drain()
        assert changes.rows()[1][5] == "t1-second"
    changes.send("u", employee(1, second, position="t1-second"), employee(1, waited, position="t2-final"))
    report = changes.drain()
    assert changes.rows()[1][0] == waited and changes.rows()[1][5] == "t2-final", report.counts
    assert report.counts["stale"] == 0
    # A redelivery of an update older still, whose before image Base B no longer holds, stays stale.
    changes.send("u", employee(1, first, position="t1-first"), employee(1, v0, position="ghost"))
    assert changes.drain().counts["stale"] == 1 and changes.rows()[1][5] == "t2-final"


@pytest.mark.parametrize(
    "case", ["a change after the waiter", "a holder before the waiter", "a delete after the waiter"]
)
def test_a_batch_collapsing_a_key_around_a_stamp_that_went_back_ends_at_its_last_commit(changes, case):
    """Base B holds the state the batch's first change of the key replaced; the batch's last change
    goes in place of all of them, so it replaces that state (or deletes it), even when older. The
    review found each of these left Base B at the earlier state: where batches are cut must not matter."""
    t1, t2, t3 = (T0 + timedelta(seconds=s) for s in (1, 2, 3))
    held = t2 if case == "a holder before the waiter" else t3
    changes.send("c", None, employee(1, held, position="held"))
    changes.drain()
    if case == "a holder before the waiter":
        changes.send("u", employee(1, t2, position="held"), employee(1, t3, position="holder"))
    changes.send("u", employee(1, t3, position="holder"), employee(1, t1, position="waiter"))
    if case == "a change after the waiter":
        changes.send(
            "u", employee(1, t1, position="waiter"), employee(1, t1 + timedelta(milliseconds=500), position="last")
        )
    if case == "a delete after the waiter":
        changes.send("d", employee(1, t1, position="waiter"), None)
    report = changes.drain()
    rows = changes.rows()
    if case == "a delete after the waiter":
        assert 1 not in rows and report.counts["deleted"] == 1, report.counts
    else:
        assert rows[1][5] == ("last" if case == "a change after the waiter" else "waiter"), report.counts
        assert report.counts["updated"] == 1 and report.counts["stale"] == 0


def test_a_key_change_deletes_the_old_row_and_creates_the_new_with_its_unique_values(changes):
    v1, v2 = T0, T0 + timedelta(seconds=5)
    changes.send("c", None, employee(1, v1))
    changes.drain()
    # As Debezium (and the relay) emit an UPDATE of the key: a delete of the old key, a create of the
    # new one holding the same email. Both in one batch: the delete must free the email first.
    changes.send("d", employee(1, v1), None)
    changes.send("c", None, employee(1001, v2, email="e1@example.com"))
    report = changes.drain()
    assert report.counts["deleted"] == 1 and report.counts["inserted"] == 1, report.to_json()
    assert report.counts["dead_lettered"] == 0
    rows = changes.rows()
    assert sorted(rows) == [1001] and rows[1001][3] == "e1@example.com"


def test_malformed_and_rejected_events_go_to_the_dead_letters_and_never_block(changes):
    changes.send("c", None, employee(1, T0), partition=0)
    changes.raw(b"{this is not json", key=2, partition=0)
    changes.send("c", None, employee(3, T0, email="not-an-address"), partition=0)  # the API refuses it
    changes.send("c", None, employee(4, T0), partition=0)
    report = changes.drain()
    assert sorted(changes.rows()) == [1, 4], f"{report.to_json()}: the events after the bad ones were applied"
    assert report.counts["dead_lettered"] == 2 and report.counts["rejected"] == 1
    letters = changes.dead_letters()
    assert [m.value()[:17] for m in letters][0] == b"{this is not json"
    first, second = (dict(m.headers()) for m in letters)
    assert first["__connect.errors.offset"] == b"1" and b"not JSON" in first["__connect.errors.exception.message"]
    assert first["__connect.errors.topic"] == changes.topics.topic("employees").encode()
    assert second["__connect.errors.offset"] == b"2" and b"email" in second["__connect.errors.exception.message"]
    assert letters[1].key() == b"3" and b'"not-an-address"' in letters[1].value()
    assert changes.drain().counts["consumed"] == 0, "the bad events were committed past, not retried forever"


def test_an_event_keyed_for_another_row_is_a_dead_letter_not_applied(changes):
    changes.raw(changes.writer.envelope("c", None, employee(5, T0), {**SOURCE, "row": 0}, 1), key=6, partition=0)
    report = changes.drain()
    assert report.counts["dead_lettered"] == 1 and changes.rows() == {}, report.to_json()
    (letter,) = changes.dead_letters()
    assert (
        b"the message key names row 6 but `after.id` is 5"
        in dict(letter.headers())["__connect.errors.exception.message"]
    )


def test_a_text_keyed_tables_events_are_dead_letters_with_the_key_rule_and_write_nothing(changes):
    """A VARCHAR key (the batch path refuses the table): its texts that are valid base64 were read as
    numbers, 'SKU1' as row 4760885, 'AAAB' and 'AAAAAAAB' both as row 1, and applied. Each event is
    a dead letter naming the column, its type and the rule; the table's integer-keyed events go on."""
    columns = [SourceColumn("id", "string", optional=False), *identity_columns("employees")[1:]]
    text_keyed = EnvelopeWriter("employees", columns, database=changes.settings.source_database)
    for number, key in enumerate(("SKU1", "AAAB", "AAAAAAAB")):
        row = employee(0, T0, id=key, email=f"t{number}@example.com")
        changes.raw(text_keyed.envelope("c", None, row, {**SOURCE, "row": 0}, 1), key=key, partition=0)
    changes.raw(text_keyed.envelope("d", employee(0, T0, id="SKU1"), None, {**SOURCE, "row": 0}, 1), "SKU1", 0)
    changes.send("c", None, employee(5, T0), partition=0)
    report = changes.drain()
    assert report.counts["dead_lettered"] == 4 and sorted(changes.rows()) == [5], report.to_json()
    reasons = [dict(m.headers())["__connect.errors.exception.message"] for m in changes.dead_letters()]
    rule = b"expected an integer type (the key), found string by the event's schema: mapping keys must be integer"
    assert [r.split(b":")[0] for r in reasons] == [b"`after.id`"] * 3 + [b"`before.id`"] and all(
        rule in r for r in reasons
    ), reasons


def test_bodies_stay_under_the_byte_bound_and_a_change_too_large_alone_is_a_dead_letter(changes):
    """A batch whose body passes the API's limit was refused (413) on every run: the drain stopped
    for good. Bodies are split under the bound; a change too large alone is dead-lettered."""
    for key in range(1, 41):
        changes.send("c", None, employee(key, T0), partition=0)
    wide = {"first_name": "L" * 100, "last_name": "M" * 100, "position": "P" * 100, "department": "D" * 100}
    changes.send("c", None, employee(99, T0, **wide), partition=0)  # 679 bytes as a record; the others 299
    api = BaseBApi(changes.base_b.url, changes.base_b.token, max_body_bytes=600)
    report = changes.drain(api)
    assert report.counts["inserted"] == 40 and report.counts["dead_lettered"] == 1, report.to_json()
    assert sorted(changes.rows()) == list(range(1, 41))
    (letter,) = changes.dead_letters()
    headers = dict(letter.headers())
    assert headers["__connect.errors.exception.class.name"] == b"TooLarge" and letter.key() == b"99"
    assert (
        b"more than one bulk request may carry (600 bytes, EVENTS_MAX_BODY_BYTES)"
        in headers["__connect.errors.exception.message"]
    )


def test_tombstones_are_skipped_not_dead_lettered(changes):
    changes.raw(None, key=1)
    report = changes.drain()
    assert report.counts["tombstones"] == 1 and report.counts["dead_lettered"] == 0


def test_an_unreachable_api_commits_nothing_and_the_next_run_applies_everything(changes):
    for key in range(1, 11):
        changes.send("c", None, employee(key, T0))
    with pytest.raises(ApiError, match="unreachable"):
        changes.drain(BaseBApi(f"http://127.0.0.1:{free_port()}", "token", retries=0))
    report = changes.drain()
    assert report.counts["consumed"] == 10 and report.counts["inserted"] == 10
    assert sorted(changes.rows()) == list(range(1, 11))


def test_the_event_maker_feeds_the_events_path_from_a_base_a_without_binlog(changes, tmp_path, kafka_bootstrap):
    engine = source_engine(f"sqlite:///{tmp_path / 'base_a.sqlite'}")
    create_schema(engine)
    prefix = changes.settings.topic_prefix
    made = churn_and_publish(engine, "employees", kafka_bootstrap, inserts=40, seed_value=1, prefix=prefix)
    assert made["published"] == {"c": 40, "u": 0, "d": 0}
    changes.drain()
    made = churn_and_publish(engine, "employees", kafka_bootstrap, 10, 5, 3, seed_value=2, prefix=prefix)
    assert made["published"] == {"c": 5, "u": 10, "d": 3}
    changes.drain()
    assert assert_in_sync(engine, changes.base_b.database_url, "employees") == 42
    engine.dispose()


def test_a_row_restored_under_the_stamp_of_its_delete_comes_back(changes):
    """A row deleted, then put back from a backup with its old change stamp: the delete and the new
    insert carry one version. A key's events arrive in commit order, so the insert restores the row
    (it was `stale` against the tombstone: deleted in Base B for good while live in Base A)."""
    changes.send("c", None, employee(7, T0))
    changes.drain()
    changes.send("d", employee(7, T0), None)
    assert changes.drain().counts["deleted"] == 1 and 7 not in changes.rows()
    changes.send("c", None, employee(7, T0))
    report = changes.drain()
    assert report.counts["updated"] == 1, report.to_json()
    assert 7 in changes.rows()


def test_a_replayed_write_does_not_restore_a_row_deleted_under_its_stamp(changes):
    """A replayed dead letter comes after its key's later events: a create refused once, then the
    row's delete, then the create replayed. Base A deleted the row last: the replay stays stale."""
    changes.send("c", None, employee(8, T0))
    changes.send("d", employee(8, T0), None)
    changes.drain()
    envelope = changes.writer.envelope("c", None, employee(8, T0), {**SOURCE, "row": 0}, 1)
    changes.raw(envelope, 8, headers=[(dead_letters.REPLAYED_FROM, b"base_a.dlq:0:5")])
    report = changes.drain()
    assert report.counts["stale"] == 1, report.to_json()
    assert 8 not in changes.rows()


def test_a_key_change_whose_create_comes_a_batch_before_its_delete_keeps_the_new_row(changes):
    """Debezium's delete of the old key and create of the new one sit on different partitions: the
    create may reach the API a batch before the delete frees its email. It waits for that delete."""
    v1, v2 = T0, T0 + timedelta(seconds=5)
    changes.send("c", None, employee(1, v1), partition=0)
    changes.drain()
    changes.settings = changes.settings.model_copy(update={"batch_size": 1})
    changes.send("c", None, employee(1001, v2, email="e1@example.com"), partition=1)  # read first: batch 1
    changes.send("d", employee(1, v1), None, partition=1)
    report = changes.drain()
    assert report.batches == 2 and report.counts["resent_unique"] == 1, report.to_json()
    assert report.counts["dead_lettered"] == 0 and changes.dead_letters() == []
    rows = changes.rows()
    assert sorted(rows) == [1001] and rows[1001][3] == "e1@example.com"
    assert changes.drain().counts["consumed"] == 0


def test_an_upsert_whose_unique_value_stays_taken_is_dead_lettered_once_at_the_end_of_the_run(changes):
    changes.send("c", None, employee(1, T0), partition=0)
    changes.send("c", None, employee(3, T0), partition=0)
    changes.drain()
    changes.settings = changes.settings.model_copy(update={"batch_size": 1})
    changes.send("c", None, employee(2, T0, email="e1@example.com"), partition=1)  # row 1 keeps the email
    changes.send("d", employee(3, T0), None, partition=1)  # a delete that frees another email
    changes.send("u", None, employee(1, T0 + timedelta(seconds=1), position="Lead"), partition=1)
    report = changes.drain()
    assert report.counts["resent_unique"] == 2 and report.counts["dead_lettered"] == 1, report.to_json()
    (letter,) = changes.dead_letters()
    assert letter.key() == b"2" and b"email" in dict(letter.headers())["__connect.errors.exception.message"]
    assert sorted(changes.rows()) == [1]
    assert changes.drain().counts["consumed"] == 0, "the run committed past it once it was a dead letter"


def test_a_swap_of_emails_whose_updates_fall_into_two_batches_is_applied_at_the_end_of_the_run(changes):
    """Each update waited for the other to give its email up, and both were dead letters at the end
    of the run (a soak probe): sent together once more, the API passes the values round."""
    changes.send("c", None, employee(1, T0), partition=0)
    changes.send("c", None, employee(2, T0), partition=0)
    changes.drain()
    changes.settings = changes.settings.model_copy(update={"batch_size": 1})
    later = T0 + timedelta(seconds=1)
    changes.send("u", employee(1, T0), employee(1, later, email="e2@example.com"), partition=1)
    changes.send("u", employee(2, T0), employee(2, later, email="e1@example.com"), partition=1)
    report = changes.drain()
    assert report.counts["dead_lettered"] == 0 and report.counts["updated"] == 2, report.to_json()
    rows = changes.rows()
    assert (rows[1][3], rows[2][3]) == ("e2@example.com", "e1@example.com")
    assert changes.drain().counts["consumed"] == 0, "the run committed past the waiting updates once sent"


class _FailsOnDelete(BaseBApi):
    def bulk_delete(self, entity, records):
        if records:
            raise ApiError.of("POST", "/bulk/delete", 503, "down")
        return super().bulk_delete(entity, records)


def test_a_run_failing_while_an_upsert_waits_commits_no_offset_past_it(changes):
    changes.send("c", None, employee(1, T0), partition=0)
    changes.drain()
    changes.settings = changes.settings.model_copy(update={"batch_size": 1})
    changes.send("c", None, employee(1001, T0 + timedelta(seconds=5), email="e1@example.com"), partition=1)
    changes.send("d", employee(1, T0), None, partition=1)
    with pytest.raises(ApiError):
        changes.drain(_FailsOnDelete(changes.base_b.url, changes.base_b.token, retries=0))
    report = changes.drain()
    assert report.counts["consumed"] == 2 and report.counts["dead_lettered"] == 0, report.to_json()
    assert sorted(changes.rows()) == [1001] and changes.dead_letters() == []


LEGACY_MAPPING = SourceMapping.from_file(Path(__file__).parent / "fixtures" / "events_mapping.yaml")
MICRO, CONNECT = "io.debezium.time.MicroTimestamp", "org.apache.kafka.connect.data.Timestamp"


@pytest.fixture
def legacy_changes(kafka_bootstrap, base_b) -> Events:
    """The legacy table of tests/sync/fixtures/events_mapping.yaml (local DATETIME(6) stamps)."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = EventSettings(
        topic_prefix=prefix,
        source_database="legacy",
        dlq_topic=f"{prefix}.dlq",
        group_id=f"{prefix}.apply",
        idle_seconds=0.5,
    )
    topics = Topics.from_settings(settings, LEGACY_MAPPING)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, [*topics.names, settings.dlq_topic], partitions=1)
    return Events(kafka_bootstrap, settings, base_b, topics)


def mitarbeiter(op: str, changed: str, stamp: str) -> bytes:
    """A change of row 5 as Debezium writes it, its DATETIME(6) stamps in `stamp`'s unit (Berlin wall time)."""
    per_unit = 1 if stamp == MICRO else 1000

    def wall(text: str) -> int:
        return (datetime.fromisoformat(text) - datetime(1970, 1, 1)) // timedelta(microseconds=per_unit)

    row = {
        "pers_nr": 5,
        "vorname": "Ada",
        "nachname": "L",
        "mail": "ada@example.com",
        "abt_code": "V",
        "funktion": "x",
        "gehalt": base64.b64encode((5000025).to_bytes(4, "big", signed=True)).decode(),
        "eintritt": 18262,
        "angelegt_am": wall("2020-01-01 10:00:00"),
        "geaendert_am": wall(changed),
        "aktiv": 1,
        "bemerkung": None,
    }
    columns = [
        {"type": "int64", "optional": False, "field": "pers_nr"},
        {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"},
            "field": "gehalt",
        },
        {"type": "int64", "name": stamp, "optional": False, "field": "angelegt_am"},
        {"type": "int64", "name": stamp, "field": "geaendert_am"},
    ]
    image = {"type": "struct", "fields": columns, "optional": True}
    schema = {"type": "struct", "fields": [{**image, "field": "before"}, {**image, "field": "after"}]}
    before, after = (row, None) if op == "d" else (None, row)
    payload = {"before": before, "after": after, "source": {"ts_ms": 1782907201000}, "op": op, "ts_ms": 1782907201000}
    return orjson.dumps({"schema": schema, "payload": payload})


@pytest.mark.parametrize(
    ("held", "applied"),
    [
        ("2026-07-01 12:00:00.500999", True),  # the deleted state, which the delete gives cut to .500
        ("2026-07-01 12:00:01.000001", False),  # a later state: the delete is stale, and says so
    ],
)
def test_a_delete_whose_stamp_is_cut_to_milliseconds_deletes_the_row_base_b_holds_at_its_microseconds(
    legacy_changes, held, applied
):
    """time.precision.mode=connect writes a DATETIME(6) in milliseconds: a delete's version from its
    before image is older than the microsecond version the batch path (here a MicroTimestamp event) wrote."""
    legacy_changes.raw(mitarbeiter("u", held, MICRO), key=5)
    assert legacy_changes.drain().counts["inserted"] == 1
    legacy_changes.raw(mitarbeiter("d", "2026-07-01 12:00:00.500999", CONNECT), key=5)
    report = legacy_changes.drain()
    assert report.counts["deleted"] == int(applied) and report.counts["stale_deletes"] == int(not applied)
    assert report.counts["deletes_at_base_b_version"] == int(applied), report.to_json()
    assert sorted(legacy_changes.rows()) == ([] if applied else [5])


class _RetentionPassed:
    """A real consumer whose partitions' first offsets lie past what the group committed: the state
    retention leaves behind. Tansu, the broker here, has no retention run or DeleteRecords to make it."""

    def __init__(self, consumer, first: int):
        self._consumer, self._first = consumer, first

    def get_watermark_offsets(self, partition, timeout=None):
        _, high = self._consumer.get_watermark_offsets(partition, timeout=timeout)
        return self._first, high

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_events_retention_deleted_before_the_group_read_them_are_counted_and_logged_once(changes, caplog):
    for key in (1, 2, 3):
        changes.send("c", None, employee(key, T0), partition=0)
    assert changes.drain().counts["inserted"] == 3  # the group's offset on partition 0 is now 3
    for key in (4, 5, 6, 7):
        changes.send("c", None, employee(key, T0), partition=0)
    config = {"bootstrap.servers": changes.bootstrap}
    lost = []
    for _ in range(2):  # the second run finds the group past the gap: a quiet partition counts it once
        consumer = events.consumer_for(config, changes.settings)
        try:
            report = events.DrainReport()
            assert events.assign_committed(_RetentionPassed(consumer, first=5), changes.topics.names, report)
            lost.append(report.counts["lost_to_retention"])
        finally:
            consumer.close()
    assert lost == [2, 0]
    assert "offsets 3..4 were deleted by the topic's retention" in caplog.text and "compare_keys" in caplog.text
    assert (
        sorted(changes.rows()) == [1, 2, 3] and changes.drain().counts["inserted"] == 2
    )  # offsets 5 and 6, past the gap


def test_an_entity_whose_topic_is_missing_gets_no_last_success(changes):
    """EventSyncStale reads each entity's last success: a topic missing (renamed, never created)
    must leave its entity stale, not fresh from runs that could not read it (review)."""
    topics = Topics(f"missing{uuid.uuid4().hex[:8]}", changes.settings.source_database)
    ensure_topics({"bootstrap.servers": changes.bootstrap}, [topics.topic("employees")])
    config = {"bootstrap.servers": changes.bootstrap}
    consumer, producer = events.consumer_for(config, changes.settings), events.producer_for(config)
    api = changes.base_b.api()
    try:
        report = events.drain(consumer, producer, api, changes.settings, topics, kafka_config=config)
    finally:
        consumer.close()
        api.close()
    assert report.entities == ("employees",)


def test_a_batch_holds_about_events_batch_bytes_of_messages_whatever_its_size(changes):
    """5,000 events of 1 MB rows were taken as one batch (5 GB in the task): a batch stops at
    EVENTS_BATCH_BYTES, one message past it at most, and the next batch takes the rest. A small
    first message says nothing of the next ones (review: one of 10 bytes let the next take ask
    for 4,999 messages)."""
    topic = changes.topics.topic("employees")
    changes.producer.produce(topic, value=b"small", key="0", partition=0)
    for key in range(1, 61):
        changes.producer.produce(topic, value=b"v" * 100_000, key=str(key), partition=0)
    changes.producer.flush(10)
    consumer = events.consumer_for({"bootstrap.servers": changes.bootstrap}, changes.settings)
    consumer.assign([TopicPartition(topic, 0, 0)])
    budget = 3 * 2**20
    try:
        sizes = []
        while batch := events.take(consumer, limit=5000, idle_seconds=5, max_bytes=budget):
            assert sum(len(m.value()) for m in batch[:-1]) < budget
            sizes.append(len(batch))
            if sum(sizes) == 61:
                break
    finally:
        consumer.close()
    assert sum(sizes) == 61 and max(sizes) <= 33 and len(sizes) >= 2, sizes


@pytest.mark.parametrize(
    ("topic", "code", "outcome"),
    [
        (None, KafkaError._BAD_MSG, "logged"),  # "FindCoordinator response error": no partition, recovered
        (None, KafkaError._TRANSPORT, "logged"),
        ("t", KafkaError._PARTITION_EOF, "quiet"),
        ("t", KafkaError._BAD_MSG, "raised"),  # a failed CRC: librdkafka skips the message
        ("t", KafkaError._NOT_IMPLEMENTED, "raised"),  # a format it cannot read: skipped too
        ("t", KafkaError.UNKNOWN_TOPIC_OR_PART, "raised"),
        (None, KafkaError.TOPIC_AUTHORIZATION_FAILED, "raised"),
    ],
)
def test_which_consumer_errors_stop_a_reader(topic, code, outcome, caplog):
    """A reader goes on past what librdkafka recovers from, never past messages it skipped (review:
    a CRC error's message was skipped and the drain committed past it). Messages made here: a broker
    that corrupts a batch on demand is not at hand."""
    at = {"topic": topic, "partition": 0, "offset": 7} if topic else {}
    message = Message(**at, error=KafkaError(code))
    log = logging.getLogger("test.consumer_errors")
    with caplog.at_level("WARNING", logger=log.name):
        if outcome == "raised":
            with pytest.raises(KafkaException):
                consumer_errors.is_message(message, log)
        else:
            assert consumer_errors.is_message(message, log) is False
    assert bool(caplog.records) == (outcome == "logged")
