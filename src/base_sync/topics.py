"""Create the change-event topics when the broker does not have them yet."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

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
