"""Change events without a binlog: random changes in Base A, published as the relay would publish them.

The embedded Base A is SQLite, which has no binlog for the relay to read. This makes the same
random inserts, updates and deletes as `base-a churn`, reads each row's before- and after-image
from Base A around the change, and publishes Debezium envelopes to `<prefix>.<database>.<table>`
(the database is EVENTS_SOURCE_DATABASE, as the DAG reads it): the events DAG cannot tell them from
the relay's. On the platform's own Base A it publishes with the identity mapping; on the legacy
demo (base_sync.demo.legacy, what `make up` runs) it changes and publishes the legacy tables' rows
as they are, which the events DAG maps as it maps the relay's.
`base-a churn ... --publish <bootstrap>` runs it; with `--every` one `EventMaker` makes every round
(one producer, Base A reflected once, the topics ensured once), not a new producer, admin client
and reflection each round (three new broker connections and most of a round's time).
"""

from __future__ import annotations

import contextlib
import random
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from sqlalchemy import Engine, select

from base_sync.debezium import EnvelopeWriter, Topics
from base_sync.demo import generate, legacy
from base_sync.errors import TransientError
from base_sync.mapping import IDENTITY_MAPPING
from base_sync.settings import EventSettings
from base_sync.source import BaseA
from base_sync.topics import dead_letter_configs, ensure_topics

CHUNK = 5000
FLUSH_SECONDS = 30
METADATA_SECONDS = 10


class EventsNotAcknowledged(TransientError):
    """The broker did not acknowledge every event of a round: the round's changes are in Base A
    without (all of) their events."""


class BrokerAway(TransientError):
    """The broker did not answer, or refused, the check of the topics before a round's changes: none made."""


@contextlib.contextmanager
def _broker_answers(bootstrap: str):
    """A failed check of the topics (no broker, a refusal, a topic still being deleted) as
    `BrokerAway`, in one line."""
    try:
        yield
    except (KafkaException, TransientError) as error:
        reason = error.args[0] if error.args else error
        said = reason.str() if isinstance(reason, KafkaError) else str(reason)
        raise BrokerAway(
            f"the broker at {bootstrap} did not answer or refused the check of the topics ({said}); no change was made"
        ) from error


class EventMaker:
    """Makes rounds of random changes to one entity in Base A and publishes their events.

    Holds what every round uses: one producer, Base A reflected once, the envelope writer; the
    topics are ensured when it starts, and again before a round whenever the broker no longer has
    one of them (deleted by hand), before any change is made. Close it (or use it as a context
    manager) when done."""

    def __init__(self, engine: Engine, entity: str, bootstrap: str, prefix: str = "base_a"):
        self.engine, self.entity, self.bootstrap = engine, entity, bootstrap
        self._base_a = BaseA(engine)
        self._mapped = legacy.in_use(self._base_a.mapping)
        self._demo = legacy if self._mapped else generate  # the tables it writes
        settings = EventSettings()
        self._topics = Topics(
            prefix, settings.source_database, self._base_a.mapping if self._mapped else IDENTITY_MAPPING
        )
        self._topic = self._topics.topic(entity)
        self._wanted = [*self._topics.names, settings.dlq_topic]
        self._topic_configs = dead_letter_configs(settings)
        self._writer = (
            EnvelopeWriter(
                self._topics.mapping.table_of(entity), legacy.envelope_columns(entity), prefix, self._topics.database
            )
            if self._mapped
            else EnvelopeWriter.identity(entity, prefix, self._topics.database)
        )
        config = {"bootstrap.servers": bootstrap}
        with _broker_answers(bootstrap):
            ensure_topics(config, self._wanted, configs=self._topic_configs)
        self._config = config
        self._producer = Producer({**config, "enable.idempotence": True, "linger.ms": 5})

    def __enter__(self) -> EventMaker:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        """Let the producer go: every round flushed its events, or raised that it could not (the
        producer's own close() would wait again, up to librdkafka's delivery timeout)."""
        self._producer = None

    def round(self, updates=0, inserts=0, deletes=0, seed_value=None, soft_deletes=0) -> dict:
        """Random changes, as `base-a churn` makes them (`soft_deletes`: the legacy demo's employees,
        aktiv = 0), and their events, published as the relay would; raises when the broker did not
        acknowledge them all."""
        if soft_deletes and not (self._mapped and self.entity == "employees"):
            raise ValueError("soft deletes are the legacy demo's employees' (BASE_A_MAPPING_FILE=mappings/demo.yaml)")
        self._ensure_topics()
        rng, engine, entity, demo = random.Random(seed_value), self.engine, self.entity, self._demo
        rows = legacy.rows_by_keys if self._mapped else _rows
        touched, doomed = demo.pick_keys(engine, entity, updates, deletes + soft_deletes, rng)
        soft, doomed = doomed[:soft_deletes], doomed[soft_deletes:]
        before = rows(self._base_a, entity, touched + soft + doomed)
        if soft:
            legacy.apply_changes(engine, entity, touched, doomed, inserts, rng, soft)
        else:
            demo.apply_changes(engine, entity, touched, doomed, inserts, rng)
        committed_ms = int(time.time() * 1000)
        last = demo.max_key(engine, entity)  # inserts take the keys after the highest left by the deletes
        new_keys = list(range(last - inserts + 1, last + 1)) if inserts else []
        touched += soft  # a soft delete is an update of the flag
        after = rows(self._base_a, entity, touched + new_keys)
        sent = self._publish(
            committed_ms, (("u", touched, before, after), ("d", doomed, before, {}), ("c", new_keys, {}, after))
        )
        done = {"updated": len(touched) - len(soft), "inserted": inserts, "deleted": len(doomed), "published": sent}
        return done | ({"soft_deleted": len(soft)} if soft_deletes else {})

    def _ensure_topics(self) -> None:
        """Make the topics again if the broker lost one since (asked over the producer's connection:
        no new client each round)."""
        with _broker_answers(self.bootstrap):
            known = self._producer.list_topics(timeout=METADATA_SECONDS).topics
            if any(topic not in known for topic in self._wanted):
                ensure_topics(self._config, self._wanted, configs=self._topic_configs)

    def _publish(self, committed_ms: int, changes) -> dict[str, int]:
        """Produce each change's envelope and wait until the broker acknowledged them all."""
        source = {"ts_ms": committed_ms, "server_id": 0, "gtid": None, "file": "", "pos": 0, "row": 0}
        sent, failed = {"c": 0, "u": 0, "d": 0}, []

        def delivered(error: KafkaError | None, _message) -> None:
            if error is not None:
                failed.append(error)

        for op, keys, before, after in changes:
            for key in keys:
                old, new = before.get(key), after.get(key)
                if (op != "c" and old is None) or (op != "d" and new is None):
                    continue  # changed again meanwhile by someone else: that change makes its own event
                envelope = self._writer.envelope(op, old, new, source, committed_ms)
                self._producer.produce(self._topic, key=str(key).encode(), value=envelope, on_delivery=delivered)
                self._producer.poll(0)
                sent[op] += 1
        unsent = self._producer.flush(FLUSH_SECONDS)
        if unsent or failed:
            lost = [f"{unsent} not acknowledged within {FLUSH_SECONDS} s"] if unsent else []
            lost += [f"{len(failed)} refused ({failed[0].str()})"] if failed else []
            raise EventsNotAcknowledged(
                f"the broker at {self.bootstrap} did not take every event of this round: {' and '.join(lost)}; "
                "their changes are in Base A without their events"
            )
        return sent


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
    """One round of an `EventMaker` (`base-a churn --publish` without --every)."""
    with EventMaker(engine, entity, bootstrap, prefix) as maker:
        return maker.round(updates, inserts, deletes, seed_value, soft_deletes)


def _rows(base_a: BaseA, entity: str, keys: list[int]) -> dict[int, dict]:
    """{id: row} of the demo table's rows, typed as its columns declare (dates, decimals, times)."""
    table, rows = base_a.table(entity), {}
    with base_a.engine.connect() as conn:
        for start in range(0, len(keys), CHUNK):
            statement = select(table).where(table.c.id.in_(keys[start : start + CHUNK]))
            rows |= {row["id"]: dict(row) for row in conn.execute(statement).mappings()}
    return rows
