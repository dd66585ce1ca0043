"""What a fetched message that is an error means: stop, or go on.

librdkafka reports most consumer errors only to inform and recovers from them by itself (a
coordinator lookup failing on a reset connection, a broker gone for a moment); raising on every one
failed whole runs. A Kafka connection's extra asking for `enable.partition.eof` (a common consumer
setting) failed every run at each partition's end.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, Message

# Errors no retry of librdkafka's mends: the reader fails with them (Airflow's retry, or an operator).
PERMANENT = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError._AUTO_OFFSET_RESET,  # messages skipped: never silently
    }
)


def is_message(message: Message, log: logging.Logger) -> bool:
    """Whether a fetched message is a message; an error is raised if permanent, else logged.

    An error at a partition's position (a failed CRC, `_BAD_MSG`; a format it cannot read) is raised
    too, the end of a partition aside: librdkafka skips past such messages, and a reader going on
    would commit past a hole. The errors it recovers from (a coordinator lookup) name no partition."""
    error = message.error()
    if error is None:
        return True
    positioned = message.topic() is not None and error.code() != KafkaError._PARTITION_EOF
    if error.fatal() or error.code() in PERMANENT or positioned:
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:  # no news
        log.warning("Kafka: %s (librdkafka retries by itself; reading goes on)", error.str())
    return False
