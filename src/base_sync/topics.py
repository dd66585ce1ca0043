"""Create the change-event topics when the broker does not have them yet."""

from __future__ import annotations

import argparse
import logging
import os

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from base_sync.debezium import Topics
from base_sync.settings import EventSettings

log = logging.getLogger(__name__)


def ensure_topics(kafka_config: dict, topics: list[str], partitions: int = 3) -> list[str]:
    """Create the missing topics; returns the ones it created."""
    admin = AdminClient(
        {
            k: v
            for k, v in kafka_config.items()
            if k == "bootstrap.servers" or k.startswith(("security.", "sasl.", "ssl."))
        }
    )
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in topics if t not in existing]
    created = []
    for topic, future in (admin.create_topics(wanted, operation_timeout=10) if wanted else {}).items():
        try:
            future.result()
            created.append(topic)
            log.info("created topic %s with %d partitions", topic, partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def main(argv: list[str] | None = None) -> None:
    """`python -m base_sync.topics BOOTSTRAP`: create the topics the events DAG and its asset watcher read
    (EVENTS_* settings and the mapping file, as the DAG reads them) and the dead-letter topic. The
    platform's starters run it before Airflow's triggerer, whether or not a relay or event maker runs."""
    parser = argparse.ArgumentParser(prog="python -m base_sync.topics", description=main.__doc__)
    parser.add_argument("bootstrap", help="the broker's bootstrap.servers")
    # As many as the relay makes when it is first (RELAY_PARTITIONS): up.sh starts both at once.
    partitions = int(os.environ.get("RELAY_PARTITIONS") or 3)
    parser.add_argument(
        "--partitions", type=int, default=partitions, help="of each topic created (default RELAY_PARTITIONS, or 3)"
    )
    args = parser.parse_args(argv)
    settings = EventSettings()
    wanted = [*Topics.from_settings(settings).names, settings.dlq_topic]
    created = ensure_topics({"bootstrap.servers": args.bootstrap}, wanted, args.partitions)
    print(f"topics on {args.bootstrap}: {', '.join(wanted)} (created now: {', '.join(created) or 'none'})")


if __name__ == "__main__":
    main()
