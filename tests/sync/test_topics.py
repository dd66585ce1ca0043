"""The topics the platform creates, on a real broker (Tansu, what `make up` runs): the dead-letter topic
keeps its letters until they are replayed, whatever the broker's default retention (7 days on Kafka)."""

from __future__ import annotations

import logging
import uuid

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from base_sync import topics as topics_module
from base_sync.errors import TransientError
from base_sync.settings import EventSettings
from base_sync.topics import dead_letter_configs, ensure_topics
from env_settings import InvalidSettings
from testbed.servers import free_port


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


def test_the_admin_client_keeps_the_connections_settings_but_the_consumers_and_producers_own(
    kafka_bootstrap, prefix, caplog
):
    """Every drain makes sure of the dead-letter topic with an admin client on the events path's
    connection: it kept only bootstrap.servers, security.*, sasl.* and ssl.*, so a connection that
    reaches the broker thanks to another setting (metadata.broker.list, client.dns.lookup,
    enable.ssl.certificate.verification=false ...) failed every run where the consumer worked (review)."""
    settings = EventSettings()
    librdkafka = logging.getLogger("tests.librdkafka")  # the client's own warnings (CONFWARN)
    connection = {
        "metadata.broker.list": kafka_bootstrap,  # bootstrap.servers' other name
        "client.dns.lookup": "use_all_dns_ips",
        "broker.address.family": "v4",
        "socket.keepalive.enable": True,
        "enable.ssl.certificate.verification": False,
        "logger": librdkafka,
        # The consumer's and the producer's own: the admin client would warn of them, or act on them.
        "group.id": "base_a_events",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "enable.idempotence": True,
        "linger.ms": 5,
    }
    assert set(topics_module.admin_config(connection)) == {
        "metadata.broker.list",
        "client.dns.lookup",
        "broker.address.family",
        "socket.keepalive.enable",
        "enable.ssl.certificate.verification",
        "logger",
    }
    with caplog.at_level(logging.DEBUG, logger="tests.librdkafka"):
        assert topics_module.admin_for(connection).list_topics(timeout=10).topics is not None
        assert ensure_topics(connection, [settings.dlq_topic], 1, dead_letter_configs(settings)) == [settings.dlq_topic]
    assert not [r.getMessage() for r in caplog.records if "CONFWARN" in r.getMessage()]


def test_configs_that_cannot_be_read_are_one_warning_not_a_failure(prefix, caplog):
    """The retention check runs at every drain; configs the broker does not describe (an account
    without DescribeConfigs; Tansu describes any topic, so here no broker answers) must not fail the
    run, and are said once per process, not at every drain."""
    bootstrap = f"127.0.0.1:{free_port()}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    wanted = {f"{prefix}.dlq": {"retention.ms": "-1"}}
    with caplog.at_level(logging.WARNING, logger="base_sync.topics"):
        for _ in range(3):
            topics_module.check_retention(admin, bootstrap, wanted)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"could not read the configs of topic {prefix}.dlq" in warnings[0], warnings


def test_a_topic_still_being_deleted_is_a_transient_error():
    """Kafka answers TOPIC_ALREADY_EXISTS "marked for deletion" for a topic it is deleting: taken as
    existing, the run's first dead letter then failed terminally on the missing topic (review)."""
    deleting = KafkaError(KafkaError.TOPIC_ALREADY_EXISTS, "Topic 'base_a.dlq' is marked for deletion.")
    with pytest.raises(TransientError, match=r"^topic base_a\.dlq is still being deleted on the broker"):
        topics_module._being_deleted("base_a.dlq", deleting)
    topics_module._being_deleted("base_a.dlq", KafkaError(KafkaError.TOPIC_ALREADY_EXISTS, "Topic exists."))
