"""The events DAG's wake-up: the Kafka provider's shared-stream trigger, one asset event per burst.

The provider's trigger stores one asset event per message. A run drains the topics itself, so one
event per burst is enough to wake it: this trigger fires for a message only when the previous one
fired at least `min_interval` seconds earlier. A skipped message arrived before the run its
predecessor woke starts reading, so that run applies it; the DAG's periodic fallback covers a run
Airflow holds back. The stored payload is tiny, never the change itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamTrigger
from airflow.triggers.base import TriggerEvent


class ChangeWakeTrigger(KafkaSharedStreamTrigger):
    def __init__(self, *, min_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__name__}", {**kwargs, "min_interval": self.min_interval}

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        fired = float("-inf")
        async for _value in shared_stream:
            now = time.monotonic()
            if now - fired >= self.min_interval:
                fired = now
                yield TriggerEvent({"woke_at": time.time(), "topics": self.topics})
