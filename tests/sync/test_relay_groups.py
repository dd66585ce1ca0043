"""A binlog group without an XID event (DDL such as TRUNCATE) ends with its statement."""

from __future__ import annotations

import orjson
import requests
from sqlalchemy import text

from base_sync.demo import generate
from base_sync.source import source_engine
from tests.sync.conftest import read_topic
from tests.sync.test_relay import relay_messages, relay_topics, wait_for


def test_a_truncate_as_the_last_group_is_saved_whole_and_not_published_again_after_a_restart(
    relay, base_a_url, kafka_bootstrap
):
    """The group was ended only when the next GTID came: /health stayed one GTID behind
    @@gtid_binlog_pos, and a restart published the truncate event a second time."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 2, seed_value=71)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE TABLE employees"))
        current = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
    wait_for(
        lambda: requests.get(f"{relay.url}/health", timeout=5).json()["position"]["gtid"] == current,
        10,
        f"the saved position {current}",
    )
    relay.stop()
    relay.start()
    generate.seed(engine, "employees", 1, seed_value=72)
    engine.dispose()
    topic = relay_topics(relay, base_a_url).topic("employees")
    relay_messages(kafka_bootstrap, topic, 4)
    ops = sorted(orjson.loads(message.value())["payload"]["op"] for message in read_topic(kafka_bootstrap, topic))
    assert ops == ["c", "c", "c", "t"], ops
