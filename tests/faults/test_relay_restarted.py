"""Fault: the CDC relay is SIGKILLed while a writer changes Base A, then started again.

`tests/sync/test_relay.py` shows that no event goes missing from the topics (inserts only). Here the
writer updates and deletes too, a drain applies events while the relay is down and after it is back,
and the end state is compared row for row: Base B equals Base A, whatever the restart repeated.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest
from sqlalchemy.engine import make_url

from base_sync.demo import generate
from base_sync.settings import EventSettings
from base_sync.source import source_engine
from base_sync.topics import ensure_topics
from tests.faults.helpers import assert_no_duplicate_keys, drain, in_thread, wait_until
from tests.sync.conftest import assert_in_sync, read_topic

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]
ROUNDS = 16


def write_rounds(engine, rounds_done: list[int]) -> None:
    """Rounds of updates, inserts and deletes on both tables, one transaction per table and round."""
    for number in range(ROUNDS):
        generate.churn(engine, "employees", updates=60, inserts=20, deletes=10, seed_value=100 + number)
        generate.churn(engine, "articles", updates=15, inserts=5, deletes=3, seed_value=200 + number)
        rounds_done.append(number)
        time.sleep(0.1)


def binlog_position(engine) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar_one()


def saved_position(relay) -> str | None:
    try:
        return json.loads(relay.position_file.read_text()).get("gtid")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_a_relay_killed_mid_stream_and_restarted_leaves_base_b_equal_to_base_a(
    relay, base_a_url, kafka_bootstrap, base_b
):
    engine = source_engine(base_a_url)
    settings = EventSettings(
        topic_prefix=relay.prefix,
        source_database=make_url(base_a_url).database,  # the relay's topics: <prefix>.<its database>.<table>
        dlq_topic=f"{relay.prefix}.dlq",
        group_id=f"{relay.prefix}.apply.{uuid.uuid4().hex[:6]}",
        idle_seconds=1.0,
        batch_size=500,
    )
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, [settings.dlq_topic], partitions=1)
    generate.seed(engine, "employees", 1500, seed_value=71)
    generate.seed(engine, "articles", 300, seed_value=72)

    rounds_done: list[int] = []
    writer = in_thread(lambda: write_rounds(engine, rounds_done), "writer")
    wait_until(lambda: len(rounds_done) >= 4, 30, "the writer to be under way")
    relay.stop(signal.SIGKILL)  # no goodbye: the position file holds what the broker acknowledged
    assert not writer.done(), "the writer finished before the kill"
    first = drain(kafka_bootstrap, settings, base_b)  # applies what reached the topics; the writer goes on
    relay.start()
    assert "resuming after" in relay.log.read_text()  # from its saved position, not from Base A's current one
    writer.result(timeout=60)

    # The relay has caught up once its saved position is Base A's last transaction.
    wait_until(lambda: saved_position(relay) == binlog_position(engine), 30, "the relay to catch up", every=0.1)
    last = drain(kafka_bootstrap, settings, base_b)

    assert first.counts["consumed"] > 0 and last.counts["consumed"] > 0
    assert first.counts["dead_lettered"] == last.counts["dead_lettered"] == 0
    assert first.counts["rejected"] == last.counts["rejected"] == 0
    assert assert_in_sync(engine, base_b.database_url, "employees") == 1500 + ROUNDS * (20 - 10)
    assert assert_in_sync(engine, base_b.database_url, "articles") == 300 + ROUNDS * (5 - 3)
    assert_no_duplicate_keys(base_b.database_url, "employees")
    assert_no_duplicate_keys(base_b.database_url, "articles")
    assert read_topic(kafka_bootstrap, settings.dlq_topic) == []
    engine.dispose()
