"""Base A's owners change a mapped stamp column between DATETIME and TIMESTAMP under a running relay:
the drain dead-letters each change whose event says the other type, with what to do, and applies none.

Read with the mapping's declared type, the instants were off by the zone's offset: with the server's
zone at +02:00, an update after DATETIME -> TIMESTAMP was dropped as stale without a dead letter, and
after TIMESTAMP -> DATETIME one was written with a version 2 h in the future that then beat later real
changes (the schema-change probe). The real relay on MariaDB's binlog, with and without Debezium's
schema wrapper; the real broker and API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base_sync.debezium import Topics
from base_sync.mapping import SourceMapping
from base_sync.settings import EventSettings
from base_sync.source import source_engine
from base_sync.topics import ensure_topics
from testbed.relay import RelayProcess
from tests.sync.conftest import read_topic, synced_rows
from tests.sync.test_events_mapping import MAPPING_FILE, TABLE, drain, wait_for

REASON = "__connect.errors.exception.message"
# The mapping of test_events_mapping with the cursor a UTC TIMESTAMP column of its own.
TIMESTAMP_CURSOR = """    cursor:
      - {column: geaendert_ts, type: timestamp}"""
DATETIME_CURSOR = """    cursor:
      - {column: geaendert_am, type: datetime}
      - {column: angelegt_am, type: datetime}"""


def berlin_summer(engine, statement: str) -> None:
    """The owners' application: a session in the zone of a server in Berlin in summer."""
    with engine.begin() as conn:
        conn.execute(text("SET time_zone = '+02:00'"))
        conn.execute(text(statement))


@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "schemaless"])
@pytest.mark.parametrize("declared", ["datetime", "timestamp"])
def test_a_stamp_column_changed_between_datetime_and_timestamp_is_dead_lettered_never_applied(
    declared, with_schema, base_a_url, kafka_bootstrap, base_b, tmp_path
):
    engine = source_engine(base_a_url)
    mapping_file = tmp_path / "mapping.yaml"
    mapping_text = Path(MAPPING_FILE).read_text()
    stamp, found = ("geaendert_am", "TIMESTAMP") if declared == "datetime" else ("geaendert_ts", "DATETIME")
    if declared == "timestamp":
        assert DATETIME_CURSOR in mapping_text
        mapping_text = mapping_text.replace(DATETIME_CURSOR, TIMESTAMP_CURSOR)
    mapping_file.write_text(mapping_text)
    own_stamp = "geaendert_ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n    aktiv TINYINT"
    table = TABLE.replace("aktiv TINYINT", own_stamp)
    with engine.begin() as conn:
        conn.execute(text(table))
    relay = RelayProcess(base_a_url, kafka_bootstrap, tmp_path)
    relay.env["BASE_A_MAPPING_FILE"] = str(mapping_file)
    relay.env["RELAY_WITH_SCHEMA"] = str(with_schema).lower()
    relay.start()
    try:
        settings = EventSettings(
            topic_prefix=relay.prefix,
            source_database=make_url(base_a_url).database,
            dlq_topic=f"{relay.prefix}.dlq",
            group_id=f"{relay.prefix}.apply",
            idle_seconds=0.5,
        )
        ensure_topics({"bootstrap.servers": kafka_bootstrap}, [settings.dlq_topic], partitions=1)
        topics = Topics.from_settings(settings, SourceMapping.from_file(mapping_file))
        topic = topics.topic("employees")
        # 09:00 in Berlin (summer) is 07:00 UTC, in either type.
        for key in (1, 2):
            berlin_summer(
                engine,
                "INSERT INTO mitarbeiter (pers_nr, vorname, nachname, mail, funktion, angelegt_am, geaendert_am, "
                f"geaendert_ts) VALUES ({key}, 'V', 'N', 'p{key}@example.com', 'Analyst', '2026-06-01 09:00:00', "
                "'2026-06-03 09:00:00', '2026-06-03 09:00:00')",
            )
        wait_for(kafka_bootstrap, topic, 2)
        report = drain(kafka_bootstrap, settings, topics, base_b)
        assert report.counts["inserted"] == 2, report.to_json()
        before = synced_rows(base_b.database_url, "employees")
        assert before[1][0] == datetime(2026, 6, 3, 7, tzinfo=UTC) and before[1][5] == "Analyst"

        # The owners change the type (the instants stay right), then update: 10:00 Berlin is 08:00 UTC.
        berlin_summer(engine, f"ALTER TABLE mitarbeiter MODIFY {stamp} {found} NULL DEFAULT NULL")
        berlin_summer(
            engine, f"UPDATE mitarbeiter SET funktion = 'After', {stamp} = '2026-06-03 10:00:00' WHERE pers_nr = 1"
        )
        wait_for(kafka_bootstrap, topic, 3)
        report = drain(kafka_bootstrap, settings, topics, base_b)
        assert report.counts["dead_lettered"] == 1, report.to_json()
        assert report.counts["updated"] == report.counts["stale"] == 0, report.to_json()
        assert synced_rows(base_b.database_url, "employees") == before, "nothing applied"
        (dead,) = read_topic(kafka_bootstrap, settings.dlq_topic)
        reason = dict(dead.headers())[REASON].decode()
        zone = "UTC" if declared == "timestamp" else "Europe/Berlin"
        expected = f"{declared.upper()} (declared `type: {declared}`, {zone})"
        assert f"mitarbeiter.{stamp} (cursor of employees): expected {expected}, found {found}" in reason, reason
        assert f"Write `type: {found.lower()}` for {stamp} in the mapping file" in reason
        assert "`base-a check` shows the live type" in reason
    finally:
        relay.stop()
        engine.dispose()
