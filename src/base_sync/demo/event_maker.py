"""Change events without a binlog: random changes in Base A, published as the relay would publish them.

The embedded Base A is SQLite, which has no binlog for the relay to read. This makes the same
random inserts, updates and deletes as `base-a churn`, reads each row's before- and after-image
from Base A around the change, and publishes Debezium envelopes to `<prefix>.<database>.<table>`
(the database is EVENTS_SOURCE_DATABASE, as the DAG reads it): the events DAG cannot tell them from
the relay's. On the platform's own Base A it publishes with the identity mapping; on the legacy
demo (base_sync.demo.legacy, what `make up` runs) it changes and publishes the legacy tables' rows
as they are, which the events DAG maps as it maps the relay's.
`base-a churn ... --publish <bootstrap>` runs it.
"""

from __future__ import annotations

import random
import time

from confluent_kafka import Producer
from sqlalchemy import Engine, select

from base_sync.debezium import EnvelopeWriter, Topics
from base_sync.demo import generate, legacy
from base_sync.mapping import IDENTITY_MAPPING
from base_sync.settings import EventSettings
from base_sync.source import BaseA
from base_sync.topics import dead_letter_configs, ensure_topics

CHUNK = 5000


def churn_and_publish(
    engine: Engine,
    entity: str,
    bootstrap: str,
    updates=0,
    inserts=0,
    deletes=0,
    seed_value=None,
    prefix="base_a",
    soft_deletes=0,
) -> dict:
    """Random changes, as `base-a churn` makes them (`soft_deletes`: the legacy demo's employees,
    aktiv = 0), and their events, published as the relay would."""
    rng = random.Random(seed_value)
    base_a = BaseA(engine)
    mapped = legacy.in_use(base_a.mapping)
    if soft_deletes and not (mapped and entity == "employees"):
        raise ValueError("soft deletes are the legacy demo's employees' (BASE_A_MAPPING_FILE=mappings/demo.yaml)")
    demo = legacy if mapped else generate  # the tables it writes
    rows = legacy.rows_by_keys if mapped else _rows
    touched, doomed = demo.pick_keys(engine, entity, updates, deletes + soft_deletes, rng)
    soft, doomed = doomed[:soft_deletes], doomed[soft_deletes:]
    before = rows(base_a, entity, touched + soft + doomed)
    if soft:
        legacy.apply_changes(engine, entity, touched, doomed, inserts, rng, soft)
    else:
        demo.apply_changes(engine, entity, touched, doomed, inserts, rng)
    committed_ms = int(time.time() * 1000)
    last = demo.max_key(engine, entity)  # inserts take the keys after the highest left by the deletes
    new_keys = list(range(last - inserts + 1, last + 1)) if inserts else []
    touched += soft  # a soft delete is an update of the flag
    after = rows(base_a, entity, touched + new_keys)

    config = {"bootstrap.servers": bootstrap}
    settings = EventSettings()
    topics = Topics(prefix, settings.source_database, base_a.mapping if mapped else IDENTITY_MAPPING)
    ensure_topics(config, [*topics.names, settings.dlq_topic], configs=dead_letter_configs(settings))
    producer = Producer({**config, "enable.idempotence": True, "linger.ms": 5})
    if mapped:
        writer = EnvelopeWriter(
            topics.mapping.table_of(entity), legacy.envelope_columns(entity), prefix, topics.database
        )
    else:
        writer = EnvelopeWriter.identity(entity, prefix, topics.database)
    source = {"ts_ms": committed_ms, "server_id": 0, "gtid": None, "file": "", "pos": 0, "row": 0}
    topic, sent = topics.topic(entity), {"c": 0, "u": 0, "d": 0}
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
    done = {"updated": len(touched) - len(soft), "inserted": inserts, "deleted": len(doomed), "published": sent}
    return done | ({"soft_deleted": len(soft)} if soft_deletes else {})


def _rows(base_a: BaseA, entity: str, keys: list[int]) -> dict[int, dict]:
    """{id: row} of the demo table's rows, typed as its columns declare (dates, decimals, times)."""
    table, rows = base_a.table(entity), {}
    with base_a.engine.connect() as conn:
        for start in range(0, len(keys), CHUNK):
            statement = select(table).where(table.c.id.in_(keys[start : start + CHUNK]))
            rows |= {row["id"]: dict(row) for row in conn.execute(statement).mappings()}
    return rows
