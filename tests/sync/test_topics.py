"""The topics the platform creates, on a real broker (Tansu, what `make up` runs): the dead-letter topic
keeps its letters until they are replayed, whatever the broker's default retention (7 days on Kafka)."""

from __future__ import annotations

import logging
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from base_sync import topics as topics_module
from base_sync.settings import EventSettings
from base_sync.topics import dead_letter_configs, ensure_topics
from env_settings import InvalidSettings


def configs_of(bootstrap: str, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap})  # held until the answer: a dropped client drops it
    described = admin.describe_configs([resource])[resource].result(timeout=10)
    return {key: entry.value for key, entry in described.items()}


@pytest.fixture
def prefix(monkeypatch) -> str:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("EVENTS_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("EVENTS_DLQ_TOPIC", f"{prefix}.dlq")
    monkeypatch.delenv("EVENTS_DLQ_RETENTION_MS", raising=False)
    monkeypatch.delenv("BASE_A_MAPPING_FILE", raising=False)
    return prefix


def test_the_starters_create_the_dead_letter_topic_kept_until_replayed(kafka_bootstrap, prefix, capsys):
    topics_module.main([kafka_bootstrap, "--partitions", "1"])
    assert f"created now: {prefix}.base_a." in capsys.readouterr().out
    dlq = configs_of(kafka_bootstrap, f"{prefix}.dlq")
    assert dlq.get("retention.ms") == "-1" and dlq.get("retention.bytes") == "-1", dlq
    # The change topics keep the broker's retention (README: longer than the longest pause of the DAG).
    assert "retention.ms" not in configs_of(kafka_bootstrap, f"{prefix}.base_a.employees")


def test_the_dead_letter_retention_is_a_setting(kafka_bootstrap, prefix, monkeypatch):
    monkeypatch.setenv("EVENTS_DLQ_RETENTION_MS", str(30 * 24 * 3600 * 1000))
    settings = EventSettings()
    assert ensure_topics({"bootstrap.servers": kafka_bootstrap}, [settings.dlq_topic], 1, dead_letter_configs(settings))
    assert configs_of(kafka_bootstrap, settings.dlq_topic)["retention.ms"] == "2592000000"


@pytest.mark.parametrize("value", ["0", "60000", "-2"])
def test_a_dead_letter_retention_that_would_delete_letters_at_once_is_refused(monkeypatch, value):
    monkeypatch.setenv("EVENTS_DLQ_RETENTION_MS", value)
    with pytest.raises(InvalidSettings, match="^invalid settings: EVENTS_DLQ_RETENTION_MS: "):
        EventSettings()


def test_an_existing_dead_letter_topic_with_a_shorter_retention_is_warned_of_once_and_left_alone(
    kafka_bootstrap, prefix, caplog
):
    settings = EventSettings()
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    made = NewTopic(settings.dlq_topic, num_partitions=1, replication_factor=-1, config={"retention.ms": "604800000"})
    admin.create_topics([made])[settings.dlq_topic].result(timeout=10)  # as an older platform's broker default
    config = {"bootstrap.servers": kafka_bootstrap}
    with caplog.at_level(logging.WARNING, logger="base_sync.topics"):
        for _ in range(3):  # the event maker ensures its topics every round: one warning, not one a round
            assert ensure_topics(config, [settings.dlq_topic], 1, dead_letter_configs(settings)) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"topic {settings.dlq_topic} exists with retention.ms=604800000" in warnings[0]
    assert (
        f"kafka-configs.sh --bootstrap-server {kafka_bootstrap} --alter --entity-type topics "
        f"--entity-name {settings.dlq_topic} --add-config retention.ms=-1" in warnings[0]
    )
    assert configs_of(kafka_bootstrap, settings.dlq_topic)["retention.ms"] == "604800000"  # not altered
