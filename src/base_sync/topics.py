"""Create the change-event topics and the dead-letter topic when the broker does not have them yet.

Change topics get the broker's defaults (their retention must outlast the longest pause of the
events DAG: README, "The event path"). The dead-letter topic holds the only copy of the events it
takes, so it is created with its own retention (EVENTS_DLQ_RETENTION_MS, by default -1: kept until
deleted by hand), never the broker's 7 days. A topic that exists is never altered: a retention on it
shorter than the one it would be created with is warned of once per process, with the command that
changes it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from base_sync.debezium import Topics
from base_sync.errors import ConfigurationError, TransientError
from base_sync.settings import EventSettings

log = logging.getLogger(__name__)

# Kafka's limits on how much a topic keeps: -1 is no limit.
RETENTION_KEYS = ("retention.ms", "retention.bytes")

_checked: set[tuple[str, str, str]] = set()  # (bootstrap, topic, key) checked in this process: warned once

# A broker refusing to make a topic for these reasons refuses it again on every try: a person acts.
REFUSED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_CONFIG,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_PARTITIONS,
    }
)


def default_partitions() -> int:
    """Of each topic made: as many as the relay makes when it is first (RELAY_PARTITIONS, else 3);
    up.sh starts both at once."""
    return int(os.environ.get("RELAY_PARTITIONS") or 3)


# librdkafka's consumer-only (C) and producer-only (P) properties (its CONFIGURATION.md): an admin
# client warns of the first as ignored and may act on the second (enable.idempotence starts an
# idempotent producer's handshake). Every other setting of the connection (`*`) is kept: the
# consumer and producer may only reach the broker thanks to one (enable.ssl.certificate.verification,
# client.dns.lookup, broker.address.family, socket.*).
CONSUMER_ONLY = frozenset(
    {
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        "enable.auto.commit",
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.error.backoff.ms",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        "isolation.level",
        "consume_cb",
        "rebalance_cb",
        "offset_commit_cb",
        "enable.partition.eof",
        "check.crcs",
        "consume.callback.max.messages",
        "on_commit",  # confluent_kafka's name for offset_commit_cb
    }
)
PRODUCER_ONLY = frozenset(
    {
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.ms",
        "linger.ms",
        "message.send.max.retries",
        "retries",
        "queue.buffering.backpressure.threshold",
        "compression.codec",
        "compression.type",
        "compression.level",
        "batch.num.messages",
        "batch.size",
        "delivery.report.only.error",
        "dr_cb",
        "dr_msg_cb",
        "on_delivery",  # confluent_kafka's name for dr_msg_cb
        "sticky.partitioning.linger.ms",
        "request.required.acks",
        "acks",
        "request.timeout.ms",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "queuing.strategy",
        "produce.offset.report",
        "partitioner",
        "partitioner_cb",
        "msg_order_cmp",
    }
)


def producer_config(kafka_config: Mapping) -> dict:
    """The Kafka connection's settings a producer takes: all but the consumer's own."""
    return {k: v for k, v in kafka_config.items() if k not in CONSUMER_ONLY}


def admin_config(kafka_config: Mapping) -> dict:
    """The Kafka connection's settings an admin client takes: all but the consumer's and producer's own."""
    return {k: v for k, v in kafka_config.items() if k not in CONSUMER_ONLY and k not in PRODUCER_ONLY}


def admin_for(kafka_config: Mapping) -> AdminClient:
    """An admin client on the Kafka connection (`admin_config`)."""
    return AdminClient(admin_config(kafka_config))


def dead_letter_configs(settings: EventSettings) -> dict[str, dict[str, str]]:
    """The dead-letter topic's configs, by topic, for `ensure_topics`: kept by time as
    EVENTS_DLQ_RETENTION_MS says, and never by size."""
    return {settings.dlq_topic: {"retention.ms": str(settings.dlq_retention_ms), "retention.bytes": "-1"}}


def _shorter(found: str, wanted: str) -> bool:
    """A retention `found` on the broker keeps less than `wanted` (-1: no limit)."""
    try:
        have, want = int(found), int(wanted)
    except ValueError:
        return False
    return have >= 0 and (want < 0 or have < want)


def _alter_command(bootstrap: str, topic: str, key: str, value: str) -> str:
    return (
        f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
        f"--entity-name {topic} --add-config {key}={value}"
    )


def check_retention(admin: AdminClient, bootstrap: str, configs: Mapping[str, Mapping[str, str]]) -> None:
    """Warn of an existing topic that keeps less than its `configs` ask (describe_configs), once per
    process and topic (the event maker ensures its topics again when one is gone); nothing is altered. Configs
    it cannot read (an account without DescribeConfigs) are one warning per process and topic too,
    never a failure."""
    asked = {
        topic: {k: v for k, v in wanted.items() if k in RETENTION_KEYS and (bootstrap, topic, k) not in _checked}
        for topic, wanted in configs.items()
    }
    asked = {topic: wanted for topic, wanted in asked.items() if wanted}
    if not asked:
        return
    _checked.update((bootstrap, topic, key) for topic, wanted in asked.items() for key in wanted)
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in asked]
    try:
        described = admin.describe_configs(resources, request_timeout=10)
    except KafkaException as error:  # a check, not a need: never fails the run
        log.warning("could not read the configs of topics %s (%s): their retention is not checked", list(asked), error)
        return
    for resource, future in described.items():
        topic = resource.name
        try:
            entries = future.result()
        except KafkaException as error:
            log.warning("could not read the configs of topic %s (%s): its retention is not checked", topic, error)
            continue
        for key, wanted in asked[topic].items():
            entry = entries.get(key)
            if entry is not None and entry.value is not None and _shorter(entry.value, wanted):
                log.warning(
                    "topic %s exists with %s=%s, less than the %s it is created with: the broker deletes what it "
                    "holds past that (dead letters not replayed by then are lost). It is left as it is; change "
                    "it with `%s` (or your Kafka UI's topic settings)",
                    topic,
                    key,
                    entry.value,
                    wanted,
                    _alter_command(bootstrap, topic, key, wanted),
                )


def _being_deleted(topic: str, error: KafkaError) -> None:
    """Kafka answers TOPIC_ALREADY_EXISTS for a topic still being deleted ("marked for deletion"):
    it does not exist, and a write to it would fail; try again once the deletion is done."""
    if "marked for deletion" in error.str().lower():
        raise TransientError(
            f"topic {topic} is still being deleted on the broker ({error.str()}): it is made again on the next "
            "try, once the deletion is done"
        )


def ensure_topics(
    kafka_config: dict,
    topics: list[str],
    partitions: int = 3,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create the missing topics, each with its `configs` (topic name → {config: value}); returns the
    ones it created (a broker refusing a topic's configs fails it, with its reason). A topic of
    `configs` that exists already is checked for a shorter retention (`check_retention`)."""
    configs = configs or {}
    admin = admin_for(kafka_config)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(t, num_partitions=partitions, replication_factor=-1, config=dict(configs.get(t) or {}))
        for t in topics
        if t not in existing
    ]
    created = []
    for topic, future in (admin.create_topics(wanted, operation_timeout=10) if wanted else {}).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                _being_deleted(topic, exc.args[0])
                continue
            if configs.get(topic):  # a broker's policy may cap retention (review): say which setting
                raise KafkaException(
                    KafkaError(
                        exc.args[0].code(),
                        f"the broker refused topic {topic} with {dict(configs[topic])}: {exc.args[0].str()}; set "
                        "EVENTS_DLQ_RETENTION_MS to a retention it takes, or make the topic by hand",
                    )
                ) from exc
            raise
        created.append(topic)
        extra = f" and {dict(configs[topic])}" if configs.get(topic) else ""
        log.info("created topic %s with %d partitions%s", topic, partitions, extra)
    bootstrap = str(kafka_config.get("bootstrap.servers"))
    check_retention(admin, bootstrap, {t: c for t, c in configs.items() if t in topics and t not in created})
    return created


def ensure_dead_letter_topic(kafka_config: dict, settings: EventSettings) -> None:
    """Make sure the dead-letter topic exists with its retention, as the starters do, at the start of
    every drain: one deleted since (an operator clearing letters) would otherwise be made again by
    the broker's auto-create with the broker's retention (7 days on Kafka: the only copy of those
    events expires unsaid), or, without auto-create, fail every run at its first letter."""
    bootstrap = kafka_config.get("bootstrap.servers")
    try:
        created = ensure_topics(kafka_config, [settings.dlq_topic], default_partitions(), dead_letter_configs(settings))
    except KafkaException as error:
        cause = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
        if cause is None or cause.code() not in REFUSED:
            raise  # the broker away or slow: the run is retried
        raise ConfigurationError(
            f"the dead-letter topic {settings.dlq_topic} does not exist and the broker refused to create it "
            f"({cause.str()}): create it with `python -m base_sync.topics {bootstrap}` under an account allowed "
            f"to, or by hand with {dead_letter_configs(settings)[settings.dlq_topic]} (EVENTS_DLQ_RETENTION_MS)"
        ) from error
    if created:
        log.warning(
            "the dead-letter topic %s did not exist (deleted?): created it with its retention; the letters it "
            "held before are gone",
            settings.dlq_topic,
        )


def main(argv: list[str] | None = None) -> None:
    """`python -m base_sync.topics BOOTSTRAP`: create the topics the events DAG and its asset watcher read
    (EVENTS_* settings and the mapping file, as the DAG reads them) and the dead-letter topic (with
    EVENTS_DLQ_RETENTION_MS). The platform's starters run it before Airflow's triggerer, whether or not a
    relay or event maker runs."""
    parser = argparse.ArgumentParser(prog="python -m base_sync.topics", description=main.__doc__)
    parser.add_argument("bootstrap", help="the broker's bootstrap.servers")
    parser.add_argument(
        "--partitions",
        type=int,
        default=default_partitions(),
        help="of each topic created (default RELAY_PARTITIONS, or 3)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = EventSettings()
    wanted = [*Topics.from_settings(settings).names, settings.dlq_topic]
    created = ensure_topics(
        {"bootstrap.servers": args.bootstrap}, wanted, args.partitions, dead_letter_configs(settings)
    )
    print(f"topics on {args.bootstrap}: {', '.join(wanted)} (created now: {', '.join(created) or 'none'})")


if __name__ == "__main__":
    main()
