"""Change events without a binlog: random changes in Base A, published as the relay would publish them.

The embedded Base A is SQLite, which has no binlog for the relay to read. This makes the same
random inserts, updates and deletes as `base-a churn`, reads each row's before- and after-image
from Base A around the change, and publishes Debezium envelopes to `<prefix>.<entity>`: the events
DAG cannot tell them from the relay's. `base-a churn ... --publish <bootstrap>` runs it.
"""

from __future__ import annotations

import random
import time

from confluent_kafka import Producer
from sqlalchemy import Engine

from base_sync.debezium import EnvelopeWriter, entity_topics, topic_for
from base_sync.demo import generate, legacy
from base_sync.settings import EventSettings
from base_sync.source import BaseA
from base_sync.topics import ensure_topics

CHUNK = 5000


def churn_and_publish(
    engine: Engine, entity: str, bootstrap: str, updates=0, inserts=0, deletes=0, seed_value=None, prefix="base_a"
) -> dict:
    rng = random.Random(seed_value)
    base_a = BaseA(engine)
    demo = legacy if legacy.in_use(base_a.mapping) else generate  # the tables it writes
    touched, doomed = demo.pick_keys(engine, entity, updates, deletes, rng)
    before = _rows(base_a, entity, touched + doomed)
    demo.apply_changes(engine, entity, touched, doomed, inserts, rng)
    committed_ms = int(time.time() * 1000)
    last = demo.max_key(engine, entity)  # inserts take the keys after the highest left by the deletes
    new_keys = list(range(last - inserts + 1, last + 1)) if inserts else []
    after = _rows(base_a, entity, touched + new_keys)

    config = {"bootstrap.servers": bootstrap}
    ensure_topics(config, [*entity_topics(prefix), EventSettings().dlq_topic])
    producer = Producer({**config, "enable.idempotence": True, "linger.ms": 5})
    writer = EnvelopeWriter(entity, prefix, "base_a")
    source = {"ts_ms": committed_ms, "server_id": 0, "gtid": None, "file": "", "pos": 0, "row": 0}
    topic, sent = topic_for(entity, prefix), {"c": 0, "u": 0, "d": 0}
    for op, keys in (("u", touched), ("d", doomed), ("c", new_keys)):
        for key in keys:
            old, new = (before.get(key) if op != "c" else None), (after.get(key) if op != "d" else None)
            if (op != "c" and old is None) or (op != "d" and new is None):
                continue  # changed again meanwhile by someone else: that change makes its own event
            producer.produce(topic, key=str(key).encode(), value=writer.envelope(op, old, new, source, committed_ms))
            producer.poll(0)
            sent[op] += 1
    if producer.flush(30):
        raise RuntimeError(f"the broker at {bootstrap} did not acknowledge every event")
    return {"updated": len(touched), "inserted": inserts, "deleted": len(doomed), "published": sent}


def _rows(base_a: BaseA, entity: str, keys: list) -> dict:
    """The rows to publish by key. A mapped (legacy demo) Base A's rows go out already mapped to the
    platform's own shape, which is what the events path reads today."""
    if legacy.in_use(base_a.mapping):
        return legacy.identity_rows(base_a, entity, keys, CHUNK)
    return {row["id"]: row for chunk in base_a.rows_by_keys(entity, keys, CHUNK) for row in chunk}
