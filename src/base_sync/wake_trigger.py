"""The events DAG's wake-up: the Kafka provider's shared-stream trigger, one asset event per burst.

The provider's trigger stores one asset event per message. A run drains the topics itself, so one
event per burst is enough to wake it: this trigger fires for a message only when the previous one
fired at least `min_interval` seconds earlier. A skipped message arrived before the run its
predecessor woke starts reading, so that run applies it; the DAG's periodic fallback covers a run
Airflow holds back. The stored payload is tiny, never the change itself.

A topic it reads that does not exist yet (the relay not started yet, a topic deleted) is waited for:
the provider's consumer fails on UNKNOWN_TOPIC_OR_PART, and the triggerer would log that failure with
its traceback every few seconds for as long as the topic is missing. The consumer is opened only once
every topic exists, with one warning naming the missing ones, repeated every few minutes at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.triggers.shared_stream import (
    KafkaBrokerPayload,
    KafkaSharedStreamProducer,
    KafkaSharedStreamTrigger,
)
from airflow.triggers.base import TriggerEvent
from asgiref.sync import sync_to_async

from base_sync import consumer_errors

log = logging.getLogger(__name__)

CREATED_BY = (
    "the platform's starters create them (`python -m base_sync.topics <bootstrap>`: scripts/up.sh, compose's "
    "kafka-topics), as do the CDC relay and the event maker when they start"
)


class ChangeWakeTrigger(KafkaSharedStreamTrigger):
    def __init__(self, *, min_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__name__}", {**kwargs, "min_interval": self.min_interval}

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> KafkaSharedStreamProducer:
        return TopicWaitingProducer(
            topics=kwargs["topics"],
            kafka_config_id=kwargs["kafka_config_id"],
            poll_timeout=kwargs["poll_timeout"],
            dlq_topic=kwargs.get("dlq_topic"),
        )

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        fired = float("-inf")
        async for _value in shared_stream:
            now = time.monotonic()
            if now - fired >= self.min_interval:
                fired = now
                yield TriggerEvent({"woke_at": time.time(), "topics": self.topics})


class TopicWaitingProducer(KafkaSharedStreamProducer):
    """The provider's shared consumer, opened once every topic it reads exists on the broker."""

    check_every = 2.0  # seconds between two looks at the broker's topics
    remind_every = 300.0  # seconds between two warnings while a topic is still missing

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        """The provider's loop (apache-kafka 2.1), but a consumer error librdkafka recovers from (a
        coordinator lookup; a partition's end, with `enable.partition.eof` in the connection the
        drain shares) is logged, not raised: the provider's stream died on it and was restarted."""
        await self.wait_for_topics()
        hook = KafkaConsumerHook(topics=self.topics, kafka_config_id=self.kafka_config_id)
        await self._ensure_manual_commit(hook)
        self._consumer = await sync_to_async(hook.get_consumer)()
        poll = sync_to_async(self._consumer.poll)
        while True:
            message = await poll(self.poll_timeout)
            if message is None or not consumer_errors.is_message(message, log):
                continue
            kept = (message.value(), message.key()) if self.dlq_topic is not None else (None, None)
            yield message.value(), KafkaBrokerPayload(message.topic(), message.partition(), message.offset(), *kept)

    async def wait_for_topics(self) -> None:
        # A consumer that subscribes to nothing (so joins no group) only to read the broker's topic list.
        consumer = await sync_to_async(lambda: KafkaConsumerHook([], self.kafka_config_id).get_conn)()
        list_topics = sync_to_async(consumer.list_topics)
        warned = None
        try:
            while missing := sorted(set(self.topics) - set((await list_topics(timeout=10)).topics)):
                if warned is None or time.monotonic() - warned >= self.remind_every:
                    log.warning(
                        "waiting for Kafka topic(s) %s, which do not exist yet (%s); the asset watcher starts "
                        "reading once they do, and says so again every %.0f minutes until then",
                        ", ".join(missing),
                        CREATED_BY,
                        self.remind_every / 60,
                    )
                    warned = time.monotonic()
                await asyncio.sleep(self.check_every)
        finally:
            await sync_to_async(consumer.close)()
        if warned is not None:
            log.info("Kafka topic(s) %s exist now: the asset watcher reads them", ", ".join(self.topics))
