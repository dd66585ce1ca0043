"""The events DAG's wake trigger on a real broker, driven as the triggerer's shared-stream manager drives it
(the producer's stream into the trigger's filter), without Airflow's processes."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from base_sync import topics
from base_sync.topics import ensure_topics
from base_sync.wake_trigger import ChangeWakeTrigger


@pytest.mark.parametrize("more", [{}, {"enable.partition.eof": "true"}], ids=["defaults", "partition-eof"])
def test_a_missing_topic_is_waited_for_with_one_warning_and_wakes_the_dag_once_created(
    kafka_bootstrap, monkeypatch, caplog, more
):
    """The provider's consumer failed on UNKNOWN_TOPIC_OR_PART, and the triggerer logged the traceback
    every 2 s for as long as the topic was missing (`make up` with BASE_A_CHURN_EVERY=0, a relay not
    started yet, a topic deleted). With `enable.partition.eof` in the connection the drain shares (which
    the drain takes), its stream died at each partition's end (review)."""
    name = f"wake{uuid.uuid4().hex[:8]}"
    topic = f"{name}.base_a.employees"
    extra = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"{name}.wake",
        "enable.auto.commit": "false",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "1000",
        **more,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps({"conn_type": "kafka", "extra": extra}))
    trigger = ChangeWakeTrigger(topics=[topic], kafka_config_id=name, poll_timeout=0.5)
    producer = type(trigger).create_shared_stream_producer(trigger.serialize()[1])
    producer.check_every = 0.2  # many looks at the broker while the test waits

    async def values():
        async for value, _payload in producer.open_stream():
            yield value

    async def scenario():
        first_event = asyncio.ensure_future(anext(aiter(trigger.filter_shared_stream(values()))))
        await asyncio.sleep(5)
        assert not first_event.done(), first_event.exception()  # it waits: neither failing nor firing
        ensure_topics({"bootstrap.servers": kafka_bootstrap}, [topic], partitions=1)
        await asyncio.sleep(8)  # the stream opens on the empty topic and reaches its end
        assert not first_event.done(), first_event.exception()
        publisher = Producer({"bootstrap.servers": kafka_bootstrap})
        publisher.produce(topic, key=b"1", value=b"{}")
        assert publisher.flush(10) == 0
        try:
            return await asyncio.wait_for(first_event, 60)
        finally:
            await producer.aclose()

    with caplog.at_level(logging.INFO, logger="base_sync.wake_trigger"):
        event = asyncio.run(scenario())
    assert event.payload["topics"] == [topic]
    said = [r.getMessage() for r in caplog.records if r.name == "base_sync.wake_trigger"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and topic in r.getMessage()]
    assert len(warnings) == 1, said  # once, not once per look
    assert "python -m base_sync.topics" in warnings[0] and "relay" in warnings[0]
    assert any("exist now" in line for line in said), said


def test_the_starters_topics_have_as_many_partitions_as_the_relays(kafka_bootstrap, monkeypatch, capsys):
    """`python -m base_sync.topics` races the relay up.sh starts just before it: with RELAY_PARTITIONS
    set, whichever is first makes the topics, so both make them alike (review: it always made 3)."""
    prefix = f"p{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("EVENTS_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("EVENTS_DLQ_TOPIC", f"{prefix}.dlq")
    monkeypatch.setenv("RELAY_PARTITIONS", "5")
    topics.main([kafka_bootstrap])
    made = [name for name in capsys.readouterr().out.split(": ", 1)[1].split(" (")[0].split(", ")]
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": prefix})
    listed = reader.list_topics(timeout=10).topics
    reader.close()
    assert made and {name: len(listed[name].partitions) for name in made} == dict.fromkeys(made, 5)
