"""Foreign keys that cascade into a mapped table: warned of at start, and each parent delete or key
update counted, for the rows InnoDB changes with no row event."""

from __future__ import annotations

import requests
from sqlalchemy import text

from base_sync.demo import generate
from base_sync.source import source_engine
from testbed.relay import RelayProcess
from tests.sync.test_relay import mapped_relay, metric_line, read_changes, relay_topics


def test_a_foreign_key_cascading_into_a_mapped_table_is_warned_of_and_its_parent_changes_counted(
    relay, base_a_url, kafka_bootstrap
):
    """InnoDB deleted or updated employees' rows through ON DELETE/UPDATE CASCADE with no row event:
    the rows vanished or changed in Base A and stayed in Base B, and nothing said so. The foreign key
    comes while the relay runs: read again after the ALTER, its parent's events followed from there."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 3, seed_value=81)
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET department = CASE id WHEN 1 THEN 'A' WHEN 2 THEN 'B' ELSE 'C' END"))
        conn.execute(text("CREATE TABLE dept (name VARCHAR(100) PRIMARY KEY, budget INT) ENGINE=InnoDB"))
        conn.execute(text("INSERT INTO dept VALUES ('A', 1), ('B', 2), ('C', 3)"))
        conn.execute(
            text(
                "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept (name) "
                "ON DELETE CASCADE ON UPDATE CASCADE"
            )
        )
    metric_line(relay, 'relay_cascading_foreign_keys{table="employees"} 1.0')
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dept WHERE name = 'A'"))  # employee 1 vanishes
        conn.execute(text("UPDATE dept SET name = 'Renamed' WHERE name = 'B'"))  # employee 2 changes
        conn.execute(text("UPDATE dept SET budget = 9"))  # no referenced column: nothing cascades
        conn.execute(text("UPDATE employees SET position = 'marker' WHERE id = 3"))
    engine.dispose()
    read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 3 + 3 + 1)
    metric_line(relay, 'relay_unpublished_statements_total{kind="cascade",table="employees"} 2.0')
    metrics = requests.get(f"{relay.url}/metrics", timeout=5).text
    assert 'relay_unpublished_statements_total{kind="cascade",table="articles"} 0.0' in metrics
    assert 'relay_cascading_foreign_keys{table="articles"} 0.0' in metrics
    log = relay.log.read_text()
    assert "FOREIGN KEY fk_dept (employees -> " in log and "ON DELETE CASCADE, ON UPDATE CASCADE" in log
    assert "ROWS OF employees CHANGED BY A FOREIGN KEY CASCADE, NOT PUBLISHED" in log


def test_an_account_with_select_and_replication_alone_sees_the_cascading_keys(base_a_url, kafka_bootstrap, tmp_path):
    """information_schema.referential_constraints lists nothing to such an account (MariaDB 10.11):
    the relay read its foreign keys there, and under the usual relay account found none."""
    engine = source_engine(base_a_url)
    database = engine.url.database
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE dept (name VARCHAR(100) PRIMARY KEY) ENGINE=InnoDB"))
        conn.execute(
            text(
                "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept (name) "
                "ON DELETE CASCADE"
            )
        )
        conn.execute(text("DROP USER IF EXISTS 'relay_reader'@'%'"))
        conn.execute(text("CREATE USER 'relay_reader'@'%'"))
        conn.execute(text(f"GRANT SELECT ON `{database}`.* TO 'relay_reader'@'%'"))
        conn.execute(text("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'relay_reader'@'%'"))
    url = engine.url.set(username="relay_reader").render_as_string(hide_password=False)
    engine.dispose()
    relay = RelayProcess(url, kafka_bootstrap, tmp_path)
    relay.start()
    try:
        metric_line(relay, 'relay_cascading_foreign_keys{table="employees"} 1.0')
    finally:
        relay.stop()
    # Nor can it see triggers: a statement-logged change reaching a mapped table through one goes
    # uncounted, and the relay says so at start (review: it said nothing).
    assert "cannot see the triggers (nor most stored functions) of articles, employees" in relay.log.read_text()


def test_an_on_update_action_on_columns_the_mapping_does_not_read_is_not_counted(
    binlog_port, kafka_bootstrap, tmp_path
):
    """Found from outside (Sakila's staff.store_id -> store ON UPDATE CASCADE, store_id unmapped):
    the relay warned at start and counted every store key change as unpublished (the alert, advising
    a full_refresh), where `base-a check` rightly names no such key: it changes nothing Base B holds.
    An ON DELETE CASCADE still counts, whatever columns are mapped: it deletes mapped rows."""
    ddl = [
        "CREATE TABLE store (store_id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE TABLE team (team_id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE TABLE staff (nr BIGINT PRIMARY KEY, geaendert DATETIME(6), name VARCHAR(50), store_id INT,"
        " team_id INT,"
        " CONSTRAINT fk_store FOREIGN KEY (store_id) REFERENCES store (store_id) ON UPDATE CASCADE,"
        " CONSTRAINT fk_team FOREIGN KEY (team_id) REFERENCES team (team_id) ON DELETE CASCADE ON UPDATE CASCADE"
        ") ENGINE=InnoDB",
        "INSERT INTO store VALUES (1)",
        "INSERT INTO team VALUES (1), (2)",
        "INSERT INTO staff VALUES (1, '2024-05-01', 'a', 1, 1), (2, '2024-05-01', 'b', 1, 2)",
    ]
    engine, relay, topics = mapped_relay(binlog_port, kafka_bootstrap, tmp_path, ddl, "staff")
    try:
        metric_line(relay, 'relay_cascading_foreign_keys{table="staff"} 1.0')  # fk_team's delete alone
        with engine.begin() as conn:
            conn.execute(text("UPDATE store SET store_id = 10"))  # rewrites staff.store_id: unmapped
            conn.execute(text("UPDATE team SET team_id = 11 WHERE team_id = 1"))  # team_id: unmapped too
            conn.execute(text("DELETE FROM team WHERE team_id = 2"))  # deletes staff 2: counted
            conn.execute(text("UPDATE staff SET name = 'marker', geaendert = '2024-05-02' WHERE nr = 1"))
        changes = read_changes(kafka_bootstrap, topics, 1)
        assert [(c.op, c.id) for c in changes] == [("u", 1)]
        metric_line(relay, 'relay_unpublished_statements_total{kind="cascade",table="staff"} 1.0')
    finally:
        relay.stop()
        engine.dispose()
    log = relay.log.read_text()
    assert "fk_store" not in log
    assert "FOREIGN KEY fk_team (staff -> " in log and "(team_id) ON DELETE CASCADE)" in log
